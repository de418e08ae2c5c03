"""The NATS feed's edge: the wire format round-trips, and a message that is garbage, of
another version, from another handler, for another instrument, in another scale or
replayed is counted by reason and dropped, never raised; random bytes never crash the
decoder. The configs refuse a credential in clear and a subject token with a dot."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.errors import ConfigError
from bastion.feeds import FeedContext, build_feed
from bastion.feeds.nats import wire
from bastion.feeds.nats.config import NatsConnection, NatsFeedEntry
from bastion.feeds.nats.feed import NatsFeed
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument

IID = "XYZ"
T0 = 1_704_205_800_000_000_000
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)
SUBJECT = "bastion.md.sim.md-a.XYZ"


def _feed(**changes: Any) -> NatsFeed:
    entry = NatsFeedEntry(name="a", source="sim", handler="md-a", instruments=[IID], **changes)
    feed = build_feed(
        entry, FeedContext(instruments={IID: INSTRUMENT}, venues={}, base_dir=Path("."))
    )
    assert isinstance(feed, NatsFeed)
    return feed


def _quote(seq: int, **changes: Any) -> QuoteTick:
    quote = QuoteTick(IID, T0 + seq, 10_000, 10_001, 5, 5, seq)
    return msgspec.structs.replace(quote, **changes)


def _payload(seq: int, *, handler: str = "md-a", instrument: Instrument = INSTRUMENT) -> bytes:
    return wire.encode(_quote(seq), handler=handler, instrument=instrument)


class Collect(list[QuoteTick]):
    def __call__(self, quote: QuoteTick) -> None:
        self.append(quote)


def test_when_a_quote_is_encoded_then_it_decodes_to_the_same_quote() -> None:
    """msgpack, array-like, version 1: every field comes back."""
    decoded = wire.decode(_payload(7))
    assert isinstance(decoded, wire.WireQuote)
    assert (decoded.v, decoded.handler, decoded.price_precision) == (1, "md-a", 2)
    assert wire.to_quote(decoded) == _quote(7)


def test_when_messages_are_good_then_they_are_delivered_in_sequence() -> None:
    """Seqs 1, 2, 5 are delivered (the gap is the validators' to flag), counted per
    instrument."""
    feed, out = _feed(), Collect()
    for seq in (1, 2, 5):
        feed.on_message(SUBJECT, _payload(seq), out)
    assert [q.seq for q in out] == [1, 2, 5]
    assert feed.stats().quotes == {IID: 3}
    assert feed.stats().rejects == {}


@pytest.mark.parametrize(
    ("subject", "data", "reason"),
    [
        (SUBJECT, b"garbage", wire.MALFORMED),
        (SUBJECT, b"", wire.MALFORMED),
        (SUBJECT, msgspec.msgpack.encode([2, "q", "md-a", IID]), wire.VERSION_MISMATCH),
        (SUBJECT, msgspec.msgpack.encode({"v": 1}), wire.MALFORMED),
        (SUBJECT, _payload(1, handler="md-b"), wire.WRONG_HANDLER),
        ("bastion.md.sim.md-a.OTHER", _payload(1), wire.WRONG_INSTRUMENT),
        (
            SUBJECT,
            wire.encode(
                _quote(1),
                handler="md-a",
                instrument=Instrument(
                    id=IID,
                    venue="SIM",
                    tick_size=Decimal("0.001"),
                    lot_size=Decimal(1),
                    quote_currency="USD",
                ),
            ),
            wire.WRONG_SCALE,
        ),
        (
            SUBJECT,
            msgspec.msgpack.encode([1, "q", "md-a", IID, 1, T0, 2**63, 1, 1, 1, 2, 0]),
            wire.MALFORMED,
        ),
        (
            SUBJECT,
            msgspec.msgpack.encode([1, "q", "md-a", IID, 0, T0, 1, 2, 1, 1, 2, 0]),
            wire.MALFORMED,
        ),
    ],
    ids=["garbage", "empty", "v2", "map", "handler", "instrument", "scale", "huge", "seq0"],
)
def test_when_a_message_is_bad_then_it_is_counted_and_dropped(
    subject: str, data: bytes, reason: str
) -> None:
    """Each bad kind is counted under its reason; nothing reaches the node."""
    feed, out = _feed(), Collect()
    feed.on_message(subject, data, out)
    assert out == []
    assert feed.stats().rejects == {reason: 1}


def test_when_a_message_is_replayed_then_it_is_dropped() -> None:
    """A seq at or below the last delivered one is never delivered again."""
    feed, out = _feed(), Collect()
    for seq in (1, 2, 2, 1, 3):
        feed.on_message(SUBJECT, _payload(seq), out)
    assert [q.seq for q in out] == [1, 2, 3]
    assert feed.stats().rejects == {wire.REPLAYED: 2}


def test_when_bad_messages_flood_then_one_line_per_interval_is_logged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A thousand garbage messages: counted a thousand times, logged once."""
    feed = _feed()
    for _ in range(1000):
        feed.on_message(SUBJECT, b"\xff\x00", Collect())
    assert feed.stats().rejects == {wire.MALFORMED: 1000}
    assert capsys.readouterr().out.count("nats_message_dropped") <= 1


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_when_random_bytes_arrive_then_the_decoder_never_raises(data: bytes) -> None:
    """Any bytes: a message or a reason, never an exception."""
    decoded = wire.decode(data)
    assert isinstance(decoded, (wire.WireQuote, str))
    _feed().on_message(SUBJECT, data, Collect())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=5), st.none()), max_size=14
    )
)
def test_when_random_arrays_arrive_then_the_feed_never_raises(fields: list[object]) -> None:
    """msgpack arrays of random ints (any msgpack can hold), strings and nils: no
    exception."""
    _feed().on_message(SUBJECT, msgspec.msgpack.encode(fields), Collect())


def test_when_a_password_is_written_in_clear_then_the_config_is_refused() -> None:
    """Credentials are vault references only."""
    with pytest.raises(ConfigError, match=r"feeds.a.nats.password.*secret:NAME"):
        _feed(nats=NatsConnection(user="node", password="hunter2"))
    with pytest.raises(ConfigError, match=r"feeds.a.nats.token"):
        _feed(nats=NatsConnection(token="abc"))
    feed = _feed(nats=NatsConnection(user="node", password="secret:nats/node"))
    assert feed.config.nats.secret_refs("n") == [("n.password", "nats/node")]


def test_when_a_subject_token_has_a_dot_then_the_config_is_refused() -> None:
    """A dot would shift the subject's tokens: the handler id and source cannot hold one."""
    with pytest.raises(ConfigError, match="handler"):
        NatsFeedEntry(name="a", source="sim", handler="md.a", instruments=[IID])
