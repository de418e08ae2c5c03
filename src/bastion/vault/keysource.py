"""Where the vault passphrase comes from, in this order:

1. the file named by ``BASTION_VAULT_KEY_FILE`` (unattended nodes; mode 0600, else
   refused naming the fix);
2. systemd's credential ``bastion-vault`` in ``$CREDENTIALS_DIRECTORY`` (a unit's
   ``LoadCredentialEncrypted=bastion-vault:...``);
3. a prompt on the terminal, when there is one.

Never from an argument or a plain environment variable: both are visible to other
processes (``ps``, ``/proc/PID/environ`` of a child).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from bastion.errors import UsageError, VaultError
from bastion.vault import redact
from bastion.vault.files import ensure_private

KEY_FILE_ENV: Final = "BASTION_VAULT_KEY_FILE"
CREDENTIALS_ENV: Final = "CREDENTIALS_DIRECTORY"
CREDENTIAL_NAME: Final = "bastion-vault"
MAX_KEY_FILE_BYTES: Final = 4096

Prompt = Callable[[str], str]
"""Asks for a hidden line (``getpass.getpass``)."""


def read_key_file(path: Path, what: str = "vault key file") -> str:
    """The passphrase in ``path``: its text without one trailing newline. Refused when
    other users may read it, when missing, or when empty."""
    try:
        ensure_private(path, what)
        raw = path.read_bytes()[: MAX_KEY_FILE_BYTES + 1]
    except FileNotFoundError:
        raise VaultError(f"{what} {path}: no such file") from None
    except OSError as e:
        raise VaultError(f"{what} {path}: cannot read it: {e.strerror or e}") from None
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise VaultError(f"{what} {path}: over {MAX_KEY_FILE_BYTES} bytes, not a passphrase")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise VaultError(f"{what} {path}: not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise VaultError(f"{what} {path}: is empty")
    redact.register(text)
    return text


def unattended_passphrase(environ: Mapping[str, str] | None = None) -> str | None:
    """The passphrase from the key file or the systemd credential, or None if neither
    is configured. A source that is configured but unusable is an error, never a
    reason to fall through to the next one."""
    env = os.environ if environ is None else environ
    key_file = env.get(KEY_FILE_ENV)
    if key_file:
        return read_key_file(Path(key_file), f"vault key file ({KEY_FILE_ENV})")
    credentials = env.get(CREDENTIALS_ENV)
    if credentials:
        path = Path(credentials) / CREDENTIAL_NAME
        if path.exists():
            return read_key_file(path, "vault credential")
    return None


def can_prompt() -> bool:
    return sys.stdin.isatty()


def passphrase(
    *,
    purpose: str,
    confirm: bool = False,
    environ: Mapping[str, str] | None = None,
    prompt: Prompt | None = None,
) -> str:
    """The vault passphrase from the first source available (module docstring).

    ``purpose`` ends the prompt ("unlock vault.bastion"); ``confirm`` asks twice (a
    new passphrase). ``prompt`` replaces the terminal (tests)."""
    found = unattended_passphrase(environ)
    if found is not None:
        return found
    if prompt is None:
        if not can_prompt():
            raise UsageError(no_passphrase_message())
        prompt = getpass.getpass
    return ask(prompt, f"vault passphrase to {purpose}: ", confirm=confirm)


def ask(prompt: Prompt, question: str, *, confirm: bool) -> str:
    """A hidden answer; asked twice when ``confirm``, and refused when they differ."""
    answer = prompt(question)
    if confirm and prompt("again: ") != answer:
        raise UsageError("the two entries differ; nothing changed")
    if not answer:
        raise UsageError("empty answer; nothing changed")
    redact.register(answer)
    return answer


def no_passphrase_message() -> str:
    return (
        "no vault passphrase: not on a terminal, and neither "
        f"{KEY_FILE_ENV} (a file holding it, mode 0600) nor a systemd credential "
        f"'{CREDENTIAL_NAME}' in ${CREDENTIALS_ENV} is set"
    )
