"""What the operator's commands do on a running node (``bastion.node.control.ControlCommands``):
the kill switch, resume, status, enabling and disabling a strategy, temporary risk
limit overrides and their ceilings, and which of them need a second operator
(``four_eyes``). Who may give them is decided before (``bastion.node.authz``); ``who``
here is the authenticated operator. Every change is journaled (through the bus) with
who and why, and answered only once its event is committed to the journal
(``_committed``), so a crash right after the answer cannot undo what the operator was
told. A refused command raises ``CommandRefused`` with the reason (nothing changed),
which the control channel answers as ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import structlog

from bastion.errors import CommandRefused, ConfigError
from bastion.ha.standby import HaMember
from bastion.isolation.host import ProcessStrategyHost
from bastion.model.enums import TradingState
from bastion.model.events import DrDrillCompleted, TradingStateChanged
from bastion.monitor.alerts.engine import AlertEngine
from bastion.node.audit import AuditTrail
from bastion.node.control import RaiseCeilingRequest, Request, ResumeRequest, RiskSetRequest
from bastion.node.kernel import Kernel
from bastion.node.view import node_view
from bastion.risk.gate import CONFIGURED_STATE_REASON
from bastion.risk.overrides import Override, number
from bastion.security.config import FourEyes

log = structlog.get_logger("bastion.node")

KILL_SETTLE_TIMEOUT_S: Final = 5.0  # kill --flatten: wait this long for cancels to confirm


class NodeOperator:
    """The control channel's commands (``bastion.node.control.ControlCommands``) on this node."""

    def __init__(self, kernel: Kernel, *, monitoring: str | None = None) -> None:
        """``monitoring``: the URL of the node's metrics and health listener (None: off)."""
        self.kernel = kernel
        self.monitoring = monitoring
        self.reason = ""
        self.restored = False
        self.alerts: AlertEngine | None = None
        self.ha: HaMember | None = None
        """This node in its HA group (None: a node on its own)."""
        """The node's alert engine (None: its monitoring is off)."""
        self.audit_trail: AuditTrail | None = None
        """Where ``audit`` reads (the node's journal; None: no journal)."""
        kernel.bus.subscribe(TradingStateChanged, self._on_state)

    def _on_state(self, event: TradingStateChanged) -> None:
        self.reason = event.reason
        self.restored = False

    async def committed(self) -> None:
        """Return once everything journaled so far is on disk."""
        await _committed(self.kernel)

    def took_over_state(self) -> None:
        """Recovery has run: report the trading state it took over from the journal."""
        risk = self.kernel.risk
        if risk.state_reason != CONFIGURED_STATE_REASON:
            self.reason = risk.state_reason
            self.restored = True

    async def kill(
        self, *, flatten: bool, who: str, why: str, venue: str | None = None
    ) -> dict[str, Any]:
        if venue is not None:
            answer = self._kill_venue(venue, flatten=flatten, who=who, why=why)
            await _committed(self.kernel)  # the halt outlives a crash once answered
            return answer
        kernel = self.kernel
        clock = kernel.clock
        started = clock.monotonic_s()
        cancels = kernel.kill(f"kill by {who}: {why}" if why else f"kill by {who}")
        kill_ms = (clock.monotonic_s() - started) * 1000
        await _committed(kernel)  # HALTED outlives a crash before anything waits on a venue
        committed_ms = (clock.monotonic_s() - started) * 1000
        response: dict[str, Any] = {
            "state": kernel.risk.state.value,
            "cancels_sent": cancels.sent,
            "cancels_pending_reconnect": cancels.pending_reconnect,
            "kill_ms": round(kill_ms, 3),
            "committed_ms": round(committed_ms, 3),
        }
        if flatten:
            # flatten what is left once the cancels are answered: a resting order that
            # fills meanwhile, or a market order in flight, changes the position
            await _settle(kernel)
            sent, denied = kernel.flatten()
            await _settle(kernel)  # answer with the flatten orders' outcome
            portfolio = kernel.portfolio
            response.update(
                flatten_sent=sent,
                flatten_denied=denied,
                positions={
                    iid: str(kernel.instruments[iid].size(portfolio.net_quantity(iid)))
                    for iid in portfolio.instruments_traded()
                },
            )
            await _committed(kernel)  # the flatten orders and their outcome, as answered
        response["open_orders"] = len(kernel.execution.open_orders())
        response["elapsed_ms"] = round((clock.monotonic_s() - started) * 1000, 3)
        log.warning("kill_switch", who=who, why=why, flatten=flatten, **response)
        return response

    def _kill_venue(self, name: str, *, flatten: bool, who: str, why: str) -> dict[str, Any]:
        kernel = self.kernel
        self._check_venue(name)
        if flatten:
            raise CommandRefused("--flatten applies to the whole node, not to one venue")
        started = kernel.clock.monotonic_s()
        reason = f"kill by {who}: {why}" if why else f"kill by {who}"
        cancels = kernel.kill_venue(name, reason, who=who, why=why)
        response: dict[str, Any] = {
            "venue": name,
            "halted": reason,
            "cancels_sent": cancels.sent,
            "cancels_pending_reconnect": cancels.pending_reconnect,
            "state": kernel.risk.state.value,
            "unavailable_instruments": kernel.unavailable_instruments(),
            "elapsed_ms": round((kernel.clock.monotonic_s() - started) * 1000, 3),
        }
        log.warning("venue_kill_switch", who=who, why=why, **response)
        return response

    def _check_venue(self, name: str) -> None:
        if name not in self.kernel.venues:
            known = ", ".join(sorted(self.kernel.venues))
            raise CommandRefused(f"no venue {name!r} on this node (venues: {known})")

    async def resume(
        self, *, who: str, why: str, instrument: str | None = None, venue: str | None = None
    ) -> dict[str, Any]:
        risk = self.kernel.risk
        if venue is not None:
            self._check_venue(venue)
            resumed = self.kernel.resume_venue(venue, who=who, why=why)
            await _committed(self.kernel)
            log.warning("venue_resumed", venue=venue, who=who, why=why, resumed=resumed)
            return {"venue": venue, "resumed": resumed, "state": risk.state.value}
        if instrument is not None:
            if instrument not in self.kernel.instruments:
                raise CommandRefused(f"no instrument {instrument!r} on this node")
            resumed = risk.resume_instrument(instrument, who, why)
            await _committed(self.kernel)
            return {"instrument": instrument, "resumed": resumed, "state": risk.state.value}
        previous = risk.state
        risk.set_trading_state(
            TradingState.ACTIVE, f"resume by {who}: {why}" if why else f"resume by {who}"
        )
        await _committed(self.kernel)
        log.warning("trading_resumed", who=who, why=why, previous=previous.value)
        return {"state": risk.state.value, "previous": previous.value}

    async def status(self) -> dict[str, Any]:
        kernel = self.kernel
        portfolio = kernel.portfolio
        risk = kernel.risk
        open_orders = kernel.execution.open_orders()
        return {
            "state": risk.state.value,
            "reason": self.reason,
            "restored": self.restored,
            "open_orders": len(open_orders),
            "positions": {
                iid: str(kernel.instruments[iid].size(portfolio.net_quantity(iid)))
                for iid in portfolio.instruments_traded()
            },
            "denials": dict(sorted(risk.denials.items())),
            "disabled_strategies": dict(sorted(risk.disabled.items())),
            "paused_instruments": {
                iid: {"until": _iso(until), "reason": reason}
                for iid, (until, reason) in sorted(risk.paused_instruments.items())
            },
            "risk_overrides": len(kernel.risk_overrides.active),
            "venues": {
                name: {
                    **venue.status(),
                    "cancels_after_halt": kernel.halt_cancels[name],
                    "open_orders": sum(1 for o in open_orders if o.venue == name),
                    "instruments": sorted(
                        iid for iid, i in kernel.instruments.items() if i.venue == name
                    ),
                }
                for name, venue in kernel.venues.items()
            },
            "unavailable_instruments": kernel.unavailable_instruments(),
            "strategies": _strategies_status(kernel),
            "monitoring": _monitoring_status(self.monitoring),
        }

    async def enable(self, *, strategy: str, who: str, why: str) -> dict[str, Any]:
        risk = self.kernel.risk
        self._check_strategy(strategy)
        if not risk.enable_strategy(strategy, who, why):
            return {"enabled": False, "strategy": strategy, "note": "it was not disabled"}
        await _committed(self.kernel)
        return {"enabled": True, "strategy": strategy}

    async def disable(self, *, strategy: str, who: str, why: str) -> dict[str, Any]:
        risk = self.kernel.risk
        self._check_strategy(strategy)
        reason = f"disabled by {who}: {why}" if why else f"disabled by {who}"
        if not risk.disable_strategy(strategy, reason):
            return {"disabled": False, "strategy": strategy, "note": "it was disabled already"}
        await _committed(self.kernel)
        return {"disabled": True, "strategy": strategy, "reason": reason}

    async def ha_status(self) -> dict[str, Any]:
        if self.ha is None:
            return {"ha": {"name": self.kernel.config.node.id, "role": "single"}}
        return {"ha": msgspec.to_builtins(self.ha.status())}

    async def ha_switchover(self, *, to: str | None, who: str, why: str) -> dict[str, Any]:
        if self.ha is None:
            raise CommandRefused("this node is not in an HA group: there is no one to hand over to")
        answer = self.ha.switchover(to=to)
        log.warning("ha_switchover_requested", to=to, who=who, why=why)
        return answer

    async def record_drill(self, *, drill: DrDrillCompleted, who: str) -> dict[str, Any]:
        kernel = self.kernel
        event = msgspec.structs.replace(drill, ts_ns=kernel.clock.timestamp_ns())
        kernel.bus.publish(event)  # journaled from the bus; the dr-drill-failed rule sees it
        kernel.flush()
        await _committed(kernel)
        log.info("dr_drill_recorded", ok=event.ok, backup_id=event.backup_id, who=who)
        return {"recorded": "DrDrillCompleted", "drill_ok": event.ok}

    async def strategy_stop(self, *, strategy: str, who: str, why: str) -> dict[str, Any]:
        kernel = self.kernel
        self._check_strategy(strategy)
        refused = kernel.stop_strategy(strategy)
        if refused is not None:
            raise CommandRefused(refused)
        orders = kernel.execution.open_orders(strategy_id=strategy)
        kernel.risk.cancel_orders(orders)
        kernel.flush()
        await _committed(kernel)
        log.warning("strategy_stopped_by_operator", strategy=strategy, who=who, why=why)
        return {"stopped": strategy, "cancels_sent": len(orders)}

    async def strategy_start(self, *, strategy: str, who: str, why: str) -> dict[str, Any]:
        kernel = self.kernel
        self._check_strategy(strategy)
        refused = kernel.start_strategy(strategy)
        if refused is not None:
            raise CommandRefused(refused)
        await _committed(kernel)
        log.warning("strategy_started_by_operator", strategy=strategy, who=who, why=why)
        note = {}
        if strategy in kernel.risk.disabled:
            note = {"note": f"{strategy} is disabled: its orders are denied until enabled"}
        return {"started": strategy, **note}

    async def pause_instrument(
        self, *, instrument: str, for_s: float, who: str, why: str
    ) -> dict[str, Any]:
        if instrument not in self.kernel.instruments:
            raise CommandRefused(f"no instrument {instrument!r} on this node")
        reason = f"paused by {who}: {why}" if why else f"paused by {who}"
        until = self.kernel.risk.pause_instrument(instrument, round(for_s * 1e9), reason)
        await _committed(self.kernel)
        return {"instrument": instrument, "paused_until": _iso(until), "reason": reason}

    async def view(self) -> dict[str, Any]:
        return {"view": node_view(self.kernel, reason=self.reason, alerts=self.alerts)}

    async def audit(self, *, query: str, limit: int, before_seq: int | None) -> dict[str, Any]:
        trail = self.audit_trail
        if trail is None:
            raise CommandRefused("this node has no journal to read the audit trail from")
        await _committed(self.kernel)  # what was journaled until now is in the answer
        return await asyncio.to_thread(trail.read, query=query, limit=limit, before_seq=before_seq)

    def _check_strategy(self, strategy: str) -> None:
        if strategy not in self.kernel.strategies.strategies:
            known = ", ".join(sorted(self.kernel.strategies.strategies)) or "none"
            raise CommandRefused(f"no strategy {strategy!r} on this node (strategies: {known})")

    def four_eyes(self, req: Request) -> FourEyes | None:
        if isinstance(req, ResumeRequest):
            node_wide = req.instrument is None and req.venue is None
            halted = self.kernel.risk.state is TradingState.HALTED
            return FourEyes.RESUME if node_wide and halted else None
        overrides = self.kernel.risk_overrides
        try:
            if isinstance(req, RiskSetRequest):
                change = overrides.assess(req.path, req.value, req.for_s, why=req.why)
                return FourEyes.RAISE_LIMIT if change.looser else None
            if isinstance(req, RaiseCeilingRequest):
                overrides.ceilings.check_raise(overrides.base, req.path, req.value)
                return FourEyes.RAISE_CEILING
        except ConfigError as error:  # a bad key or value, or one beyond its ceiling
            raise CommandRefused(str(error)) from error
        return None

    async def raise_ceiling(self, *, path: str, value: str, who: str, why: str) -> dict[str, Any]:
        overrides = self.kernel.risk_overrides
        previous = overrides.ceilings.raised.get(path)
        try:
            ceiling = overrides.raise_ceiling(path, value, who=who, why=why)
        except ConfigError as error:
            raise CommandRefused(str(error)) from error
        await _committed(self.kernel)
        return {
            "path": path,
            "ceiling": number(ceiling),
            "previous": None if previous is None else number(previous),
        }

    async def risk_set(
        self, *, path: str, value: str, for_s: float, who: str, why: str
    ) -> dict[str, Any]:
        try:
            override = self.kernel.risk_overrides.set(path, value, for_s, who=who, why=why)
        except ConfigError as error:  # a bad key or value from the operator
            raise CommandRefused(str(error)) from error
        await _committed(self.kernel)
        return {"override": _override_fields(override)}

    async def risk_clear(self, *, override_id: str, who: str, why: str) -> dict[str, Any]:
        try:
            override = self.kernel.risk_overrides.clear(override_id, who=who, why=why)
        except ConfigError as error:  # no such active override
            raise CommandRefused(str(error)) from error
        await _committed(self.kernel)
        return {"cleared": override.id, "path": override.path}

    async def risk_list(self) -> dict[str, Any]:
        overrides = self.kernel.risk_overrides
        return {
            "overrides": [
                _override_fields(o)
                for o in sorted(overrides.active.values(), key=lambda o: o.set_ns)
            ],
            "max_override_factor": str(overrides.ceilings.factor.normalize()),
            "raised_ceilings": {
                path: number(ceiling) for path, ceiling in sorted(overrides.ceilings.raised.items())
            },
        }

    async def alerts_list(self) -> dict[str, Any]:
        return self._alert_engine().listing()

    async def alert_ack(self, *, alert_id: str, who: str, why: str) -> dict[str, Any]:
        alert = self._alert_engine().acknowledge(alert_id, who=who, why=why)
        await _committed(self.kernel)
        return {"acknowledged": alert.id, "alert": alert.rule.name}

    async def alert_silence(
        self, *, alert: str, labels: dict[str, str], for_s: float, who: str, why: str
    ) -> dict[str, Any]:
        silence = self._alert_engine().silence(alert, labels, for_s=for_s, who=who, why=why)
        await _committed(self.kernel)
        return {
            "silence": silence.id,
            "alert": silence.alert,
            "labels": silence.labels,
            "until": _iso(silence.until_ns),
        }

    def _alert_engine(self) -> AlertEngine:
        if self.alerts is None:
            raise CommandRefused("alerting is off on this node (no [monitoring] section)")
        return self.alerts


