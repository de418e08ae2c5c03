"""A config file as it may leave the desk: secret references kept, secret literals masked.

A config refers to its secrets (``"secret:NAME"``) and the loader refuses a literal
where a reference belongs, so a valid config holds no secret. But a bundle is made
during an incident, from whatever file is there: an edit that put a password in, a
table the loader does not know yet, a commented-out line. So every string value under
a key whose name says it holds a secret (``password``, ``token``, ``*_key``, ``url``,
...) is masked unless it is a reference, and the file's text (comments, layout) is kept
otherwise. What this cannot see (a secret under an innocent key) is left to the scan
of the whole bundle for the vault's values (``bastion.vault.redact``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from typing import Final

from bastion.vault import redact
from bastion.vault.refs import SECRET_PREFIX

MASK: Final = redact.MASK

# a key's last component that says its value is a secret (or carries one, as a URL with
# a token does); ``*_env`` keys name an environment variable, not a value
_SECRET_KEY: Final = re.compile(
    r"(password|passwd|passphrase|secret|token|api_?key|private|credential|auth|webhook|"
    r"url|urls|dsn|(^|_)key($|_))",
    re.IGNORECASE,
)
_ENV_KEY: Final = re.compile(r"_env$", re.IGNORECASE)
# KEY = "..." | '...' | """...""" | '''...''', at a line start, in an inline table or
# commented out; an array of strings after the key is handled string by string
_BARE_KEY: Final = r"[A-Za-z0-9_-]+"
_QUOTED_KEY: Final = r'"[^"\n]*"|\'[^\'\n]*\''
_STRING: Final = r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\''
_ASSIGNMENT: Final = re.compile(
    rf"(?P<key>{_BARE_KEY}|{_QUOTED_KEY})(?P<eq>[ \t]*=[ \t]*)"
    rf"(?P<value>{_STRING}|\[[^\]]*\])"
)
_STRING_IN_ARRAY: Final = re.compile(_STRING)


def is_secret_key(key: str) -> bool:
    """Does a config key (its last component) name a secret?"""
    name = key.strip("\"'")
    return bool(_SECRET_KEY.search(name)) and not _ENV_KEY.search(name)


def _is_reference(literal: str) -> bool:
    """A TOML string literal whose value is ``secret:NAME``."""
    body = literal.strip("\"'")
    return body.startswith(SECRET_PREFIX) and "\n" not in body


def _mask_string(literal: str) -> tuple[str, int]:
    if _is_reference(literal):
        return literal, 0
    quote = '"' if literal.startswith('"') else "'"
    return f"{quote}{MASK}{quote}", 1


def _mask_assignment(match: re.Match[str]) -> tuple[str, int]:
    key, eq, value = match.group("key"), match.group("eq"), match.group("value")
    if not is_secret_key(key):
        return match.group(0), 0
    if value.startswith("["):
        count = 0

        def one(string: re.Match[str]) -> str:
            nonlocal count
            masked, n = _mask_string(string.group(0))
            count += n
            return masked

        return f"{key}{eq}{_STRING_IN_ARRAY.sub(one, value)}", count
    masked, n = _mask_string(value)
    return f"{key}{eq}{masked}", n


def _secret_literals(node: object, key: str = "") -> Iterator[str]:
    """Every string the parsed document holds under a secret key (not a reference)."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _secret_literals(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_literals(item, key)
    elif isinstance(node, str) and is_secret_key(key) and not node.startswith(SECRET_PREFIX):
        yield node


def mask_config(text: str) -> tuple[str, int]:
    """``text`` (a TOML config) with every secret literal masked, and how many were.

    The text is masked where it is written; then, if it parses, each literal the parsed
    document holds under a secret key is masked wherever it still appears (a value
    written with escapes, a multi-line form the first pass missed)."""
    count = 0

    def one(match: re.Match[str]) -> str:
        nonlocal count
        masked, n = _mask_assignment(match)
        count += n
        return masked

    masked = _ASSIGNMENT.sub(one, text)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return masked, count
    for literal in sorted(set(_secret_literals(document)), key=len, reverse=True):
        if len(literal) >= redact.MIN_LENGTH and literal in masked:
            count += masked.count(literal)
            masked = masked.replace(literal, MASK)
    return masked, count


def register_env_secrets(text: str, environ: dict[str, str] | None = None) -> int:
    """Register for redaction the values of the environment variables a config's
    ``*_env`` keys name (``password_env``: a password a parent hands down), when this
    process has them; return how many. The bundle's scan then masks them too."""
    env = os.environ if environ is None else environ
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return 0
    found = 0
    for name in set(_env_names(document)):
        value = env.get(name)
        if value:
            redact.register(value)
            found += 1
    return found


def _env_names(node: object, key: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _env_names(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from _env_names(item, key)
    elif isinstance(node, str) and _ENV_KEY.search(key) and is_secret_key(key[:-4]):
        yield node
