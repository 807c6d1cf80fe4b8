"""How bad stack settings are reported: every problem in one run, each on one line, each under
its key as written in ``Pulumi.<stack>.yaml``.

Owns ``ConfigError`` (what ``stacks.plan`` and ``pulumi up`` show), the ``Problems`` collector
(which also remembers which keys failed, so a setting that depends on a failed one is skipped
instead of reported twice), turning an Args error back into the config key, "did you mean" for
misspelled keys, and hints for YAML's pitfalls (an unquoted ``1.30`` is the number 1.3, an
unquoted ``on`` is the boolean true).

Does not decide what is valid (the shapes in ``stacks/config.py`` and the components' Args
do) and never reads config.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic.alias_generators import to_camel

from infra.validation import ArgsError


class ConfigError(ValueError):
    """One or more stack settings are wrong; ``problems`` holds one line per setting."""

    def __init__(self, stack: str, problems: list[str], *, missing_file: bool = False) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        if missing_file:
            message = (f"stack '{stack}' cannot be read:\n{lines}\nCreate it with "
                       f"`pulumi stack init {stack}` or pick a known stack.")
        else:
            message = (
                f"stack '{stack}' has {len(problems)} invalid setting(s) in "
                f"Pulumi.{stack}.yaml:\n{lines}\nFix them with `pulumi config set <key> "
                "<value>` (or edit the file); nothing was created.")
        super().__init__(message)


# ---------------------------------------------------------------------------------------------
# Misspelled keys


def _folded(word: str) -> str:
    """Case, '_', '-' and '.' do not make two keys different to a reader."""
    return re.sub(r"[-_.]", "", word).lower()


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The known key ``word`` was most likely meant to be, or None if none is close."""
    candidates = list(candidates)
    folded = {_folded(candidate): candidate for candidate in candidates}
    if _folded(word) in folded:  # kubernetes_version, KubernetesVersion -> kubernetesVersion
        return folded[_folded(word)]
    # 0.75 catches one or two swapped, missing or doubled letters (regoin, concurency, clustr)
    # without proposing an unrelated key.
    match = difflib.get_close_matches(_folded(word), list(folded), n=1, cutoff=0.75)
    return folded[match[0]] if match else None


def unknown_key(key: str, word: str, candidates: Iterable[str], *, list_allowed: bool = True,
                qualifier: str = "") -> str:
    """``KEY: unknown setting; did you mean 'X'? Allowed: ...`` (one problem line)."""
    candidates = sorted(set(candidates), key=str.lower) if list_allowed else list(candidates)
    guess = closest(word, candidates)
    text = f"{key}: unknown setting"
    if guess is not None:
        text += f"; did you mean '{qualifier}{guess}'?"
        if list_allowed and candidates:
            text += f" (allowed: {', '.join(candidates)})"
    elif list_allowed and candidates:
        text += f"; allowed: {', '.join(candidates)}"
    else:
        text += "; check the spelling"
    return text


# ---------------------------------------------------------------------------------------------
# YAML pitfalls

_BOOLEAN_WORDS = {"true", "false"}


def yaml_hint(value: Any, *, wanted: str = "text") -> str:
    """Why a value may not be what the user typed, when YAML changed its type; '' otherwise.

    YAML 1.1 (PyYAML, and therefore the offline plan) reads unquoted ``yes/no/on/off`` as
    booleans, and every YAML reads ``1.30`` as the number 1.3: a version or a tag loses its
    trailing zero before any program sees it."""
    if isinstance(value, bool) or (isinstance(value, str) and value.lower() in _BOOLEAN_WORDS):
        return (f" (YAML reads unquoted yes/no/on/off/true/false as a boolean: quote the value "
                f"if you meant {wanted}, e.g. \"on\")")
    if isinstance(value, float) or (isinstance(value, str) and re.fullmatch(r"\d+\.\d+", value)):
        return (f" (YAML reads an unquoted number such as 1.30 as 1.3, dropping trailing zeros: "
                f"quote it if you meant {wanted}, e.g. \"1.30\")")
    if isinstance(value, int):
        return f" (YAML read a number: quote it if you meant {wanted}, e.g. \"{value}\")"
    return ""


_PYDANTIC_WORDS = (
    (re.compile(r"^a valid string$"), "text"),
    (re.compile(r"^a valid integer.*"), "a whole number"),
    (re.compile(r"^a valid boolean.*"), "true or false"),
    (re.compile(r"^a valid number.*"), "a number"),
    (re.compile(r"^a valid (list|tuple|array)$"), "a list"),
    (re.compile(r"^a valid (dictionary|mapping).*"), "a mapping of settings"),
)


def expected_from_pydantic(message: str) -> str:
    """pydantic's "Input should be a valid integer, unable to parse ..." as "a whole number"."""
    text = message.replace("Input should be ", "").replace("Value error, ", "").rstrip(".")
    for pattern, words in _PYDANTIC_WORDS:
        if pattern.match(text):
            return words
    return text


# ---------------------------------------------------------------------------------------------
# The collector


def config_key(prefix: str, path: str, names: Mapping[str, str]) -> str:
    """The config key of the Args attribute ``path`` in the section at ``prefix``. A ``names``
    entry may hold a whole key (``{"region": "gcp:region"}``) for an Args field that is set
    elsewhere in the stack file."""
    first = re.match(r"\w+", path)
    written = names.get(first.group(0)) if first else None
    if written and ":" in written:
        return written + _key_path(path[first.end():], names)
    return prefix + _key_path(path, names)


