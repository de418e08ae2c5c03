"""Record encoding and the hash chain: what a journal record is, byte for byte.

A record's payload is the msgpack encoding of the tagged event struct. Its hash is

    sha256(prev_hash || seq:u64be || ts_ns:i64be || len(type):u16be || type:utf-8 || payload)

with ``prev_hash`` the previous record's hash (32 zero bytes before the first
record). Only this module computes it, so every writer and reader agrees.
"""

from __future__ import annotations

import hashlib
import struct
from typing import TYPE_CHECKING, Any, Final, TypeAlias, Union

import msgspec

from bastion.model import events as ev

HASH_NAME: Final = "sha256"
GENESIS_HASH: Final = bytes(32)

# What a journal record decodes to: the union of the registry's event types
# (``ev.EVENT_REGISTRY``), built from it at run time; the type checker sees their base.
if TYPE_CHECKING:
    JournalEvent: TypeAlias = ev.Event
else:
    JournalEvent = Union[ev.EVENT_TYPES]  # noqa: UP007

# seq, ts_ns, type, client_order_id, payload, prev_hash, hash
Row = tuple[int, int, str, str | None, bytes, bytes, bytes]

_HEADER = struct.Struct(">QqH")
_SEQ = struct.Struct(">Q")
_sha256 = hashlib.sha256


def chain_hash(prev_hash: bytes, seq: int, ts_ns: int, type_name: str, payload: bytes) -> bytes:
    """The hash of one record, chained to ``prev_hash``."""
    name = type_name.encode()
    h = _sha256(prev_hash)
    h.update(_HEADER.pack(seq, ts_ns, len(name)))
    h.update(name)
    h.update(payload)
    return h.digest()


def snapshot_digest(seq: int, event_hash: bytes, payload: bytes) -> bytes:
    """The integrity digest of a snapshot that covers events up to ``seq``."""
    h = _sha256(_SEQ.pack(seq))
    h.update(event_hash)
    h.update(payload)
    return h.digest()


class RecordEncoder:
    """Turns events into chained rows; the one place seq and hashes are assigned."""

    def __init__(self, last_seq: int, last_hash: bytes) -> None:
        self.last_seq = last_seq
        self.last_hash = last_hash
        self._encode = msgspec.msgpack.Encoder().encode

    def encode(self, event: Any) -> Row:
        seq = self.last_seq + 1
        type_name = type(event).__name__
        ts_ns = event.ts_ns
        payload = self._encode(event)
        prev = self.last_hash
        digest = chain_hash(prev, seq, ts_ns, type_name, payload)
        self.last_seq = seq
        self.last_hash = digest
        client_order_id = getattr(event, "client_order_id", None)
        return (seq, ts_ns, type_name, client_order_id, payload, prev, digest)


def new_decoder() -> msgspec.msgpack.Decoder[JournalEvent]:
    """A decoder for every registered event type (by its tag)."""
    return msgspec.msgpack.Decoder(JournalEvent)


def record_problem(
    row: tuple[int, int, str, str | None, bytes, Any, Any],
    expected_seq: int,
    expected_prev: bytes,
    decoder: msgspec.msgpack.Decoder[JournalEvent],
) -> str | None:
    """What is wrong with one stored record, or None: the checks ``verify`` makes.

    Checked in order: seq continuity, the link to the previous hash, that the payload
    decodes, the record's own hash, then that the payload agrees with the columns.
    """
    seq, ts_ns, type_name, client_order_id, payload, prev_hash, digest = row
    if seq != expected_seq:
        return f"gap in seq: expected {expected_seq}, found {seq}"
    if prev_hash != expected_prev:
        return "prev_hash does not match the previous record's hash"
    if not isinstance(payload, bytes):
        return "undecodable payload: not a blob"
    try:
        event = decoder.decode(payload)
    except msgspec.DecodeError as error:
        return f"undecodable payload: {error}"
    try:
        computed = chain_hash(expected_prev, seq, ts_ns, type_name, payload)
    except (struct.error, TypeError, AttributeError):
        computed = None  # a column of the wrong type: it cannot match
    if digest != computed:
        return "hash mismatch"
    if type(event).__name__ != type_name:
        return f"type column {type_name!r} but payload is {type(event).__name__}"
    if event.ts_ns != ts_ns:
        return f"ts_ns column {ts_ns} but payload has {event.ts_ns}"
    if getattr(event, "client_order_id", None) != client_order_id:
        return "client_order_id column does not match the payload"
    return None