def _override_fields(override: Override) -> dict[str, Any]:
    return {
        "id": override.id,
        "path": override.path,
        "value": override.value,
        "who": override.who,
        "why": override.why,
        "set": _iso(override.set_ns),
        "expires": _iso(override.expires_ns),
    }


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat(timespec="milliseconds")


async def _settle(kernel: Kernel) -> None:
    """Wait (bounded) until the venue has answered every open order."""
    clock = kernel.clock
    deadline = clock.monotonic_s() + KILL_SETTLE_TIMEOUT_S
    while kernel.execution.open_orders() and clock.monotonic_s() < deadline:
        await asyncio.sleep(0.005)


async def _committed(kernel: Kernel) -> None:
    """Return once everything journaled so far is on disk (off the loop's thread)."""
    if kernel.journal is not None:
        await asyncio.to_thread(kernel.journal.flush)


def _monitoring_status(url: str | None) -> dict[str, Any]:
    if url is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "listen": url,
        "metrics": f"{url}/metrics",
        "healthz": f"{url}/healthz",
        "readyz": f"{url}/readyz",
    }


def _strategies_status(kernel: Kernel) -> dict[str, Any]:
    """Where the strategies run and how their processes are (isolated), or the warning
    that they share the node's process (inline)."""
    strategies = kernel.strategies
    running = sorted(strategies.running)
    if isinstance(strategies, ProcessStrategyHost):
        return {**strategies.status(), "running": running}
    return {
        "isolation": "inline",
        "warning": "strategies run in the node's process: not isolated from the risk gate, "
        "the node's secrets or the kill switch",
        "running": running,
    }
