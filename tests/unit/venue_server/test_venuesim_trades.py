"""Trade prints from the venue simulator: each match is published to the sessions whose
MarketDataRequest asked for Trade entries (269=2), and a node's Kernel keeps the last one
(through its FIX adapter) as the price collar's "last" reference."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.clock import LiveClock, SimClock
from bastion.config import InstrumentConfig, PaperConfig
from bastion.fix.codec import FixMessage
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.node.kernel import Kernel
from bastion.risk.config import RiskConfig
from bastion.strategy.config import StrategyConfig
from bastion.venue_server.engine import VenueSimEngine
from bastion.venue_server.ledger import VenueLedger
from bastion.venue_server.messages import NewOrderRequest, TradeUpdate
from bastion.venues.fix.adapter import FixVenueAdapter
from bastion.venues.fix.config import FixVenueConfig
from bastion.venues.sim.config import SimVenueConfig
from kit.venuesim_desk import BUY, SYM, T0, XYZ
from kit.venuesim_wire import PASSWORD, Wire

IDLE = """
from bastion.strategy.base import Strategy


class Idle(Strategy):
    pass
"""


def market_buy(cl_ord_id: str, qty: str = "3") -> FixMessage:
    return FixMessage.of(
        "D",
        (11, cl_ord_id),
        (55, SYM),
        (54, "1"),
        (60, "20240102-14:30:00.000"),
        (38, qty),
        (40, "1"),
        (59, "3"),
    )


def subscribe(*entry_types: str) -> FixMessage:
    return FixMessage.of(
        "V",
        (262, "md-1"),
        (263, "1"),
        (264, "1"),
        (267, len(entry_types)),
        *((269, t) for t in entry_types),
        (146, 1),
        (55, SYM),
    )


def test_when_engine_matches_then_on_trade_gets_price_size_and_time(tmp_path: Path) -> None:
    """An IOC buy of 3 @ 100.05 against an ask of 2 @ 100.01 matches 2 at 100.01; a
    resting buy of 4 @ 100.00, reached by an ask of 1 @ 100.00, matches 1 as maker at its
    price: one print per match, with its price and size."""
    trades: list[TradeUpdate] = []
    clock = SimClock(T0)
    ledger = VenueLedger(tmp_path / "ledger.sqlite")
    engine = VenueSimEngine(
        instruments={SYM: XYZ},
        sim_config=SimVenueConfig(),
        ledger=ledger,
        clock=clock,
        on_report=lambda account, report: None,
        on_trade=trades.append,
    )
    try:
        engine.on_quote(QuoteTick(SYM, T0, 9_999, 10_001, 5, 2))
        for cl_ord_id, qty, price, tif in (
            ("c1", 3, "100.05", TimeInForce.IOC),
            ("c2", 4, "100.00", TimeInForce.GTC),
        ):
            engine.new_order(
                "A",
                NewOrderRequest(
                    cl_ord_id=cl_ord_id,
                    symbol=SYM,
                    side=BUY,
                    order_type=OrderType.LIMIT,
                    quantity=Decimal(qty),
                    price=Decimal(price),
                    time_in_force=tif,
                ),
            )
        clock.advance_to(T0 + 5)
        engine.on_quote(QuoteTick(SYM, T0 + 5, 9_998, 10_000, 5, 1))
        assert trades == [
            TradeUpdate(symbol=SYM, price=Decimal("100.01"), size=Decimal(2), ts_ns=T0),
            TradeUpdate(symbol=SYM, price=Decimal("100.00"), size=Decimal(1), ts_ns=T0 + 5),
        ]
    finally:
        ledger.close()


def test_when_session_asked_for_trades_then_each_match_is_an_x_trade_entry(
    tmp_path: Path,
) -> None:
    """V with 269=2: a match becomes X [279=0, 269=2, 270 price, 271 size, 272/273 its
    time]; the next W snapshot carries that last trade."""
    wire = Wire(tmp_path)
    try:
        node = wire.logon()
        node.send(subscribe("0", "1", "2"))
        wire.pump()
        node.send(market_buy("b1"))
        wire.pump()
        prints = [m for m in wire.node_app.messages if m.msg_type == "X" and m.get(269) == "2"]
        assert len(prints) == 1
        (x,) = prints
        assert (x.get(279), x.get(55), x.get(270), x.get(271)) == ("0", SYM, "100.01", "3")
        assert x.get(272) is not None and x.get(273) is not None
        node.send(subscribe("0", "1", "2"))
        wire.pump()
        snapshot = [m for m in wire.node_app.messages if m.msg_type == "W"][-1]
        assert snapshot.get_all(269) == ["0", "1", "2"] and snapshot.get(268) == "3"
        assert snapshot.get_all(270)[-1] == "100.01"
    finally:
        wire.close()


def test_when_session_did_not_ask_for_trades_then_no_trade_entries(tmp_path: Path) -> None:
    """V with only bid and offer (269=0, 1): matches publish no Trade entry to it."""
    wire = Wire(tmp_path)
    try:
        node = wire.logon()
        node.send(subscribe("0", "1"))
        wire.pump()
        node.send(market_buy("b1"))
        wire.pump()
        assert [m for m in wire.node_app.messages if m.msg_type == "8" and m.get(150) == "F"]
        market_data = [m for m in wire.node_app.messages if m.msg_type in ("W", "X")]
        assert market_data and all("2" not in m.get_all(269) for m in market_data)
    finally:
        wire.close()


def test_when_node_trades_with_venue_sim_over_fix_then_kernel_keeps_the_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node's Kernel on the FIX venue, wired in memory to the simulator: its market buy
    matches, the print comes back as market data, and the "last" collar is measured from
    it (one tick passes, two do not)."""
    monkeypatch.setenv("BASTION_TEST_FIX_PW", PASSWORD)
    (tmp_path / "idle.py").write_text(IDLE)
    config = PaperConfig(
        instruments=[InstrumentConfig(id=SYM, venue="FIXSIM", tick_size=Decimal("0.01"))],
        strategies=[StrategyConfig(name="a", path="idle.py", class_name="Idle")],
        fix_venue=FixVenueConfig(
            name="FIXSIM",
            port=1,
            sender_comp_id="NODE",
            target_comp_id="SIM",
            username="u",
            password_env="BASTION_TEST_FIX_PW",
            store_path="node-fix.sqlite",
        ),
        risk=RiskConfig(collar_ticks=1, collar_reference="last"),
    )
    wire = Wire(tmp_path)

    async def main() -> None:
        # the simulator checks SendingTime against its own (wall) clock
        kernel = Kernel(config=config, base_dir=tmp_path, clock=LiveClock(), epoch=1)
        adapter = kernel.venue
        assert isinstance(adapter, FixVenueAdapter)
        wire.node = adapter.session
        wire.venue.connection_made(wire.to_node.append, lambda: None, initiator=False)
        adapter.session.connection_made(wire.to_venue.append, lambda: None, initiator=True)
        wire.pump()  # logon, then the adapter's MarketDataRequest and the W snapshot
        adapter.reconciled_logon = adapter.logons  # as the node's reconciliation does
        assert kernel.last_quotes[SYM].ask == 10_001
        assert kernel.last_trades == {}

        def submit(price: int | None, qty: int = 3) -> bool:
            order = kernel.execution.create_order(
                strategy_id="a",
                instrument_id=SYM,
                venue="FIXSIM",
                side=OrderSide.BUY,
                order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
                quantity=qty,
                price=price,
            )
            sent = kernel.risk.submit_order(order)
            wire.pump()
            return sent

        kernel.on_trade(TradeTick(SYM, T0, 10_001, 1))  # so a market order may go
        assert submit(None) is True
        last = kernel.last_trades[SYM]
        assert (last.price, last.size) == (10_001, 3)
        assert last.ts_ns > T0  # stamped on arrival, not the seeded print
        assert kernel.portfolio.net_quantity(SYM) == 3
        assert submit(10_002, 1) is True
        assert submit(10_003, 1) is False
        adapter.session.disconnect("test over")
        adapter.store.close()

    try:
        asyncio.run(main())
    finally:
        wire.node = None
        wire.close()
