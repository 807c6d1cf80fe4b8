# Shared by the steps in this directory (sourced, never run: the runner only runs *.sh).
#
# need_packages WHY PACKAGE...: installs the Debian packages that are missing, with apt-get, as
# root. As another user, or without apt-get, it installs nothing: it names the packages (and the
# command) and fails, so a test never runs half set up.

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

need_packages() {
    local why="$1"; shift
    local missing=()
    for package in "$@"; do
        command -v dpkg-query >/dev/null 2>&1 && is_installed "$package" && continue
        missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: $why needs the Debian packages ${missing[*]} (or your system's equivalent)," \
             "and this system has no apt-get: install them, then run ./run test again" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: $why needs ${missing[*]}; installing them needs root:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "installing ${missing[*]} ($why)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
