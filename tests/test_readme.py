"""The README as a newcomer uses it: its commands run as written, its tables match the code.

- The quick start's commands run on a fresh clone of this repository.
- "Run it locally" runs block by block, in order, against the real RabbitMQ and PostgreSQL
  (a private vhost and a scratch database: only the environment is substituted, never a
  command), with the worker and the web app kept running as their own "terminals".
- The stack settings table lists every key a stack file may set (``stacks.config``), and the
  app's settings table every environment variable the app and its web server read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
README = (REPOSITORY / "README.md").read_text()


# --- reading the README --------------------------------------------------------------------------


def section(title: str) -> str:
    """The text under the heading ``title`` up to the next heading of the same or a higher
    level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", README, re.M)
    assert match, f"README has no heading {title!r}"
    level = len(match.group(1))
    rest = README[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[:end.start()] if end else rest


@dataclass
class Block:
    """A ```bash block and the prose just before it (which says how to run it)."""

    intro: str
    commands: list[str] = field(default_factory=list)

    @property
    def exports(self) -> dict[str, str]:
        pairs = [re.match(r"^export (\w+)=(\S+)", command) for command in self.commands]
        return {m.group(1): m.group(2) for m in pairs if m} if all(pairs) else {}

    @property
    def keeps_running(self) -> bool:
        return "keeps running" in self.intro


def blocks(text: str) -> list[Block]:
    found = []
    for match in re.finditer(r"(?P<intro>(?:(?!```).)*?)```bash\n(?P<body>.*?)```", text, re.S):
        body = re.sub(r"\\\n\s*", "", match["body"])  # continuation lines
        commands = [line.strip() for line in body.splitlines() if line.strip()]
        found.append(Block(intro=match["intro"].strip().split("\n\n")[-1], commands=commands))
    return found


def table_rows(text: str) -> list[list[str]]:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    return [row for row in rows[2:]]  # header and separator


def ticked(text: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", text))


def ticked_words(text: str) -> set[str]:
    """Every name inside backticks, also inside `[{name, machineType}]`-style shapes."""
    return {word for token in ticked(text) for word in re.findall(r"[A-Za-z][\w]*", token)}


# --- the settings tables -------------------------------------------------------------------------


def test_the_stack_settings_table_names_every_key_a_stack_file_may_set():
    from stacks.config import PROJECT, settable_keys

    text = section("Stack settings")
    rows = {key: " ".join(row[1:]) for row in table_rows(text)
            for key in ticked(row[0])}
    after_table = "\n".join(line for line in text.splitlines() if not line.startswith("|"))
    missing = []
    for entry, names in settable_keys().items():
        if entry == PROJECT:
            missing += [f"{PROJECT}:{n}" for n in names if f"{PROJECT}:{n}" not in rows]
        elif entry == "gcp":
            missing += [n for n in names if n not in rows]
        else:
            top = entry.split(".")[0]
            row = rows.get(top, "")
            nested = entry.count(".") and entry.split(".")[-1] in ("resources", "migrateResources")
            where = ticked_words(row) | (ticked_words(after_table) if nested else set())
            missing += [f"{entry}.{n}" for n in names if n not in where]
    assert missing == [], "README's stack settings table lacks these keys"


def test_the_stack_settings_table_names_no_key_that_does_not_exist():
    from stacks.config import settable_keys

    known: dict[str, set[str]] = {}
    for entry, names in settable_keys().items():
        known.setdefault(entry.split(".")[0], set()).update(names)
    stale = []
    for row in table_rows(section("Stack settings")):
        for key in ticked(row[0]):
            if key in known:
                camel = {t for t in ticked_words(" ".join(row[1:]))
                         if re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)+", t)}
                stale += [f"{key}: {t}" for t in sorted(camel - known[key])]
    assert stale == []


class _ReadRecorder(dict):
    """An empty environment that remembers every variable a settings reader asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return default

    def __getitem__(self, key):
        self.read.add(key)
        raise KeyError(key)

    def __contains__(self, key) -> bool:
        self.read.add(key)
        return False


def test_the_app_settings_table_lists_every_variable_the_app_and_its_web_server_read():
    from app.gunicorn_conf import web_server_settings
    from app.settings import AppSettings

    environment = _ReadRecorder()
    AppSettings.from_environ(environment)
    web_server_settings(environment)
    rows = table_rows(section("Settings"))
    listed = {name for row in rows for name in ticked(row[0])}
    mentioned = listed | {name for row in rows for name in ticked(row[1])}
    assert environment.read - mentioned == set(), "read by the app but not in the table"
    assert listed - environment.read == set(), "in the table but read by nothing"


# --- the quick start, on a fresh clone ------------------------------------------------------------


def test_the_quick_start_runs_as_written_on_a_fresh_clone(tmp_path):
    [block] = blocks(section("Quick start").split("### ")[0])
    assert block.commands[0].startswith("./run plan dev")
    assert block.commands[1].startswith("./run test")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True,
                   timeout=120)
    # `./run test` runs the whole suite, this test included: here it only collects it
    # (PYTEST_ADDOPTS, the environment), after the same set-up and prerequisites.
    environment = {**os.environ, "PYTEST_ADDOPTS": "--collect-only -q"}
    outputs = []
    for command in block.commands:
        completed = subprocess.run(["bash", "-c", command], cwd=clone, env=environment,
                                   capture_output=True, text=True, timeout=900)
        assert completed.returncode == 0, f"{command}\n{completed.stdout}\n{completed.stderr}"
        outputs.append(completed.stdout)
    assert json.loads((clone / "build/plan/dev/resources.json").read_text())
    assert list((clone / "build/plan/dev/manifests").glob("*.yaml"))
    assert re.search(r"^\d+ tests collected", outputs[1], re.M), outputs[1][-2000:]


# --- Run it locally, against the real broker and database --------------------------------------


@dataclass
class Terminal:
    """One long-running command of the README, in its own process group."""

    command: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    from drills.local_services import stop_process_group

    started: list[Terminal] = []
    yield started
    for terminal in reversed(started):
        stop_process_group(terminal.process, grace=10)


def _wait(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)
    return value


def _get_json(url: str) -> object:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URL
            return json.loads(response.read())
    except OSError:
        return None


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_run_it_locally_works_when_pasted_in_order(tmp_path, terminals):
    from app.celery_app import make_celery
    from app.settings import DEFAULT_QUEUE, AppSettings
    from drills.local_services import private_vhost, scratch_database
    from tests.app.conftest import free_port

    steps = blocks(section("Run it locally"))
    assert steps[0].exports.keys() == {"CELERY_BROKER_URL", "DATABASE_URL"}, steps[0].commands
    port = free_port()
    with private_vhost("readme") as broker_url, \
            scratch_database("readme", migrate=False) as database_url:
        # The environment a newcomer's shell has, with the README's exports pointed at a private
        # vhost and a scratch database (and the web's port at a free one).
        environment = {key: value for key, value in os.environ.items()
                       if not key.startswith(("CELERY_", "DATABASE_", "LCS_", "WEB_",
                                              "KUBERNETES_"))
                       and key not in ("PORT", "PYTHONPATH", "LOG_LEVEL")}
        environment.update(steps[0].exports)
        environment.update(CELERY_BROKER_URL=broker_url, DATABASE_URL=database_url,
                           PORT=str(port), CELERY_HEARTBEAT_FILE=str(tmp_path / "heartbeat"))
        web = f"http://127.0.0.1:{port}"
        timings = []
        for block in steps[1:]:
            assert not block.exports, "environment is set once, in the first block"
            commands = block.commands[:-1] if block.keeps_running else block.commands
            for command in commands:
                started = time.monotonic()
                completed = subprocess.run(["bash", "-c", command], cwd=REPOSITORY,
                                           env=environment, capture_output=True, text=True,
                                           timeout=240)
                assert completed.returncode == 0, (
                    f"{command}\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
                timings.append((command.split("#")[0].strip(), time.monotonic() - started))
            if block.keeps_running:
                command = block.commands[-1]
                log = tmp_path / f"terminal-{len(terminals) + 1}.log"
                with log.open("wb") as output:
                    process = subprocess.Popen(["bash", "-c", command], cwd=REPOSITORY,
                                               env=environment, stdout=output,
                                               stderr=subprocess.STDOUT, start_new_session=True)
                terminal = Terminal(command, process, log)
                terminals.append(terminal)
                if " worker " in command:
                    # At the README's default log level the worker prints no "ready" line:
                    # it is ready when it answers a ping on the broker.
                    pinger = make_celery(AppSettings(broker_urls=(broker_url,)))
                    _wait(lambda t=terminal, p=pinger: t.process.poll() is not None
                          or p.control.ping(timeout=1.0), 90, "the worker")
                else:
                    _wait(lambda: _get_json(f"{web}/healthz"), 60, "the web app")
                assert process.poll() is None, terminal.output()
            if any("app.scheduler lcs" in c for c in block.commands):
                _check_the_work_of_terminal_3(web, broker_url)

        # After the purge nothing is left queued, and the worker and the web app still run.
        celery = make_celery(AppSettings(broker_urls=(broker_url,)))
        with celery.connection_for_write() as connection:
            queued = connection.default_channel.queue_declare(DEFAULT_QUEUE, passive=True)
        assert queued.message_count == 0
        assert all(t.process.poll() is None for t in terminals)
        print("\n".join(f"{seconds:7.1f} s  {command}" for command, seconds in timings))


def _check_the_work_of_terminal_3(web: str, broker_url: str) -> None:
    """The tasks terminal 3 sent ran: 20 counter tasks on the worker, 5 LCS jobs on the page."""
    from app.celery_app import make_celery
    from app.settings import AppSettings

    celery = make_celery(AppSettings(broker_urls=(broker_url,)))

    def counted() -> bool:
        stats = celery.control.inspect(timeout=2.0).stats() or {}
        return any(node.get("total", {}).get("count", 0) >= 20 for node in stats.values())

    _wait(counted, 60, "20 counter tasks on the worker")

    def lcs_done() -> bool:
        listed = _get_json(f"{web}/api/jobs?limit=50") or {"jobs": []}
        return sum(job["status"] == "succeeded" for job in listed["jobs"]) >= 5

    _wait(lcs_done, 60, "5 LCS jobs shown as succeeded by the web app")
