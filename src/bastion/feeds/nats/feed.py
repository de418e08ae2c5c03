"""The node's ``kind = "nats"`` feed: one handler's quotes for some instruments, from NATS.

Every message passes here before the validators: it must decode (``wire.decode``), be
of this format's version, come from the configured handler for the instrument of its
subject, in that instrument's scale, and carry a sequence number above the last one
taken for the instrument (so a message the network or a reconnect replays is never
delivered twice, validation on or off). A message that fails is counted by reason
(``stats().rejects``) and dropped; the first of each reason per ``log_interval_ms`` is
logged (``nats_message_dropped``, with how many went unlogged since). Nothing a message
holds can raise out of here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import structlog

from bastion.clock import Clock
from bastion.feeds.base import Feed, FeedContext, FeedSink, FeedStats
from bastion.feeds.nats import wire
from bastion.feeds.nats.client import connect
from bastion.feeds.nats.config import NatsFeedEntry
from bastion.model.instruments import Instrument

log = structlog.get_logger("bastion.feeds.nats")


class NatsFeed(Feed):
    """Subscribes to ``<prefix>.<source>.<handler>.<instrument>`` for each instrument."""

    kind = "nats"
    paced = True  # the node runs it: it connects once the strategies start

    def __init__(self, config: NatsFeedEntry, context: FeedContext) -> None:
        super().__init__(config.name, config.instruments)
        self.config = config
        self._context = context
        self._scales = {
            iid: (i.price_precision, i.size_precision)
            for iid, i in _instruments(config, context).items()
        }
        self._subjects = {
            wire.subject(config.subject_prefix, config.source, config.handler, iid): iid
            for iid in sorted(self.instruments)
        }
        self._last_seq: dict[str, int] = dict.fromkeys(self.instruments, 0)
        self.dropped: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self._clock: Clock | None = None
        self.client: Any = None
        """The NATS connection while the feed runs (tests drop it)."""

    def stats(self) -> FeedStats:
        return FeedStats(dict(self.quote_counts), dict(self.dropped))

    async def run(self, sink: FeedSink, clock: Clock) -> None:
        self._clock = clock
        on_message = self.on_message
        deliver = sink.on_quote
        self.client = await connect(
            self.config.nats,
            key=f"feeds.{self.name}.nats",
            name=f"feed-{self.name}",
            base_dir=self._context.base_dir,
            secrets=self._context.secrets,
        )

        async def handle(msg: Any) -> None:
            on_message(msg.subject, msg.data, deliver)

        try:
            for subject in self._subjects:
                await self.client.subscribe(subject, cb=handle)
            log.info(
                "nats_feed_subscribed",
                feed=self.name,
                subjects=sorted(self._subjects),
                handler=self.config.handler,
            )
            await asyncio.Event().wait()  # until the node cancels it
        finally:
            await self.client.close()

    def on_message(self, subject: str, data: bytes, deliver: Any) -> None:
        """One message from NATS: delivered as a ``QuoteTick`` or dropped and counted."""
        decoded = wire.decode(data)
        if type(decoded) is str:
            self._drop(decoded, subject, data)
            return
        assert isinstance(decoded, wire.WireQuote)
        iid = self._subjects.get(subject)
        if iid is None or decoded.instrument_id != iid:
            self._drop(wire.WRONG_INSTRUMENT, subject, data)
            return
        if decoded.handler != self.config.handler:
            self._drop(wire.WRONG_HANDLER, subject, data)
            return
        if (decoded.price_precision, decoded.size_precision) != self._scales[iid]:
            self._drop(wire.WRONG_SCALE, subject, data)
            return
        if decoded.seq <= self._last_seq[iid]:
            self._drop(wire.REPLAYED, subject, data)
            return
        self._last_seq[iid] = decoded.seq
        self.quote_counts[iid] += 1
        deliver(wire.to_quote(decoded))

    def _drop(self, reason: str, subject: str, data: bytes) -> None:
        self.dropped[reason] += 1
        now = self._clock.monotonic_s() if self._clock is not None else 0.0
        last = self._logged_at.get(reason)
        if last is not None and now - last < self.config.log_interval_ms / 1000:
            self._unlogged[reason] += 1
            return
        self._logged_at[reason] = now
        log.warning(
            "nats_message_dropped",
            feed=self.name,
            reason=reason,
            subject=subject[:200],
            size=len(data),
            head=data[:32].hex(),
            count=self.dropped[reason],
            unlogged_since_last=self._unlogged.pop(reason, 0),
        )


def _instruments(config: NatsFeedEntry, context: FeedContext) -> dict[str, Instrument]:
    return {iid: context.instruments[iid] for iid in config.instruments}


def build(config: NatsFeedEntry, context: FeedContext) -> NatsFeed:
    return NatsFeed(config, context)
