"""The vault file format, version 1.

::

    magic     b"BASTION-VAULT\\n"                       14 bytes
    length    header length, unsigned big-endian        4 bytes
    header    JSON: format, scope, kdf (Argon2id parameters and salt)
    wrapped   nonce (12) + AES-256-GCM(key-encryption key, data key)   60 bytes
    body      nonce (12) + AES-256-GCM(data key, msgpack entries)

The key-encryption key is Argon2id(passphrase, salt, parameters from the header). The
wrapped data key is authenticated with magic, length and header as associated data,
and the body with all of that plus the wrapped key: a header altered by one byte (a
weaker Argon2 cost, another scope) fails the unwrap, as a wrong passphrase does; a
body altered or cut fails its own tag. Nothing is decrypted before it is
authenticated, and Argon2 parameters are bounded before any work is spent on them.
"""

from __future__ import annotations

import os
import struct
from typing import Final, Literal

import msgspec
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Scope = Literal["paper", "live"]

MAGIC: Final = b"BASTION-VAULT\n"
FORMAT: Final = 1
KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
SALT_BYTES: Final = 16
WRAPPED_BYTES: Final = NONCE_BYTES + KEY_BYTES + TAG_BYTES
_LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES: Final = 4096

# Bounds on what a header may ask of Argon2 (a hostile file must not make an unlock
# allocate terabytes or run for hours before the passphrase is even checked).
MAX_TIME_COST: Final = 64
MAX_MEMORY_KIB: Final = 4 * 1024 * 1024  # 4 GiB
MAX_PARALLELISM: Final = 16


class FormatError(Exception):
    """The bytes are not a readable vault (the caller names the file)."""


class KdfParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Argon2id cost. The defaults take about 0.3 s on a 2-core node (docs/security.md,
    "Vault"): slow enough to make guessing a passphrase costly, fast enough to start."""

    time_cost: int = 3
    memory_kib: int = 256 * 1024
    parallelism: int = 2

    def problem(self) -> str | None:
        """What is out of bounds, or None."""
        if not 1 <= self.time_cost <= MAX_TIME_COST:
            return f"time cost must be 1..{MAX_TIME_COST}, got {self.time_cost}"
        if not 1 <= self.parallelism <= MAX_PARALLELISM:
            return f"parallelism must be 1..{MAX_PARALLELISM}, got {self.parallelism}"
        least = 8 * self.parallelism  # Argon2's own floor
        if not least <= self.memory_kib <= MAX_MEMORY_KIB:
            return (
                f"memory must be {least}..{MAX_MEMORY_KIB} KiB "
                f"(at least 8 per lane), got {self.memory_kib}"
            )
        return None


class Kdf(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Literal["argon2id"] = "argon2id"
    time_cost: int
    memory_kib: int
    parallelism: int
    salt: bytes  # base64 in the JSON

    @property
    def params(self) -> KdfParams:
        return KdfParams(
            time_cost=self.time_cost, memory_kib=self.memory_kib, parallelism=self.parallelism
        )


class Header(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: int
    scope: Scope
    kdf: Kdf


class Entry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    value: str
    created_ns: int
    updated_ns: int


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    entries: dict[str, Entry] = {}


def new_header(scope: Scope, params: KdfParams) -> Header:
    kdf = Kdf(
        time_cost=params.time_cost,
        memory_kib=params.memory_kib,
        parallelism=params.parallelism,
        salt=os.urandom(SALT_BYTES),
    )
    return Header(format=FORMAT, scope=scope, kdf=kdf)


def derive_kek(passphrase: str, kdf: Kdf) -> bytes:
    """The key-encryption key: Argon2id over the passphrase with the header's salt."""
    return hash_secret_raw(
        passphrase.encode(),
        kdf.salt,
        time_cost=kdf.time_cost,
        memory_cost=kdf.memory_kib,
        parallelism=kdf.parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def preamble(header: Header) -> bytes:
    encoded = msgspec.json.encode(header)
    return MAGIC + _LENGTH.pack(len(encoded)) + encoded


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``nonce + AES-256-GCM(key, plaintext)`` with ``aad`` authenticated, under a fresh
    random nonce (the one AEAD of the vault and of the files sealed like it)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, sealed: bytes, aad: bytes) -> bytes | None:
    """The plaintext of ``encrypt``'s output, or None if it (or ``aad``) was altered,
    cut, or sealed under another key."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        return None
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        return None


def wrap(kek: bytes, data_key: bytes, preamble_bytes: bytes) -> bytes:
    return encrypt(kek, data_key, preamble_bytes)


def seal(data_key: bytes, body: Body, aad: bytes) -> bytes:
    return encrypt(data_key, msgspec.msgpack.encode(body), aad)


class Sealed(msgspec.Struct, frozen=True, kw_only=True):
    """A vault file split into its parts (nothing decrypted yet)."""

    header: Header
    preamble: bytes
    wrapped: bytes
    body: bytes


def split(data: bytes) -> Sealed:
    """The parts of a vault file; ``FormatError`` saying what is wrong otherwise."""
    if not data.startswith(MAGIC):
        raise FormatError("not a bastion vault (no vault header)")
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start:
        raise FormatError("truncated (the header is cut short)")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if length > MAX_HEADER_BYTES:
        raise FormatError(f"header length {length} is implausible")
    end = start + length
    if len(data) < end + WRAPPED_BYTES + NONCE_BYTES + TAG_BYTES:
        raise FormatError("truncated")
    try:
        header = msgspec.json.decode(data[start:end], type=Header)
    except msgspec.DecodeError as e:
        raise FormatError(f"unreadable header: {e}") from None
    if header.format != FORMAT:
        raise FormatError(f"format version {header.format}; this bastion reads version {FORMAT}")
    problem = header.kdf.params.problem()
    if problem is not None:
        raise FormatError(f"the header's Argon2 parameters are out of bounds: {problem}")
    if len(header.kdf.salt) != SALT_BYTES:
        raise FormatError("the header's salt has the wrong length")
    return Sealed(
        header=header,
        preamble=data[:end],
        wrapped=data[end : end + WRAPPED_BYTES],
        body=data[end + WRAPPED_BYTES :],
    )


def unwrap(kek: bytes, sealed: Sealed) -> bytes | None:
    """The data key, or None if the passphrase (or the header) is not the one sealed."""
    return decrypt(kek, sealed.wrapped, sealed.preamble)


def open_body(data_key: bytes, sealed: Sealed) -> Body:
    """The decrypted entries; ``FormatError`` if the body was altered or cut."""
    plain = decrypt(data_key, sealed.body, sealed.preamble + sealed.wrapped)
    if plain is None:
        raise FormatError("its contents fail authentication (altered or truncated)")
    try:
        return msgspec.msgpack.decode(plain, type=Body)
    except msgspec.DecodeError as e:  # authenticated but unreadable: a writer's bug
        raise FormatError(f"unreadable contents: {e}") from None
