"""A feed handler's side of NATS played by a test: quotes in the wire format
(``bastion.feeds.nats.wire``) published from a thread, as a handler would, or as a
faulty or hostile one would.

Each ``Lane`` is one handler's stream of one instrument: every ``interval_ms`` it
publishes its steady quote (fresh ``seq``, ``ts_ns`` from the wall clock), unless a
step is queued (``Lane.inject``): a step is a function of the lane that returns the
messages to publish in that slot instead (a gap, a spike, a copy of the last message,
an older timestamp...) and may move the lane's level. Nothing here validates: what the
messages hold is the test's business.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import msgspec
import nats

from bastion.feeds.nats import wire

Step = Callable[["Lane"], Sequence[wire.WireQuote]]
START_TIMEOUT_S = 10.0


class Lane:
    """One handler's quotes of one instrument: ``bid``/``ask`` (raw) plus ``offset``
    (raw, added to both: a level the lane drifts to), sizes ``size``."""

    def __init__(
        self,
        handler: str,
        *,
        instrument_id: str,
        bid: int,
        ask: int,
        size: int,
        price_precision: int,
        size_precision: int,
        source: str = "sim",
        prefix: str = "bastion.md",
    ) -> None:
        self.handler = handler
        self.instrument_id = instrument_id
        self.subject = wire.subject(prefix, source, handler, instrument_id)
        self.bid = bid
        self.ask = ask
        self.size = size
        self.offset = 0
        self.seq = 0
        self.last: wire.WireQuote | None = None
        self.precisions = (price_precision, size_precision)
        self.steps: deque[Step] = deque()
        self.published = 0

    def quote(
        self,
        *,
        bid: int | None = None,
        ask: int | None = None,
        ts_ns: int | None = None,
        ask_size: int | None = None,
        seq_skip: int = 0,
    ) -> wire.WireQuote:
        """The lane's next message (``seq`` advanced by 1 + ``seq_skip``), the steady
        quote unless told otherwise."""
        self.seq += 1 + seq_skip
        message = wire.WireQuote(
            wire.VERSION,
            wire.KIND_QUOTE,
            self.handler,
            self.instrument_id,
            self.seq,
            time.time_ns() if ts_ns is None else ts_ns,
            self.bid + self.offset if bid is None else bid,
            self.ask + self.offset if ask is None else ask,
            self.size,
            self.size if ask_size is None else ask_size,
            *self.precisions,
        )
        self.last = message
        return message

    def inject(self, *steps: Step) -> None:
        """Queue ``steps``, one per slot, in place of the steady quotes (thread-safe:
        a deque append)."""
        self.steps.extend(steps)

    def next_messages(self) -> Sequence[wire.WireQuote]:
        if self.steps:
            return self.steps.popleft()(self)
        return [self.quote()]


class Publisher:
    """Publishes each lane's messages every ``interval_ms`` to the server at ``url``,
    from a thread with its own event loop, until ``close``."""

    def __init__(self, url: str, lanes: Sequence[Lane], *, interval_ms: int = 10) -> None:
        self.url = url
        self.lanes = {lane.handler: lane for lane in lanes}
        self.interval_s = interval_ms / 1000
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._main, name="nats-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._connected.wait(START_TIMEOUT_S):
            raise AssertionError(f"publisher not connected to {self.url}: {self.error!r}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as e:  # kept for the test to see, not lost in a thread
            self.error = e

    async def _run(self) -> None:
        client = await nats.connect(self.url, reconnect_time_wait=0.1)
        self._connected.set()
        encoder = msgspec.msgpack.Encoder()
        try:
            next_at = time.monotonic()
            while not self._stop.is_set():
                for lane in self.lanes.values():
                    for message in lane.next_messages():
                        await client.publish(lane.subject, encoder.encode(message))
                        lane.published += 1
                await client.flush()
                next_at += self.interval_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            await client.close()


@contextmanager
def publishing(url: str, lanes: Sequence[Lane], *, interval_ms: int = 10) -> Iterator[Publisher]:
    publisher = Publisher(url, lanes, interval_ms=interval_ms)
    publisher.start()
    try:
        yield publisher
    finally:
        publisher.close()
    if publisher.error is not None:
        raise AssertionError(f"the publisher failed: {publisher.error!r}")
