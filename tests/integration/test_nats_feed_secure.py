"""A node's NATS feed logs in to a real server with a password from the vault, and over
TLS checked against the server's CA: quotes arrive; a wrong password never crashes the
feed (it keeps retrying, and nothing is delivered)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bastion.certs import create_certs
from bastion.clock import LiveClock
from bastion.feeds import FeedContext
from bastion.feeds.nats import wire
from bastion.feeds.nats.config import NatsConnection, NatsFeedEntry
from bastion.feeds.nats.feed import NatsFeed
from bastion.fix.tls import TlsClientConfig
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument
from bastion.vault.refs import MemorySecrets
from kit.nats_server import nats_server

IID = "XYZ"
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)
SUBJECT = wire.subject(wire.DEFAULT_PREFIX, "sim", "md-a", IID)


class Sink:
    def __init__(self) -> None:
        self.quotes: list[QuoteTick] = []

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes.append(quote)

    def on_bar(self, bar: Bar) -> None:
        pass


async def _deliver(
    connection: NatsConnection, secrets: MemorySecrets, publish: dict[str, Any], base: Path
) -> tuple[Sink, NatsFeed]:
    """Run a feed with ``connection``; publish quotes with ``publish`` options until one
    arrives or 3 s pass."""
    from nats.aio.client import Client

    entry = NatsFeedEntry(
        name="a", source="sim", handler="md-a", instruments=[IID], nats=connection
    )
    context = FeedContext(instruments={IID: INSTRUMENT}, venues={}, base_dir=base, secrets=secrets)
    feed, sink = NatsFeed(entry, context), Sink()
    task = asyncio.create_task(feed.run(sink, LiveClock()))
    publisher = Client()
    await publisher.connect(**publish)
    try:
        deadline = time.monotonic() + 3
        seq = 0
        while not sink.quotes and time.monotonic() < deadline:
            seq += 1
            quote = QuoteTick(IID, time.time_ns(), 10_000, 10_001, 5, 5, seq)
            await publisher.publish(
                SUBJECT, wire.encode(quote, handler="md-a", instrument=INSTRUMENT)
            )
            await asyncio.sleep(0.02)
    finally:
        await publisher.close()
        assert not task.done(), "the feed's task ended"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return sink, feed


def test_when_the_password_comes_from_the_vault_then_quotes_arrive(tmp_path: Path) -> None:
    """--user/--pass server; the feed's password is ``secret:nats/node``."""
    secrets = MemorySecrets({"nats/node": "s3cret-pass"})

    async def run() -> None:
        with nats_server(tmp_path, args=("--user", "node", "--pass", "s3cret-pass")) as server:
            connection = NatsConnection(
                servers=[server.url], user="node", password="secret:nats/node"
            )
            publish = {"servers": [server.url], "user": "node", "password": "s3cret-pass"}
            sink, _ = await _deliver(connection, secrets, publish, tmp_path)
            assert sink.quotes and sink.quotes[0].instrument_id == IID

    asyncio.run(run())


def test_when_the_password_is_wrong_then_the_feed_retries_and_delivers_nothing(
    tmp_path: Path,
) -> None:
    """The vault holds a stale password: no crash, no quote."""
    secrets = MemorySecrets({"nats/node": "old-pass"})

    async def run() -> None:
        with nats_server(tmp_path, args=("--user", "node", "--pass", "s3cret-pass")) as server:
            connection = NatsConnection(
                servers=[server.url],
                user="node",
                password="secret:nats/node",
                reconnect_wait_ms=50,
            )
            publish = {"servers": [server.url], "user": "node", "password": "s3cret-pass"}
            sink, feed = await _deliver(connection, secrets, publish, tmp_path)
            assert sink.quotes == [] and feed.client is None

    asyncio.run(run())


def test_when_the_server_speaks_tls_then_the_feed_checks_it_against_the_ca(
    tmp_path: Path,
) -> None:
    """nats-server with a certificate from a local CA; the feed's ``[tls] ca_file``."""
    certs = tmp_path / "certs"
    create_certs(certs)

    async def run() -> None:
        args = (
            "--tls",
            "--tlscert",
            str(certs / "venue.pem"),
            "--tlskey",
            str(certs / "venue.key"),
        )
        with nats_server(tmp_path, args=args) as server:
            url = f"tls://127.0.0.1:{server.port}"
            connection = NatsConnection(
                servers=[url], tls=TlsClientConfig(ca_file=str(certs / "ca.pem"))
            )
            tls = connection.tls
            assert tls is not None
            context = tls.context(tmp_path, "tls")
            publish = {"servers": [url], "tls": context}
            sink, _ = await _deliver(connection, MemorySecrets({}), publish, tmp_path)
            assert sink.quotes

    asyncio.run(run())
