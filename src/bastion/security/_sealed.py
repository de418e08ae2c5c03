"""The operator store's file format, version 1: the vault's AEAD under a key the vault
keeps (``users/key``), instead of one derived from a passphrase.

::

    magic     b"BASTION-USERS\\n"                        14 bytes
    length    header length, unsigned big-endian         4 bytes
    header    JSON: format, key_id
    body      nonce (12) + AES-256-GCM(users key, msgpack UsersBody)

The body is authenticated with magic, length and header as associated data, so any
changed or missing byte fails the tag and nothing is decrypted. ``key_id`` (the first
8 bytes of HMAC-SHA256 over a fixed label, keyed by the store's key) tells a file
sealed under another vault's key (another desk's store copied here) apart from a
damaged one, without saying anything about the key.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final

import msgspec

from bastion.security.users import UsersBody
from bastion.vault._format import KEY_BYTES, NONCE_BYTES, TAG_BYTES, FormatError, decrypt, encrypt

__all__ = ["MAGIC", "FormatError", "WrongKey", "key_id", "open_sealed", "seal"]

MAGIC: Final = b"BASTION-USERS\n"
FORMAT: Final = 1
_LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES: Final = 1024
_KEY_ID_LABEL: Final = b"bastion users store key id v1"


class WrongKey(FormatError):
    """The file was sealed under another key (another vault's ``users/key``)."""


class _Header(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: int
    key_id: str


def key_id(key: bytes) -> str:
    """A public name for ``key`` (16 hex digits): equal keys, equal ids."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"the users key must be {KEY_BYTES} bytes, got {len(key)}")


def seal(key: bytes, body: UsersBody) -> bytes:
    """The file's bytes for ``body``, under a fresh nonce."""
    _check_key(key)
    encoded = msgspec.json.encode(_Header(format=FORMAT, key_id=key_id(key)))
    head = MAGIC + _LENGTH.pack(len(encoded)) + encoded
    return head + encrypt(key, msgspec.msgpack.encode(body), head)


def open_sealed(key: bytes, data: bytes) -> UsersBody:
    """The contents of a sealed file; ``WrongKey`` or ``FormatError`` saying what is
    wrong otherwise (the caller names the file)."""
    _check_key(key)
    if not data.startswith(MAGIC):
        raise FormatError("not a bastion user store (no user store header)")
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start:
        raise FormatError("truncated (the header is cut short)")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if length > MAX_HEADER_BYTES:
        raise FormatError(f"header length {length} is implausible")
    end = start + length
    if len(data) < end + NONCE_BYTES + TAG_BYTES:
        raise FormatError("truncated")
    try:
        header = msgspec.json.decode(data[start:end], type=_Header)
    except msgspec.DecodeError as e:
        raise FormatError(f"unreadable header: {e}") from None
    if header.format != FORMAT:
        raise FormatError(f"format version {header.format}; this bastion reads version {FORMAT}")
    if not hmac.compare_digest(header.key_id.encode(), key_id(key).encode()):
        raise WrongKey(
            "it was sealed with another vault's users/key (a store from another desk, "
            "or its header was altered)"
        )
    plain = decrypt(key, data[end:], data[:end])
    if plain is None:
        raise FormatError("its contents fail authentication (altered or truncated)")
    try:
        return msgspec.msgpack.decode(plain, type=UsersBody)
    except msgspec.DecodeError as e:  # authenticated but unreadable: a writer's bug
        raise FormatError(f"unreadable contents: {e}") from None
