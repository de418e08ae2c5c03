"""``bastion feed CONFIG``: a feed handler process.

It reads one source (``[feed]``: the synthetic walk, a recorded file played in real
time, or a FIX venue's market data with its ``[[venues]]`` entry), passes every quote
through the same validators a node runs (``[validation]``), stamps what passes with a
per-instrument sequence number and its own id (``[handler] id``), and publishes it on
NATS (``<prefix>.<source>.<id>.<instrument>``, ``wire``).

Sequence numbers start above the handler's start time in microseconds, so a restarted
handler numbers on above its last run (its first message shows on the nodes as one
``seq_gap``) as long as it publishes under a million quotes a second per instrument.

Publishing never blocks the source: a quote waits in a bounded queue for the publisher
task; past ``max_pending`` the oldest is dropped and counted (``publish_dropped``).
While NATS is down the client holds what it was handed in its reconnect buffer and
sends it on reconnect; the nodes' ``stale`` validator drops what has aged too much.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter, deque
from pathlib import Path
from typing import Any, Literal

import msgspec
import structlog

from bastion.clock import Clock, LiveClock
from bastion.config import InstrumentConfig
from bastion.errors import ConfigError
from bastion.feeds import Feed, FeedContext, build_feed
from bastion.feeds.config import ReplayFeedEntry, SyntheticFeedEntry, VenueFeedEntry
from bastion.feeds.nats import wire
from bastion.feeds.nats.client import connect
from bastion.feeds.nats.config import NatsConnection
from bastion.feeds.validation import ValidatedFeed
from bastion.feeds.validation.config import ValidationConfig
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument
from bastion.tasks import TaskManager
from bastion.vault import SecretSource
from bastion.vault.config import VaultConfig
from bastion.venues.base import VenueAdapter, VenueContext
from bastion.venues.registry import VenueEntry, build_venue

log = structlog.get_logger("bastion.feeds.nats")

SourceEntry = SyntheticFeedEntry | ReplayFeedEntry | VenueFeedEntry


class HandlerSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[handler]``: who this handler is and what it publishes under."""

    id: str
    """Stamped on every message and part of its subject: a primary and its backup
    differ here (``md-a``, ``md-b``) and nowhere else."""
    source: str
    """The subject's source token (``sim``, ``replay-es``): what the quotes are of."""
    subject_prefix: str = wire.DEFAULT_PREFIX
    max_pending: int = 10_000
    stats_interval_s: float = 10.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"


class FeedHandlerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A ``bastion feed`` config file."""

    handler: HandlerSection
    nats: NatsConnection = msgspec.field(default_factory=NatsConnection)
    instruments: list[InstrumentConfig]
    feed: SourceEntry
    venues: list[VenueEntry] = []
    validation: ValidationConfig = msgspec.field(default_factory=ValidationConfig)
    vault: VaultConfig = msgspec.field(default_factory=VaultConfig)
    run_for_s: float | None = None

    def __post_init__(self) -> None:
        wire.check_token(self.handler.id, "handler.id")
        wire.check_token(self.handler.source, "handler.source")
        wire.check_prefix(self.handler.subject_prefix, "handler.subject_prefix")
        if self.handler.max_pending < 1:
            raise ConfigError("key 'handler.max_pending': must be >= 1")
        ids = {i.id for i in self.instruments}
        for i in self.instruments:
            wire.check_token(i.id, "instruments.id")
        wanted = self.feed.instruments or [i.id for i in self.instruments]
        for iid in wanted:
            if iid not in ids:
                raise ConfigError(f"key 'feed.instruments': unknown instrument '{iid}'")
        if isinstance(self.feed, VenueFeedEntry):
            names = [v.name for v in self.venues]
            if self.feed.venue not in names:
                raise ConfigError(
                    f"key 'feed.venue': venue '{self.feed.venue}' is not in [[venues]] "
                    f"({', '.join(names) or 'none'})"
                )
        self.nats.check("nats")
        self.validation.check_instruments(ids)

    def secret_refs(self) -> list[tuple[str, str]]:
        refs = self.nats.secret_refs("nats")
        for n, venue in enumerate(self.venues):
            venue_refs = getattr(venue, "secret_refs", None)
            if venue_refs is not None:
                refs.extend(venue_refs(f"venues[{n}]"))
        return refs


class Publisher:
    """The validators' sink: stamps and queues each quote; ``run`` publishes them."""

    def __init__(
        self,
        *,
        handler: str,
        source: str,
        prefix: str,
        instruments: dict[str, Instrument],
        first_seq: int,
        max_pending: int,
    ) -> None:
        self.handler = handler
        self._instruments = instruments
        self._subjects = {iid: wire.subject(prefix, source, handler, iid) for iid in instruments}
        self.subjects = sorted(self._subjects.values())
        self._seq = dict.fromkeys(instruments, first_seq)
        self._queue: deque[tuple[str, bytes]] = deque()
        self._max_pending = max_pending
        self._wake = asyncio.Event()
        self.counts: Counter[str] = Counter()

    def on_quote(self, quote: QuoteTick) -> None:
        iid = quote.instrument_id
        seq = self._seq[iid] + 1
        self._seq[iid] = seq
        stamped = msgspec.structs.replace(quote, seq=seq)
        payload = wire.encode(stamped, handler=self.handler, instrument=self._instruments[iid])
        if len(self._queue) >= self._max_pending:
            self._queue.popleft()
            self.counts["publish_dropped"] += 1
        self._queue.append((self._subjects[iid], payload))
        self._wake.set()

    def on_bar(self, bar: Bar) -> None:
        self.counts["bars_not_published"] += 1  # quotes only in format version 1

    async def run(self, client: Any) -> None:
        from nats.errors import Error as NatsError

        queue = self._queue
        while True:
            await self._wake.wait()
            self._wake.clear()
            while queue:
                subject, payload = queue.popleft()
                try:
                    await client.publish(subject, payload)
                except NatsError as error:  # its buffer full while reconnecting
                    self.counts["publish_failed"] += 1
                    log.warning("nats_publish_failed", subject=subject, error=str(error))
                else:
                    self.counts["published"] += 1


