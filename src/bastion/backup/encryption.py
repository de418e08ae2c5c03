"""age encryption (``pyrage``): a backup is encrypted to public keys (recipients), so
the machine that makes or stores it cannot read it, and decrypted only with an
identity (private key) file kept offline.

age authenticates every 64 KiB chunk and marks the last one, so a flipped byte or a
cut-off blob fails to decrypt; it does not say who encrypted (anyone with a public key
can), which is why the journal's keyed chain is checked after a restore.

The identity is read from a file (0600, like an ssh key), never from the command line
or the environment, and never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyrage  # type: ignore[import-untyped]

from bastion.errors import BackupError, BackupKeyError, ConfigError
from bastion.vault.files import ensure_private, write_private

_IDENTITY_PREFIX = "AGE-SECRET-KEY-"


def parse_recipients(recipients: list[str]) -> list[Any]:
    parsed = []
    for n, text in enumerate(recipients):
        try:
            parsed.append(pyrage.x25519.Recipient.from_str(text))
        except pyrage.RecipientError:
            raise ConfigError(f"key 'backup.recipients[{n}]': not a valid age public key") from None
    return parsed


def load_identities(path: Path) -> list[Any]:
    """The age identities in ``path`` (one ``AGE-SECRET-KEY-...`` a line; ``#`` comments)."""
    try:
        ensure_private(path, "backup identity")
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise BackupKeyError(f"backup identity {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BackupKeyError(
            f"backup identity {path}: cannot read ({type(error).__name__})"
        ) from None
    except ConfigError as error:
        raise BackupKeyError(str(error)) from None
    identities = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(_IDENTITY_PREFIX):
            raise BackupKeyError(f"backup identity {path}: line {number} is not an age identity")
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise BackupKeyError(
                f"backup identity {path}: line {number} is not a valid age identity"
            ) from None
    if not identities:
        raise BackupKeyError(f"backup identity {path}: holds no age identity")
    return identities


def new_identity(path: Path) -> str:
    """Write a new identity to ``path`` (0600, refusing to replace one); its public key."""
    if path.exists():
        raise BackupKeyError(f"backup identity {path}: already exists (not replaced)")
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    write_private(path, f"# public key: {public}\n{identity}\n".encode())
    return public


def encrypt_file(plain: Path, out: Path, recipients: list[str]) -> None:
    try:
        pyrage.encrypt_file(str(plain), str(out), parse_recipients(recipients))
    except pyrage.EncryptError as error:
        raise BackupError(f"cannot encrypt the backup: {error}") from None


def decrypt_file(blob: Path, out: Path, identities: list[Any], *, name: str) -> None:
    """Decrypt ``blob`` to ``out``; a wrong key and a damaged blob are told apart as
    well as age allows (a header no identity opens is a wrong key)."""
    try:
        pyrage.decrypt_file(str(blob), str(out), identities)
    except (pyrage.DecryptError, OSError) as error:  # a damaged chunk is an OSError
        out.unlink(missing_ok=True)
        text = str(error).lower()
        if "no matching keys" in text:
            raise BackupKeyError(
                f"backup {name}: the identity given is not one the backup was encrypted to"
            ) from None
        raise BackupError(
            f"backup {name}: cannot decrypt: damaged or truncated ({error})"
        ) from None
