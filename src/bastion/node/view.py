"""What a console shows of a node, in one answer: the control socket's ``view``.

``node_view`` reads the running kernel as it is now (trading state, venues, feeds,
alerts, PnL and exposure, positions, working orders, strategies, limits and their
use, overrides, paused instruments) on the trading loop, without touching the journal:
a console asks for it about twice a second. Money, prices and quantities are decimal
strings, never floats; times are ISO-8601 (``ts``) with milliseconds (``ts_ms``) where
a chart needs them; a value the node does not have is ``None``, never a missing key.
The pending four-eyes approvals are the guard's (``bastion.node.authz`` adds them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from bastion.config import PaperConfig
from bastion.errors import ConfigError
from bastion.monitor.config import MonitoringConfig
from bastion.portfolio.portfolio import to_decimal
from bastion.risk.ceilings import LOOSER_HIGHER, LOOSER_LOWER, configured_value
from bastion.risk.config import RiskConfig
from bastion.risk.usage import LimitUse

if TYPE_CHECKING:
    from bastion.monitor.alerts.engine import AlertEngine
    from bastion.node.kernel import Kernel

__all__ = ["node_view"]

_ORDERED: Final = LOOSER_HIGHER | LOOSER_LOWER
_TABLES: Final = ("instruments", "strategies", "venues", "accounts")
_RATIO: Final = Decimal("0.0001")
_PRICE: Final = Decimal("1e-10")
_MONEY: Final = Decimal("1e-8")
_DEFAULT_STALE_S: Final = MonitoringConfig().quote_stale_s


def node_view(kernel: Kernel, *, reason: str, alerts: AlertEngine | None) -> dict[str, Any]:
    """The VIEW of ``kernel`` now (``approvals`` empty: the guard's to fill).
    ``reason``: why the trading state is what it is; ``alerts``: the node's alert
    engine (None: monitoring is off)."""
    config = kernel.config
    now_ns = kernel.clock.timestamp_ns()
    risk = kernel.risk
    open_orders = kernel.execution.open_orders()
    return {
        "node": config.node.id,
        "mode": config.node.mode,
        "ts": iso(now_ns),
        "ts_ms": now_ns // 1_000_000,
        "state": risk.state.value,
        "reason": reason or risk.state_reason or None,
        "venues": [
            {
                "name": name,
                "session": _session(venue.connected, venue.reconciled),
                "halted": venue.halted is not None,
                "open_orders": sum(1 for o in open_orders if o.venue == name),
            }
            for name, venue in kernel.venues.items()
        ],
        "feeds": _feeds(kernel, now_ns),
        "alerts": _alerts(alerts),
        **_money(kernel),
        "orders": [
            {
                "id": o.client_order_id,
                "instrument": o.instrument_id,
                "side": o.side.value,
                "type": o.order_type.value,
                "quantity": _size(kernel, o.instrument_id, o.quantity),
                "filled": _size(kernel, o.instrument_id, o.filled_qty),
                "price": None if o.price is None else _price(kernel, o.instrument_id, o.price),
                "status": o.status.value,
                "strategy": o.strategy_id or None,
                "venue": o.venue,
            }
            for o in open_orders
        ],
        "strategies": _strategies(kernel, open_orders),
        "limits": _limits(kernel),
        "overrides": [
            {
                "id": o.id,
                "path": o.path,
                "value": o.value,
                "until": iso(o.expires_ns),
                "by": o.who,
                "why": o.why,
            }
            for o in sorted(kernel.risk_overrides.active.values(), key=lambda o: o.set_ns)
        ],
        "approvals": [],
        "paused_instruments": [
            {"instrument": iid, "until": iso(until), "reason": why}
            for iid, (until, why) in sorted(risk.paused_instruments.items())
        ],
    }


def iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat(timespec="milliseconds")


def text(value: Decimal) -> str:
    """A decimal string without an exponent (``0.00000001``, never ``1E-8``)."""
    return format(value, "f")


def money(value: Decimal) -> str:
    """An amount of money to 8 decimals, without trailing zeros: PnL divides (an average
    cost), and 28 digits of a repeating fraction tell an operator nothing."""
    return text(value.quantize(_MONEY).normalize())


def _session(connected: bool, reconciled: bool) -> str:
    if not connected:
        return "disconnected"
    return "logged_on" if reconciled else "reconciling"


def _size(kernel: Kernel, iid: str, raw: int) -> str:
    instrument = kernel.instruments.get(iid)
    return str(raw) if instrument is None else text(instrument.size(raw))


def _price(kernel: Kernel, iid: str, raw: int) -> str:
    instrument = kernel.instruments.get(iid)
    return str(raw) if instrument is None else text(instrument.price(raw))


def _feeds(kernel: Kernel, now_ns: int) -> list[dict[str, Any]]:
    config = kernel.config
    monitoring = config.monitoring if isinstance(config, PaperConfig) else None
    stale_ns = round((monitoring.quote_stale_s if monitoring else _DEFAULT_STALE_S) * 1e9)
    out = []
    for feed in kernel.feeds:
        ages = []
        stale = False
        for iid in sorted(feed.instruments):
            quote = kernel.last_quotes.get(iid)
            if quote is None:
                stale = True
                continue
            age = max(0, now_ns - quote.ts_ns)
            ages.append(age)
            stale = stale or age > stale_ns
        out.append(
            {
                "name": feed.name,
                "instruments": sorted(feed.instruments),
                "last_quote_age_ms": max(ages) // 1_000_000 if ages else None,
                "stale": stale,
            }
        )
    return out


def _alerts(engine: AlertEngine | None) -> list[dict[str, Any]]:
    if engine is None:
        return []
    return [
        {
            "id": a.id,
            "alert": a.rule.name,
            "severity": str(a.rule.severity),
            "summary": a.summary(),
            "since": iso(a.fired_ns),
            "acknowledged_by": None if a.acknowledged is None else a.acknowledged[0],
        }
        for a in sorted(engine.active.values(), key=lambda a: a.fired_ns)
    ]


def _money(kernel: Kernel) -> dict[str, Any]:
    """PnL and exposure of the node, and its positions per instrument (as the monitor's
    ``bastion_pnl`` and ``bastion_exposure_*``: marked at the bid for a long, the ask
    for a short)."""
    portfolio = kernel.portfolio
    currency = portfolio.currency
    realized = portfolio.realized_pnl()
    unrealized = portfolio.unrealized_pnl()
    gross = net = Decimal(0)
    positions = []
    for iid, quantity in sorted(portfolio.net.items()):
        instrument = kernel.instruments.get(iid)
        if instrument is None or not quantity:
            continue
        mark = portfolio.mark_px(iid, quantity)
        if mark is not None:
            value = instrument.money(quantity * mark)
            gross += abs(value)
            net += value
        cost = sum(
            (to_decimal(p.cost) for p in portfolio.positions() if p.instrument_id == iid),
            Decimal(0),
        )
        avg = (cost / quantity).scaleb(-instrument.price_precision)
        positions.append(
            {
                "instrument": iid,
                "quantity": text(instrument.size(quantity)),
                "avg_price": text(avg.quantize(_PRICE).normalize()),
                "mark": None if mark is None else text(instrument.price(mark)),
                "unrealized": None if mark is None else money(portfolio.unrealized_pnl(iid)),
            }
        )
    return {
        "pnl": {
            "realized": money(realized),
            "unrealized": money(unrealized),
            "total": money(realized + unrealized - portfolio.fees),
            "currency": currency,
        },
        "exposure": {"gross": money(gross), "net": money(net), "currency": currency},
        "positions": positions,
    }


def _strategies(kernel: Kernel, open_orders: list[Any]) -> list[dict[str, Any]]:
    """Each strategy: running, disabled, its PnL (realized and marked, less its fees)
    and its open orders."""
    portfolio = kernel.portfolio
    pnl: dict[str, Decimal] = {}
    for p in portfolio.positions():
        instrument = kernel.instruments.get(p.instrument_id)
        if instrument is None:
            continue
        amount = instrument.money(to_decimal(p.realized))
        if p.quantity:
            mark = portfolio.mark_px(p.instrument_id, p.quantity)
            if mark is not None:
                amount += instrument.money(to_decimal(p.unrealized(mark)))
        pnl[p.strategy_id] = pnl.get(p.strategy_id, Decimal(0)) + amount
    risk = kernel.risk
    running = kernel.strategies.running
    out = []
    for name in kernel.strategies.strategies:
        mine = pnl.get(name)
        fees = portfolio.strategy_fees.get(name, Decimal(0))
        out.append(
            {
                "name": name,
                "running": name in running,
                "disabled": name in risk.disabled,
                "disabled_reason": risk.disabled.get(name),
                "pnl": None if mine is None else money(mine - fees),
                "open_orders": sum(1 for o in open_orders if o.strategy_id == name),
            }
        )
    return out


def _limits(kernel: Kernel) -> list[dict[str, Any]]:
    """Every numeric limit the config or an override sets, and every limit whose use
    the risk gate measures: the config's value, the one in force, the ceiling of its
    overrides and how much of it is used (``risk.usage``; None: not measured)."""
    overrides = kernel.risk_overrides
    base = overrides.base
    effective = kernel.risk.config
    used: dict[str, LimitUse] = {_usage_path(kernel, u): u for u in kernel.risk.limit_usage()}
    paths = set(used) | {o.path for o in overrides.active.values()} | set(overrides.ceilings.raised)
    for config in (base, effective):
        paths |= _set_paths(config)
    rows = []
    for path in sorted(paths):
        use = used.get(path)
        try:
            configured = configured_value(base, path)
            in_force = configured_value(effective, path)
            ceiling = overrides.ceilings.ceiling(base, path)
        except ConfigError:
            if use is None:
                continue
            configured = in_force = use.cap
            ceiling = None
        rows.append(
            {
                "path": path,
                "configured": _value(configured),
                "effective": _value(in_force),
                "ceiling": None if ceiling is None else text(ceiling),
                "utilisation": None if use is None else _ratio(use),
            }
        )
    return rows


def _set_paths(config: RiskConfig) -> set[str]:
    paths = {
        key
        for key in config.__struct_fields__
        if key in _ORDERED and getattr(config, key) is not None
    }
    for table in _TABLES:
        for name, entry in getattr(config, table).items():
            paths |= {
                f"{table}.{name}.{key}"
                for key in entry.__struct_fields__
                if key in _ORDERED and getattr(entry, key) is not None
            }
    return paths


def _usage_path(kernel: Kernel, use: LimitUse) -> str:
    """The override path of a measured limit: its scope names the table."""
    scope = use.scope
    if scope == "node":
        return use.limit
    if scope in kernel.instruments:
        table = "instruments"
    elif scope in kernel.strategies.strategies:
        table = "strategies"
    elif scope in kernel.risk_overrides.base.accounts:
        table = "accounts"
    else:
        table = "venues"
    return f"{table}.{scope}.{use.limit}"


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return text(value)
    return str(value)


def _ratio(use: LimitUse) -> str | None:
    if not use.cap:
        return "0" if not use.used else None
    return text((use.used / use.cap).quantize(_RATIO))
