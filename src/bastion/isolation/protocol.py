"""The messages between the node's core and a strategy process, and their framing.

Each message is a msgpack array (``msgspec``, tagged structs) behind a 4-byte
little-endian length. The core decodes what a strategy process sends with
``WORKER_DECODER``: anything that does not decode to one of the worker's messages,
with the right types, is a protocol violation and the process is failed; a frame
longer than ``MAX_WORKER_FRAME`` too. Nothing else crosses: the process gets no
object of the core, only these values.
"""

from __future__ import annotations

import struct
from typing import Final, get_args

import msgspec

from bastion.config import InstrumentConfig
from bastion.isolation.sandbox import Confinement
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.model.events import (
    ORDER_EVENT_TYPES,
    FeedStatus,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingReplace,
    OrderRejected,
    OrderSubmitted,
    OrderTransitionRefused,
    OrderUpdated,
)
from bastion.recovery.state import OrderState, PositionState

HEADER: Final = struct.Struct("<I")
MAX_WORKER_FRAME: Final = 1 << 20
"""Largest message a strategy process may send (its saved state is the largest)."""
MAX_CORE_FRAME: Final = 256 << 20
"""Largest message the core sends (the start message, with every open order)."""


class ProtocolError(Exception):
    """A frame or message that breaks the protocol."""


class _Msg(msgspec.Struct, array_like=True, frozen=True, gc=False, tag=True):
    pass


# -- core -> strategy process ----------------------------------------------------------
class StrategySpec(msgspec.Struct, array_like=True, frozen=True):
    name: str
    path: str
    """Absolute path of the strategy's file."""
    class_name: str
    params: dict[str, object]


class Start(_Msg, frozen=True, tag=1):
    id_prefix: str
    """Client order ids are ``id_prefix`` + a sequence number from a granted range."""
    ids: tuple[int, int]
    """The first granted range: sequence numbers ``ids[0]`` to ``ids[1]``, inclusive."""
    strategies: list[StrategySpec]
    instruments: list[InstrumentConfig]
    positions: list[PositionState]
    orders: list[OrderState]
    states: dict[str, bytes]
    last_quotes: list[QuoteTick]
    log_level: str
    log_format: str
    currency: str
    memory_mb: int
    cpu_s: int | None
    open_files: int
    read_dirs: list[str]


class Quote(_Msg, frozen=True, tag=2):
    instrument_id: str
    ts_ns: int
    bid: int
    ask: int
    bid_size: int
    ask_size: int


class BarMsg(_Msg, frozen=True, tag=3):
    instrument_id: str
    ts_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    interval_ns: int
    gap_before: int = 0
    backfilled: bool = False


OrderEvents = (
    OrderInitialized
    | OrderDenied
    | OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderPendingCancel
    | OrderPendingReplace
    | OrderCanceled
    | OrderExpired
    | OrderUpdated
    | OrderCancelRejected
    | OrderModifyRejected
    | OrderFilled
    | OrderTransitionRefused
)
if set(get_args(OrderEvents)) != set(ORDER_EVENT_TYPES):  # a new order event: add it above
    raise TypeError("isolation.protocol.OrderEvents lacks an order event type")


class EventMsg(_Msg, frozen=True, tag=4):
    event: OrderEvents | FeedStatus


class Ids(_Msg, frozen=True, tag=5):
    first: int
    last: int


class Ping(_Msg, frozen=True, tag=6):
    pass


class Save(_Msg, frozen=True, tag=7):
    pass


class Stop(_Msg, frozen=True, tag=8):
    pass


# -- strategy process -> core ----------------------------------------------------------
class Ready(_Msg, frozen=True, tag=20):
    confinement: Confinement


class Submit(_Msg, frozen=True, tag=21):
    strategy_id: str
    client_order_id: str
    instrument_id: str
    venue: str
    side: OrderSide
    order_type: OrderType
    quantity: int
    price: int | None
    time_in_force: TimeInForce
    reduce_only: bool


class Cancel(_Msg, frozen=True, tag=22):
    strategy_id: str
    client_order_id: str


class Modify(_Msg, frozen=True, tag=23):
    strategy_id: str
    client_order_id: str
    quantity: int
    price: int | None


class Subscribe(_Msg, frozen=True, tag=24):
    strategy_id: str
    instrument_id: str
    bars: bool


class Done(_Msg, frozen=True, tag=25):
    handled: int
    """Inputs handled since the process started (a running count)."""


class State(_Msg, frozen=True, tag=26):
    strategy_id: str
    data: bytes


class Failed(_Msg, frozen=True, tag=27):
    strategy_id: str
    error: str


class Bye(_Msg, frozen=True, tag=28):
    pass


CoreMessage = Start | Quote | BarMsg | EventMsg | Ids | Ping | Save | Stop
WorkerMessage = Ready | Submit | Cancel | Modify | Subscribe | Done | State | Failed | Bye

_encoder = msgspec.msgpack.Encoder()
WORKER_DECODER: Final = msgspec.msgpack.Decoder(WorkerMessage)
CORE_DECODER: Final = msgspec.msgpack.Decoder(CoreMessage)


def frame(message: _Msg) -> bytes:
    """``message`` encoded, behind its length."""
    payload = _encoder.encode(message)
    return HEADER.pack(len(payload)) + payload


def quote_frame(quote: QuoteTick) -> bytes:
    """A quote's frame (the hot path: no intermediate struct kept)."""
    return frame(
        Quote(
            quote.instrument_id, quote.ts_ns, quote.bid, quote.ask, quote.bid_size, quote.ask_size
        )
    )


class FrameBuffer:
    """Bytes received on a stream, cut into frames no longer than ``limit``."""

    __slots__ = ("_buf", "_limit")

    def __init__(self, limit: int) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes | memoryview) -> None:
        self._buf += data

    def __len__(self) -> int:
        return len(self._buf)

    def next(self) -> memoryview | None:
        """The next whole frame's payload, or None until more bytes arrive."""
        buf = self._buf
        if len(buf) < 4:
            return None
        (size,) = HEADER.unpack_from(buf)
        if size > self._limit:
            raise ProtocolError(f"frame of {size} bytes, more than the {self._limit} allowed")
        end = 4 + size
        if len(buf) < end:
            return None
        payload = bytes(buf[4:end])
        del buf[:end]
        return memoryview(payload)