def _key_path(parts: str, names: Mapping[str, str]) -> str:
    """An Args attribute path (``resources.memory_limit``, ``records[0].name``,
    ``settings['X']``) as a config key suffix, each name as the user wrote it."""
    text = ""
    for match in re.finditer(r"(\w+)|\[('?)([^\]']*)\2\]", parts):
        name, quote, index = match.groups()
        if name is not None:
            written = names.get(name, to_camel(name) if "_" in name else name)
            text += f".{written}" if written else ""
        elif quote:
            text += f".{index}"  # settings['X'] -> .X: the user wrote X as a key
        else:
            text += f"[{index}]"
    return text


def _camel_field_names(text: str, names: Mapping[str, str], fields: Iterable[str]) -> str:
    """The Args' own field names inside its message (``memory_request``), spelled as the user
    writes them (``memoryRequest``); other words with '_' are left alone."""
    known = set(fields) | set(names)

    def spelled(match: re.Match[str]) -> str:
        word = match.group(0)
        return names.get(word) or to_camel(word) if word in known else word

    return re.sub(r"\b[a-z]+(?:_[a-z0-9]+)+\b", spelled, text)


_CLASS_FIELD = re.compile(r"^[A-Z]\w*\.(?P<path>\w+(?:\[[^\]]*\])*(?:\.\w+(?:\[[^\]]*\])*)*):\s*"
                          r"(?P<rest>.*)$", re.S)


class Problems:
    """Collects problems so the user sees all of them in one run."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._failed: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def _append(self, key: str, line: str) -> None:
        self._failed.add(key)
        if line not in self.items:  # two settings built from one bad value: say it once
            self.items.append(line)

    def note(self, key: str, message: str) -> None:
        """A problem in the caller's own words: ``KEY: message``."""
        self._append(key, f"{key}: {message}")

    def add(self, key: str, value: Any, expected: str, *, hint: str = "") -> None:
        """``KEY: got VALUE; expected ...``."""
        self._append(key, f"{key}: got {value!r}; expected {expected}{hint}")

    def unknown(self, key: str, word: str, candidates: Iterable[str], **options: Any) -> None:
        self._append(key, unknown_key(key, word, candidates, **options))

    def failed(self, key: str) -> bool:
        """Was a problem reported for ``key`` or anything under it?"""
        return any(bad == key or bad.startswith((f"{key}.", f"{key}[")) for bad in self._failed)

    def args_error(self, prefix: str, error: Exception, names: Mapping[str, str],
                   fields: Iterable[str] = ()) -> str | None:
        """Report an Args error under its config key; returns the Args attribute it named.
        ``fields``: the Args' field names (spelled as keys wherever the message uses them)."""
        fields = set(fields)
        if isinstance(error, ArgsError):
            owner_and_path = error.field
            path = owner_and_path.split(".", 1)[1] if "." in owner_and_path else owner_and_path
            key = config_key(prefix, path, names)
            self.add(key, error.value, _camel_field_names(error.allowed, names, fields))
            return re.match(r"\w+", path).group(0)
        # A plain ValueError: often "Class.field: message", sometimes about two fields at once.
        message = str(error)
        match = _CLASS_FIELD.match(message)
        if match and re.match(r"\w+", match["path"]).group(0) in (fields | set(names)):
            path = match["path"]
            self.note(config_key(prefix, path, names),
                      _camel_field_names(match["rest"], names, fields))
            return re.match(r"\w+", path).group(0)
        self.note(prefix, _camel_field_names(message, names, fields))
        return None

    def build(self, prefix: str, factory: Callable[..., Any], *,
              fixed: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None,
              names: Mapping[str, str] | None = None) -> Any:
        """Call an Args constructor with the ``fixed`` (wired) fields and the user's
        ``settings``; report every error under the config key and return None if any.
        ``names`` maps Args fields to the keys the user wrote (default: camelCase).

        Args stop at their first bad field. To report every independent mistake in one run,
        a field that failed is dropped (its Args default applies) and the Args are built
        again; what that retry finds is reported only when it names another field the user
        set, with the user's own value, so a default standing in can never be blamed."""
        settings = dict(settings or {})
        fixed = dict(fixed or {})
        names = dict(names or {})
        defaults = _defaults(factory)
        reported = 0
        for _ in range(len(settings) + 1):
            try:
                built = factory(**fixed, **settings)
            except (ArgsError, ValueError) as error:
                attribute = _attribute_of(error)
                if reported and (attribute not in settings
                                 or (isinstance(error, ArgsError)
                                     and not _same(error.value, settings[attribute]))):
                    return None  # a consequence of the default standing in: not the user's
                self.args_error(prefix, error, names, _fields(factory))
                reported += 1
                if attribute not in settings or attribute not in defaults:
                    return None
                del settings[attribute]
                continue
            return None if reported else built
        return None


def _attribute_of(error: Exception) -> str | None:
    text = error.field if isinstance(error, ArgsError) else str(error)
    match = re.match(r"^[A-Z]\w*\.(\w+)", text)
    return match.group(1) if match else None


def _same(reported: Any, given: Any) -> bool:
    # Args report the value they checked (sometimes one item of a list, or a list's names).
    if reported == given:
        return True
    if isinstance(given, tuple | list):
        return reported in given or reported == list(given)
    return False


def _fields(factory: Callable[..., Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(factory)} if dataclasses.is_dataclass(factory) \
        else set()


def _defaults(factory: Callable[..., Any]) -> set[str]:
    """Fields of an Args dataclass that have a default (and can be dropped on a retry)."""
    if not dataclasses.is_dataclass(factory):
        return set()
    return {f.name for f in dataclasses.fields(factory)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}


__all__ = ["ConfigError", "Problems", "closest", "expected_from_pydantic", "unknown_key",
           "yaml_hint"]
