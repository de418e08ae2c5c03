"""The NATS market data format: subjects, and the versioned message a handler publishes.

One message is one top-of-book quote, msgpack-encoded as an array (``WireQuote``,
``array_like``: no field names on the wire). Prices and sizes are raw integers in the
instrument's fixed-point scale, and the message says which scale (``price_precision``,
``size_precision``) so a node whose instrument definition differs drops it instead of
reading prices ten times off.

Subjects: ``<prefix>.<source>.<handler>.<instrument>`` (prefix ``bastion.md``). Each
handler publishes under its own id, so a node subscribes to one handler per feed and
never receives the same quote twice from two handlers (docs/feeds.md).

``decode`` is the edge of the node: bytes from the network become a ``QuoteTick`` or a
``Rejected`` reason, never an exception.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from bastion.errors import ConfigError
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument

VERSION: Final = 1
"""The message format's version; a node drops any other (``version``)."""
DEFAULT_PREFIX: Final = "bastion.md"
KIND_QUOTE: Final = "q"

_MAX: Final = 2**62  # beyond it an int is no price or size: and mypyc would box it
_Int = Annotated[int, msgspec.Meta(ge=-_MAX, lt=_MAX)]
_Seq = Annotated[int, msgspec.Meta(ge=1, lt=_MAX)]
_TOKEN: Final = re.compile(r"[A-Za-z0-9_\-:]+")

# reasons a message is dropped before the validators (counted per reason)
MALFORMED: Final = "malformed"
VERSION_MISMATCH: Final = "version"
WRONG_HANDLER: Final = "wrong_handler"
WRONG_INSTRUMENT: Final = "wrong_instrument"
WRONG_SCALE: Final = "wrong_scale"
REPLAYED: Final = "replayed"
REASONS: Final = (
    MALFORMED,
    VERSION_MISMATCH,
    WRONG_HANDLER,
    WRONG_INSTRUMENT,
    WRONG_SCALE,
    REPLAYED,
)


class WireHeader(msgspec.Struct, array_like=True, frozen=True):
    """The leading fields every version keeps: read first, so a message of another
    version is told apart from garbage."""

    v: int


class WireQuote(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Version 1 of a quote on the wire."""

    v: int
    kind: str
    handler: str
    instrument_id: str
    seq: _Seq
    """Per instrument and handler, strictly increasing, across the handler's restarts
    too (it starts above the handler's start time in microseconds)."""
    ts_ns: _Int
    """The source's timestamp (UNIX ns): the venue message's arrival at the handler,
    the synthetic or replayed quote's stamp."""
    bid: _Int
    ask: _Int
    bid_size: _Int
    ask_size: _Int
    price_precision: int
    size_precision: int


_encoder = msgspec.msgpack.Encoder()
_header = msgspec.msgpack.Decoder(WireHeader)
_quote = msgspec.msgpack.Decoder(WireQuote)


def encode(quote: QuoteTick, *, handler: str, instrument: Instrument) -> bytes:
    """A validated quote, stamped by ``handler`` (its ``seq`` already the handler's)."""
    return _encoder.encode(
        WireQuote(
            VERSION,
            KIND_QUOTE,
            handler,
            quote.instrument_id,
            quote.seq,
            quote.ts_ns,
            quote.bid,
            quote.ask,
            quote.bid_size,
            quote.ask_size,
            instrument.price_precision,
            instrument.size_precision,
        )
    )


def decode(data: bytes) -> WireQuote | str:
    """The message in ``data``, or the reason it is no message of ours (``MALFORMED``,
    ``VERSION_MISMATCH``)."""
    try:
        wire = _quote.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        pass
    else:
        return wire if wire.v == VERSION and wire.kind == KIND_QUOTE else VERSION_MISMATCH
    try:
        header = _header.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return MALFORMED
    return VERSION_MISMATCH if header.v != VERSION else MALFORMED


def to_quote(wire: WireQuote) -> QuoteTick:
    return QuoteTick(
        wire.instrument_id,
        wire.ts_ns,
        wire.bid,
        wire.ask,
        wire.bid_size,
        wire.ask_size,
        wire.seq,
    )


def subject(prefix: str, source: str, handler: str, instrument_id: str) -> str:
    return f"{prefix}.{source}.{handler}.{instrument_id}"


def check_token(value: str, key: str) -> None:
    """A subject token: letters, digits, ``_``, ``-``, ``:`` (no ``.``, no wildcard)."""
    if not _TOKEN.fullmatch(value):
        raise ConfigError(
            f"key '{key}': {value!r} cannot be a NATS subject token (letters, digits, "
            "'_', '-', ':' only)"
        )


def check_prefix(value: str, key: str) -> None:
    for token in value.split("."):
        check_token(token, key)
