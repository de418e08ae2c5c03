"""A seeded trading session journaled to SQLite, for following it from a standby: a
random trader (market and limit orders, cancels, amends; state kept through
``on_save``), an idle second strategy, and operator actions between quotes (trading
state, disabling a strategy, overrides, a venue halt, snapshots). ``state_of`` is
everything a standby must hold, to compare a followed kernel with a recovered one."""

from __future__ import annotations

import contextlib
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.errors import ConfigError
from bastion.journal import SqliteJournal
from bastion.model.data import QuoteTick
from bastion.model.enums import TradingState
from bastion.node.kernel import Kernel
from bastion.recovery.state import capture
from bastion.risk.config import RiskConfig
from bastion.strategy.base import Strategy
from bastion.strategy.runner import StrategyRunner

T0 = 1_704_205_800_000_000_000
IID = "XYZ.SIM"
NODE = "n"


class RandomTrader(Strategy):
    """Orders, cancels and amends chosen by a seeded RNG; a counter in ``on_save``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.actions = 0

    def on_start(self) -> None:
        self.subscribe_quotes(IID)

    def on_save(self) -> dict[str, Any]:
        return {"actions": self.actions}

    def on_quote(self, quote: QuoteTick) -> None:
        self.actions += 1
        rng = self.rng
        choice = rng.random()
        inst = self.instrument(IID)
        open_orders = self.open_orders(IID)
        if choice < 0.3:
            qty = rng.randint(1, 3)
            self.buy(IID, qty) if rng.random() < 0.5 else self.sell(IID, qty)
        elif choice < 0.6:
            buy = rng.random() < 0.5
            px = inst.price((quote.bid if buy else quote.ask) + rng.randint(-2, 2))
            qty = rng.randint(1, 3)
            self.buy(IID, qty, price=px) if buy else self.sell(IID, qty, price=px)
        elif choice < 0.8 and open_orders:
            self.cancel(rng.choice(open_orders))
        elif open_orders:
            order = rng.choice(open_orders)
            if order.price is not None:
                self.modify(order, price=inst.price(order.price + rng.randint(-1, 1)))


class Idle(Strategy):
    pass


def build(base: Path, journal: SqliteJournal | None, *, seed: int = 0) -> Kernel:
    """A kernel with strategies ``rt`` (trading) and ``idle``, journaling if given one;
    without, it is a standby's (or a restart's) kernel."""
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="unused.csv", instrument=IID)],
        risk=RiskConfig(max_order_quantity=Decimal(100), max_daily_loss_node=Decimal(10**9)),
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=base, clock=SimClock(T0), epoch=1, journal=journal)
    assert isinstance(kernel.strategies, StrategyRunner)
    kernel.strategies.add(RandomTrader(seed), "rt", {})
    kernel.strategies.add(Idle(), "idle", {})
    return kernel


class Session:
    """Drives a journaling kernel one step at a time (``step``), seeded."""

    def __init__(self, kernel: Kernel, journal: SqliteJournal, seed: int) -> None:
        self.kernel = kernel
        self.journal = journal
        self.rng = random.Random(seed)
        self.n = 0
        self.mid = 10_000
        self.overrides: list[str] = []
        kernel.start()

    def step(self) -> None:
        """One quote, and now and then an operator action or a snapshot."""
        kernel, rng = self.kernel, self.rng
        self.n += 1
        self.mid = max(100, self.mid + rng.randint(-3, 3))
        ts = T0 + self.n * 1_000_000
        kernel.clock.advance_to(ts)  # type: ignore[attr-defined]
        kernel.on_quote(QuoteTick(IID, ts, self.mid - 1, self.mid + 1, 5, 5))
        roll = rng.random()
        if roll < 0.03:
            state = rng.choice([TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED])
            kernel.risk.set_trading_state(state, f"drill {self.n}")
        elif roll < 0.05:
            sid = rng.choice(["rt", "idle"])
            if sid in kernel.risk.disabled:
                kernel.risk.enable_strategy(sid, who="alice", why="back")
            else:
                kernel.risk.disable_strategy(sid, f"test {self.n}")
        elif roll < 0.07:
            if self.overrides and rng.random() < 0.5:
                oid = self.overrides.pop()
                with contextlib.suppress(ConfigError):  # expired or dropped already
                    kernel.risk_overrides.clear(oid, who="alice", why="done")
            else:
                value = str(rng.randint(50, 100))
                override = kernel.risk_overrides.set(
                    "max_order_quantity", value, 3600, who="alice", why="drill"
                )
                self.overrides.append(override.id)
        elif roll < 0.08:
            venue = kernel.venue
            if venue.halted is None:
                kernel.halt_venue(venue.name, "drill", who="alice", why="test")
            else:
                kernel.resume_venue(venue.name, who="alice", why="test")
        elif roll < 0.10:
            self.journal.snapshot(capture(kernel, node_id=NODE, epoch=1), ts)


def state_of(kernel: Kernel) -> dict[str, Any]:
    """Everything recovery restores, comparable with ``==``."""
    portfolio = kernel.portfolio
    execution = kernel.execution
    return {
        "orders": sorted(
            (
                o.client_order_id,
                o.strategy_id,
                o.venue,
                o.side,
                o.order_type,
                o.quantity,
                o.price,
                o.status,
                o.previous_status,
                o.filled_qty,
                o.filled_notional,
                o.venue_order_id,
                o.ts_last,
            )
            for o in execution.orders()
        ),
        "open": sorted(o.client_order_id for o in execution.open_orders()),
        "open_qty": execution.open_quantity("rt", IID),
        "exec_ids": sorted(execution.exec_ids),
        "net": portfolio.net_quantity(IID),
        "cash": portfolio.cash(),
        "fees": portfolio.fees,
        "strategy_fees": dict(portfolio.strategy_fees),
        "fills": portfolio.n_fills,
        "realized": portfolio.realized_pnl(),
        "position": sorted(
            (p.strategy_id, p.quantity, p.cost, p.realized) for p in portfolio.positions()
        ),
        "trading_state": (kernel.risk.state, kernel.risk.state_reason),
        "disabled": dict(kernel.risk.disabled),
        "overrides": sorted(kernel.risk_overrides.active),
        "risk_config": kernel.risk_overrides.journaled_config,
        "max_order_quantity": kernel.risk.config.max_order_quantity,
        "post_trade": kernel.risk.post_trade_state(),
        "halted": {name: v.halted for name, v in kernel.venues.items()},
        "strategy_states": dict(kernel.strategies.restored_states),
        "client_order_ids": (execution._ids.prefix, execution._ids.count),
    }
