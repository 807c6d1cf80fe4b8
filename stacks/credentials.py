"""Recognise credentials given as plain stack settings (``ha-celery:app``).

A plain setting becomes an ``env`` value in every app Deployment, CronJob and Job spec, in
``resources.json`` and in Pulumi's state, readable by anyone who can read those. Credentials
belong in ``ha-celery:appSecrets`` (encrypted in the stack file, referenced from a Kubernetes
Secret). This module says whether a name or value looks like one, and why, by two rules:

- the name: an environment variable called ``*PASSWORD*``, ``*SECRET*``, ``*_TOKEN``,
  ``*_KEY``, ``*_DSN``, ... holds a credential whatever its value;
- the value's shape: a URL with user-info (``scheme://user[:password]@host``), a PEM block
  (``-----BEGIN ...-----``), or a token with a well-known issuer prefix (AWS, GitHub, GitLab,
  Slack, Google API, Stripe, a JWT).

It never returns or logs the value itself. Does not decide what happens to a refused setting
(``stacks/config.py`` reports it) and does not scan anything but the settings it is given.
"""

from __future__ import annotations

import re

# Whole words of a name (split at '_', '-', '.' and camelCase humps) that mark a credential.
_CREDENTIAL_WORDS = frozenset({
    "PASSWORD", "PASSWD", "PASS", "PWD", "PASSPHRASE", "SECRET", "TOKEN", "KEY", "APIKEY",
    "ACCESSKEY", "SECRETKEY", "PRIVATEKEY", "AUTHTOKEN", "APITOKEN", "CREDENTIAL",
    "CREDENTIALS", "DSN", "COOKIE",
})
# Parts that mark a credential even glued to other words (DBPASSWORD, CLIENTSECRET). Kept to
# words that have no innocent longer form; TOKEN and KEY are whole words only (TOKENIZER,
# MONKEY, MAX_TOKENS are not credentials).
_CREDENTIAL_PARTS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "CREDENTIAL")

_USERINFO_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s@]+@")
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]+-----")
_TOKEN_SHAPES = (
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})")),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a Stripe key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{16,}")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
)


def name_words(name: str) -> list[str]:
    """``dbPassword`` -> ['DB', 'PASSWORD']; ``SENTRY_DSN`` -> ['SENTRY', 'DSN']."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [word for word in re.split(r"[^A-Za-z0-9]+", spaced.upper()) if word]


def credential_name_reason(name: str) -> str | None:
    """Why ``name`` reads as a credential's name (e.g. "its name contains PASSWORD"), or None."""
    for word in name_words(name):
        if word in _CREDENTIAL_WORDS:
            return f"its name contains {word}"
        for part in _CREDENTIAL_PARTS:
            if part in word:
                return f"its name contains {part}"
    return None


def credential_value_reason(value: str) -> str | None:
    """Why ``value`` has a credential's shape (never quoting it), or None."""
    if _USERINFO_URL.search(value):
        return "its value is a URL with user-info (scheme://user:password@host)"
    if _PEM_BLOCK.search(value):
        return "its value holds a PEM block (a key or certificate)"
    for what, pattern in _TOKEN_SHAPES:
        if pattern.search(value):
            return f"its value looks like {what}"
    return None


def credential_reason(name: str, value: object) -> str | None:
    """Why the plain setting ``name: value`` must be refused as a credential, or None."""
    return credential_name_reason(name) or (
        credential_value_reason(value) if isinstance(value, str) else None)


__all__ = ["credential_name_reason", "credential_reason", "credential_value_reason"]
