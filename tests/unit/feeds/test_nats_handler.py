"""The feed handler's config and life: a config names its bad key; a handler whose
NATS server is not there still stops at ``run_for_s``; the publisher numbers each
instrument's quotes on from its first number and drops the oldest past its bound."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bastion.config import load_config
from bastion.errors import ConfigError
from bastion.feeds.nats import wire
from bastion.feeds.nats.handler import FeedHandlerConfig, Publisher, run_handler
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument
from kit.net import free_tcp_port

INSTRUMENT = Instrument(
    id="XYZ", venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)
TOML = """
[handler]
id = "md-a"
source = "sim"
[nats]
servers = ["nats://127.0.0.1:{port}"]
reconnect_wait_ms = 50
[[instruments]]
id = "XYZ"
tick_size = "0.01"
[feed]
kind = "synthetic"
name = "walk"
instruments = ["XYZ"]
"""


def _config(tmp_path: Path, text: str) -> FeedHandlerConfig:
    path = tmp_path / "feed.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, FeedHandlerConfig)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[feed]\nkind = "venue"\nname = "v"\nvenue = "FIX"\n', "feed.venue"),
        ('password = "hunter2"\nuser = "u"\n', "nats.password"),
    ],
    ids=["venue-missing", "password-in-clear"],
)
def test_when_the_config_is_wrong_then_the_error_names_the_key(
    tmp_path: Path, extra: str, key: str
) -> None:
    """A venue source without its venue; a password in clear text."""
    text = TOML.format(port=4222)
    if extra.startswith("[feed]"):
        text = text[: text.index("[feed]")] + extra
    else:
        text = text.replace("reconnect_wait_ms = 50\n", "reconnect_wait_ms = 50\n" + extra)
    with pytest.raises(ConfigError, match=key):
        _config(tmp_path, text)


def test_when_a_dotted_handler_id_is_given_then_the_config_is_refused(tmp_path: Path) -> None:
    """Ids are subject tokens."""
    with pytest.raises(ConfigError, match=r"handler\.id"):
        _config(tmp_path, TOML.format(port=4222).replace('id = "md-a"', 'id = "md.a"'))


def test_when_no_server_answers_then_the_handler_still_stops_on_time(tmp_path: Path) -> None:
    """run_for_s 0.3 with nothing on the port: it returns 0 within a second or so."""
    config = msgspec.structs.replace(
        _config(tmp_path, TOML.format(port=free_tcp_port())), run_for_s=0.3
    )
    start = time.monotonic()
    assert asyncio.run(run_handler(config, base_dir=tmp_path, secrets=None)) == 0
    assert time.monotonic() - start < 5


def test_when_quotes_are_published_then_each_instrument_numbers_on_from_the_first() -> None:
    """seq = first + 1, + 2, ...; past max_pending the oldest is dropped and counted."""

    async def run() -> list[bytes]:
        publisher = Publisher(
            handler="md-a",
            source="sim",
            prefix="bastion.md",
            instruments={"XYZ": INSTRUMENT},
            first_seq=1000,
            max_pending=2,
        )
        for n in range(3):
            publisher.on_quote(QuoteTick("XYZ", n + 1, 10_000, 10_001, 5, 5))
        assert publisher.counts["publish_dropped"] == 1
        return [payload for _, payload in publisher._queue]

    payloads = asyncio.run(run())
    seqs = []
    for payload in payloads:
        decoded = wire.decode(payload)
        assert isinstance(decoded, wire.WireQuote)
        seqs.append(decoded.seq)
    assert seqs == [1002, 1003]
