"""A node's feeds deliver through the validators: a bad print from a feed never reaches
a strategy and is counted, and the ``pause`` action pauses the instrument in the risk
gate (orders on it denied ``INSTRUMENT_PAUSED``, the pause journaled as an event)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, NodeSection, PaperConfig
from bastion.feeds.config import ReplayFeedEntry, SyntheticFeedEntry
from bastion.feeds.validation import ValidationConfig
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType
from bastion.model.events import InstrumentPaused, OrderDenied
from bastion.node.kernel import Kernel
from bastion.strategy.config import StrategyConfig

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
RECORDER = """
from bastion.strategy import QuoteTick, Strategy


class Recorder(Strategy):
    def on_start(self) -> None:
        self.seen: list[QuoteTick] = []
        self.subscribe_quotes(self.params["instrument"])

    def on_quote(self, quote: QuoteTick) -> None:
        self.seen.append(quote)
"""


def node(tmp_path: Path, feed: Any, **validation: Any) -> Kernel:
    (tmp_path / "recorder.py").write_text(RECORDER)
    config = PaperConfig(
        node=NodeSection(isolation="inline"),
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[
            StrategyConfig(
                name="rec", path="recorder.py", class_name="Recorder", params={"instrument": IID}
            )
        ],
        feeds=[feed],
        validation=msgspec.convert(validation, ValidationConfig),
    )
    kernel = Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=1)
    kernel.start()
    return kernel


def seen(kernel: Kernel) -> list[QuoteTick]:
    return kernel.strategies.strategies["rec"].seen  # type: ignore[attr-defined, no-any-return]


def rejected(kernel: Kernel) -> dict[str, int]:
    return {h.reason: h.hits for v in kernel.validated_feeds for h in v.counts()}


def test_when_replay_feed_sends_a_spike_then_strategy_never_sees_it(tmp_path: Path) -> None:
    """A recorded file with a 50% print in it, replayed by the node's feed: the strategy
    sees every quote but that one, which is counted as a spike."""
    rows = ["ts_ns,bid,ask,bid_size,ask_size"]
    prices = ["100.00", "100.01", "150.00", "100.02", "100.01"]
    for n, bid in enumerate(prices):
        ask = Decimal(bid) + Decimal("0.02")
        rows.append(f"{T0 + n * 1000},{bid},{ask},10,10")
    (tmp_path / "quotes.csv").write_text("\n".join(rows) + "\n")
    feed_config = ReplayFeedEntry(name="rec", path="quotes.csv", instrument=IID)
    kernel = node(tmp_path, feed_config)
    (feed,) = kernel.feeds
    asyncio.run(feed.run(kernel.feed_sinks["rec"], kernel.clock))
    assert [kernel.instruments[IID].price(q.bid) for q in seen(kernel)] == [
        Decimal(p) for p in ("100.00", "100.01", "100.02", "100.01")
    ]
    assert rejected(kernel) == {"spike": 1}


def test_when_feed_sends_crossed_and_off_tick_then_dropped_counted_and_never_seen(
    tmp_path: Path,
) -> None:
    """Crossed, locked, off-tick and zero-size quotes delivered by a feed are dropped and
    counted by reason; the good ones around them reach the strategy."""
    kernel = node(tmp_path, SyntheticFeedEntry(name="syn", instruments=[IID]))
    sink = kernel.feed_sinks["syn"]
    good = [QuoteTick(IID, T0 + n, 10_000 + n, 10_002 + n, 5, 5) for n in range(3)]
    sink.on_quote(good[0])
    sink.on_quote(QuoteTick(IID, T0 + 1, 10_003, 10_001, 5, 5))  # crossed
    sink.on_quote(good[1])
    sink.on_quote(QuoteTick(IID, T0 + 2, 10_002, 10_002, 5, 5))  # locked
    sink.on_quote(QuoteTick(IID, T0 + 2, 10_000, 10_002, 0, 5))  # no size
    sink.on_quote(good[2])
    assert seen(kernel) == good
    assert kernel.last_quotes[IID] is good[2]
    assert rejected(kernel) == {"crossed": 1, "locked": 1, "bad_size": 1}


def test_when_pause_action_hits_then_risk_gate_pauses_the_instrument(tmp_path: Path) -> None:
    """``crossed = "pause"``: a crossed quote pauses new orders on the instrument for
    ``pause_ms`` (an ``InstrumentPaused`` event), its orders are denied meanwhile, and
    the pause ends by itself."""
    kernel = node(
        tmp_path,
        SyntheticFeedEntry(name="syn", instruments=[IID]),
        pause_ms=500,
        actions={"crossed": "pause"},
    )
    events: list[object] = []
    kernel.bus.subscribe(InstrumentPaused, events.append)
    kernel.bus.subscribe(OrderDenied, events.append)
    sink = kernel.feed_sinks["syn"]
    sink.on_quote(QuoteTick(IID, T0, 10_000, 10_002, 5, 5))
    sink.on_quote(QuoteTick(IID, T0, 10_003, 10_001, 5, 5))
    assert IID in kernel.risk.paused_instruments
    order = kernel.execution.create_order(
        strategy_id="rec",
        instrument_id=IID,
        venue="SIM",
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=1,
    )
    assert not kernel.risk.submit_order(order)
    paused, denied = events
    assert isinstance(paused, InstrumentPaused) and "crossed" in paused.reason
    assert isinstance(denied, OrderDenied) and denied.reason == "INSTRUMENT_PAUSED"
    assert "validation pause_ms 500" in denied.message
    kernel.clock.advance_to(T0 + 501 * 1_000_000)  # type: ignore[attr-defined]
    assert IID not in kernel.risk.paused_instruments


def test_when_validation_disabled_then_feeds_deliver_to_the_kernel(tmp_path: Path) -> None:
    """``enabled = false``: no validator between the feed and the kernel."""
    kernel = node(tmp_path, SyntheticFeedEntry(name="syn", instruments=[IID]), enabled=False)
    assert kernel.feed_sinks["syn"] is kernel and kernel.validated_feeds == []
