"""Records as the PostgreSQL journal stores them, and back to the plain records every
backend chains: sealing with the encryption key, and reading rows in seq order.

With an encryption key, a record's payload is stored as ``nonce(12) || AES-256-GCM
ciphertext`` with associated data binding the journal's name, the record's seq and
what it is (event or snapshot), so the database's operator can neither read a payload
nor move one to another seq or journal without it failing to open; its
``client_order_id`` column is left empty (the id is inside the sealed payload). The
chain covers the plaintext record exactly as in SQLite, so hashes are identical.
Nonces are random: keep one key for fewer than 2**32 records (rotate by starting a
new journal name).
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Iterator
from typing import Any, Final

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.errors import StorageKeyError
from bastion.journal._codec import Row, new_decoder
from bastion.journal._pg_schema import write_meta

NONCE_BYTES: Final = 12
META_SEAL: Final = "seal"
META_SEAL_CHECK: Final = "seal_key_check"
SEAL_NAME: Final = "aes-256-gcm"
_SEAL_CHECK_INPUT: Final = b"bastion-pg-journal-seal-check"
_AAD: Final = b"bastion-pg-journal\x00"
_SEQ = struct.Struct(">Q")
READ_CHUNK: Final = 4096
RAW_COLUMNS: Final = "seq, ts_ns, type, client_order_id, payload, prev_hash, hash"


class SealBroken(str):
    """A payload that did not open: ``record_problem`` reports it as the record's problem."""

    @property
    def problem(self) -> str:
        return f"sealed payload does not open ({self}): edited, moved, or another key"


class Sealer:
    """Seals and opens the payloads of journal ``name`` (no key: stored as they are)."""

    __slots__ = ("_aead", "_name", "key_check")

    def __init__(self, key: bytes | None, name: str) -> None:
        self._name = name.encode()
        self._aead = AESGCM(key) if key is not None else None
        self.key_check = (
            hmac.digest(key, _SEAL_CHECK_INPUT, "sha256").hex() if key is not None else None
        )

    @property
    def sealed(self) -> bool:
        return self._aead is not None

    def _aad(self, kind: bytes, seq: int) -> bytes:
        return b"".join((_AAD, kind, b"\x00", self._name, b"\x00", _SEQ.pack(seq)))

    def seal(self, kind: bytes, seq: int, payload: bytes) -> bytes:
        if self._aead is None:
            return payload
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, payload, self._aad(kind, seq))

    def open(self, kind: bytes, seq: int, stored: bytes) -> bytes:
        """The plaintext; ``SealBroken`` (a str, not raised) when it does not open."""
        if self._aead is None:
            return stored
        try:
            return self._aead.decrypt(
                stored[:NONCE_BYTES], stored[NONCE_BYTES:], self._aad(kind, seq)
            )
        except (InvalidTag, ValueError):
            return SealBroken("authentication failed")  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Sealer({SEAL_NAME if self.sealed else 'none'})"  # never the key


EVENT: Final = b"event"
SNAPSHOT: Final = b"snapshot"


def stored_row(row: Row, sealer: Sealer) -> tuple[Any, ...]:
    """What is written for plain record ``row``: sealed, without its order id, if keyed."""
    seq, ts_ns, type_name, _order_id, payload, prev_hash, digest = row
    if sealer.sealed:
        return (seq, ts_ns, type_name, None, sealer.seal(EVENT, seq, payload), prev_hash, digest)
    return row


_decode = new_decoder().decode


def plain_row(raw: tuple[Any, ...], sealer: Sealer) -> tuple[Any, ...]:
    """The plain record a stored row holds (byte for byte what SQLite stores)."""
    seq, ts_ns, type_name, client_order_id, payload, prev_hash, digest = raw
    if not sealer.sealed:
        return (
            seq,
            ts_ns,
            type_name,
            client_order_id,
            bytes(payload),
            bytes(prev_hash),
            bytes(digest),
        )
    plain = sealer.open(EVENT, seq, bytes(payload))
    if isinstance(plain, SealBroken):
        return (seq, ts_ns, type_name, client_order_id, plain, bytes(prev_hash), bytes(digest))
    try:
        client_order_id = getattr(_decode(plain), "client_order_id", None)
    except Exception:  # record_problem names it
        client_order_id = None
    return (seq, ts_ns, type_name, client_order_id, plain, bytes(prev_hash), bytes(digest))


def iter_stored(
    conn: psycopg.Connection[tuple[Any, ...]], name: str, *, after: int = 0
) -> Iterator[tuple[Any, ...]]:
    """Journal ``name``'s stored rows with seq > ``after``, by seq, fetched in chunks."""
    last = after
    while True:
        rows = conn.execute(
            f"SELECT {RAW_COLUMNS} FROM bastion_events WHERE name = %s AND seq > %s "
            "ORDER BY seq LIMIT %s",
            (name, last, READ_CHUNK),
        ).fetchall()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def check_sealing(
    db: psycopg.Connection[Any],
    name: str,
    where: str,
    sealer: Sealer,
    meta: dict[str, str],
    *,
    events: int,
) -> None:
    """Opening journal ``name`` (``meta`` as stored, ``events`` records): refuse a key
    that does not match the stored key check, a missing key, or a key for a journal of
    plaintext records; a new journal opened with a key records its key check."""
    stored_check = meta.get(META_SEAL_CHECK)
    if stored_check is not None:
        if not sealer.sealed:
            raise StorageKeyError(f"{where} is encrypted: its encryption key is needed")
        if stored_check != sealer.key_check:
            raise StorageKeyError(
                f"{where}: wrong encryption key (the journal's key check value does "
                "not match the key given)"
            )
        return
    if sealer.sealed:
        if events:
            raise StorageKeyError(
                f"{where} holds plaintext records but an encryption key is "
                "configured (start a new journal name for an encrypted journal)"
            )
        assert sealer.key_check is not None
        with db.transaction():
            write_meta(db, name, {META_SEAL: SEAL_NAME, META_SEAL_CHECK: sealer.key_check})