async def run_handler(
    config: FeedHandlerConfig,
    *,
    base_dir: Path,
    secrets: SecretSource | None,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until ``stop`` is set, SIGINT/SIGTERM or ``run_for_s``; the exit code."""
    clock = clock or LiveClock()
    stop = stop or asyncio.Event()
    instruments = {i.id: i.to_instrument() for i in config.instruments}
    venues = _venues(config, instruments, base_dir, clock, secrets)
    feed = build_feed(
        config.feed,
        FeedContext(instruments=instruments, venues=venues, base_dir=base_dir, secrets=secrets),
    )
    mine = {iid: instruments[iid] for iid in sorted(feed.instruments)}
    publisher = Publisher(
        handler=config.handler.id,
        source=config.handler.source,
        prefix=config.handler.subject_prefix,
        instruments=mine,
        first_seq=clock.timestamp_ns() // 1000,
        max_pending=config.handler.max_pending,
    )
    validated = ValidatedFeed(
        feed=feed.name,
        instruments=list(mine.values()),
        config=config.validation,
        sink=publisher,
        clock=clock,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    crashed: list[str] = []

    def on_crash(name: str, error: BaseException) -> None:
        crashed.append(name)
        stop.set()

    tasks = TaskManager(on_crash=on_crash)
    deadline = None if config.run_for_s is None else clock.monotonic_s() + config.run_for_s
    # a handler waiting for its server still stops on a signal or at run_for_s
    connecting = tasks.spawn(
        "connect",
        connect(
            config.nats,
            key="nats",
            name=f"handler-{config.handler.id}",
            base_dir=base_dir,
            secrets=secrets,
        ),
    )
    stopping = tasks.spawn("stop", stop.wait())
    await asyncio.wait(
        {connecting, stopping}, timeout=config.run_for_s, return_when=asyncio.FIRST_COMPLETED
    )
    if not connecting.done() or connecting.cancelled() or connecting.exception() is not None:
        error = None if not connecting.done() else connecting.exception()
        await tasks.cancel_all()
        if error is not None:
            raise error  # a secret or TLS file that cannot be read: the operator fixes it
        log.info("feed_handler_stopped", handler=config.handler.id, connected=False)
        return 0
    client = connecting.result()
    log.info(
        "feed_handler_started",
        handler=config.handler.id,
        source=config.handler.source,
        feed=feed.kind,
        subjects=publisher.subjects,
    )
    tasks.spawn("publisher", publisher.run(client))
    tasks.spawn("stats", _log_stats(config, feed, validated, publisher))
    if feed.paced:
        tasks.spawn(f"feed-{feed.name}", feed.run(validated, clock))
    else:
        feed.attach(validated)
        for venue in venues.values():
            await venue.connect()
    left = None if deadline is None else max(0.0, deadline - clock.monotonic_s())
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(left):
            await stop.wait()
    for venue in venues.values():
        await venue.disconnect()
    await tasks.cancel_all()
    await client.drain()
    log.info("feed_handler_stopped", handler=config.handler.id, **publisher.counts)
    return 1 if crashed else 0


def _venues(
    config: FeedHandlerConfig,
    instruments: dict[str, Instrument],
    base_dir: Path,
    clock: Clock,
    secrets: SecretSource | None,
) -> dict[str, VenueAdapter]:
    if not isinstance(config.feed, VenueFeedEntry):
        return {}
    context = VenueContext(
        clock=clock,
        instruments=instruments,
        base_dir=base_dir,
        epoch=1,
        live=True,
        secrets=secrets,
    )
    entry = next(v for v in config.venues if v.name == config.feed.venue)
    venue = build_venue(entry, context)
    return {venue.name: venue}


async def _log_stats(
    config: FeedHandlerConfig, feed: Feed, validated: ValidatedFeed, publisher: Publisher
) -> None:
    while True:
        await asyncio.sleep(config.handler.stats_interval_s)
        log.info(
            "feed_handler_stats",
            handler=config.handler.id,
            received=feed.stats().quotes,
            rejected={f"{h.instrument_id}:{h.reason}": h.hits for h in validated.counts()},
            **publisher.counts,
        )
