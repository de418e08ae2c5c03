"""Signed backup records (Ed25519, ``cryptography``).

The machine that makes backups signs each record with a private key from the desk's
vault (``[backup] signing_key = "secret:NAME"``, the raw 32-byte seed as 64 hex
characters, as ``bastion backup keygen --signing`` stores it). Verifiers hold only
public keys (``[backup] signing_public_keys``, ``--signer``), written
``ed25519:`` and the 32-byte key in standard base64. When at least one is given, a
record must carry a valid signature by one of them: age says nothing about who
encrypted a blob (anyone with the public recipients key can), and the record names the
blob's SHA-256, so the signature authenticates the blob as well.

The private key is a ``RecordSigner``, which shows only its public key in ``repr``;
it is never printed, logged or put in an error.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bastion.errors import ConfigError, IntegrityError
from bastion.vault import redact
from bastion.vault.refs import Secret

PUBLIC_PREFIX: Final = "ed25519:"
SEED_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
_SEED: Final = re.compile(rf"[0-9a-fA-F]{{{2 * SEED_BYTES}}}")
_PUBLIC: Final = re.compile(r"ed25519:[A-Za-z0-9+/]{43}=")
_MAKE_ONE: Final = "make one with `bastion backup keygen --signing`"


class RecordSigner:
    """An Ed25519 private key that signs backup records; shows only its public key."""

    __slots__ = ("_key", "public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = public_text(key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"RecordSigner({self.public})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a signing key is not pickled")


def new_signing_key() -> tuple[Secret, str]:
    """A new key: its seed as the vault stores it (64 hex characters), and its public
    key (``ed25519:...``)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw().hex()
    redact.register(seed)
    return Secret("backup-signing-key", seed), public_text(key.public_key())


def signer_from_secret(secret: Secret, config_key: str) -> RecordSigner:
    """The signing key a vault secret holds; ``ConfigError`` naming the config key and
    the secret (never the value) when it is not 64 hex characters."""
    value = secret.reveal().strip()
    if not _SEED.fullmatch(value):
        raise ConfigError(
            f"key '{config_key}': secret '{secret.name}' is not an Ed25519 signing key "
            f"(the {SEED_BYTES}-byte seed as {2 * SEED_BYTES} hex characters; {_MAKE_ONE})"
        )
    return RecordSigner(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(value)))


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str, where: str) -> Ed25519PublicKey:
    """``ed25519:BASE64`` as a key; ``ConfigError`` naming ``where`` (a config key or an
    option) otherwise. A private key pasted by mistake is named as such, not echoed."""
    if _SEED.fullmatch(text.strip()) or _SEED.fullmatch(text.removeprefix(PUBLIC_PREFIX)):
        raise ConfigError(
            f"{where}: this looks like a private signing key (64 hex characters); give "
            f"the public key ('{PUBLIC_PREFIX}...', printed by `bastion backup keygen "
            "--signing`) and keep the private one in the vault only"
        )
    if not text.startswith(PUBLIC_PREFIX):
        raise ConfigError(f"{where}: not an Ed25519 public key (it starts with '{PUBLIC_PREFIX}')")
    try:
        raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
        if len(raw) != SEED_BYTES:
            raise ValueError(f"{len(raw)} bytes")
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{where}: not an Ed25519 public key ('{PUBLIC_PREFIX}' and 32 bytes in base64)"
        ) from None


class Signers:
    """The public keys a record must be signed by; none: records are not checked (as
    before signing existed). Keyed by their text form, which a record names as its
    ``signer``."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[tuple[str, str]] = ()) -> None:
        """``keys``: ``(text, where)`` pairs, ``where`` naming the config key or option
        the text came from (for the error when it is not a public key)."""
        self._keys: dict[str, Ed25519PublicKey] = {}
        for text, where in keys:
            key = parse_public_key(text, where)
            self._keys[public_text(key)] = key

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def __contains__(self, public: object) -> bool:
        return public in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def check(self, name: str, signer: str | None, signature: str | None, data: bytes) -> None:
        """``IntegrityError`` naming backup ``name`` unless ``signature`` is ``signer``'s
        valid signature of ``data`` and ``signer`` is one of these keys. Nothing is
        checked when there are no keys."""
        if not self._keys:
            return
        if not signer or not signature:
            raise IntegrityError(
                f"backup {name}: its record is not signed, and signed records are "
                "required ([backup] signing_public_keys / --signer): made before signing "
                "was configured, or by someone without the signing key"
            )
        key = self._keys.get(signer)
        if key is None:
            shown = signer if _PUBLIC.fullmatch(signer) else "a malformed key"  # never echoed raw
            raise IntegrityError(
                f"backup {name}: its record is signed by {shown}, which is not one of "
                "the trusted keys ([backup] signing_public_keys / --signer)"
            )
        try:
            raw = base64.b64decode(signature, validate=True)
            if len(raw) != SIGNATURE_BYTES:
                raise InvalidSignature
            key.verify(raw, data)
        except (InvalidSignature, binascii.Error, ValueError):
            raise IntegrityError(
                f"backup {name}: its record's signature does not verify (the record was "
                "edited after it was signed, or forged)"
            ) from None


UNCHECKED: Final = Signers()
"""No public key given: records are checked for damage (their checksum) only."""
