"""The live trading node (paper mode for now): the kernel on an asyncio loop.

``run_node`` wires a ``Kernel`` to the live clock, a real-time quote feed and
the SQLite journal (which commits on its own writer thread), then runs until
SIGINT/SIGTERM or ``run_for_s``. Shutdown is orderly: strategies stopped, every
open order canceled at the venue (and confirmed), the journal drained and closed,
exit code 0. Orders, fills and PnL are logged as they happen.

The node listens on a local control socket next to its journal (``bastion.control``)
for the operator's kill switch (``bastion kill``), ``resume`` and ``status``. Its
trading state is journaled: on start the last ``TradingStateChanged`` in the journal
is restored before any strategy runs, so a HALTED node stays HALTED across restarts.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import structlog

from bastion.clock import LiveClock
from bastion.config import PaperConfig, resolve_path
from bastion.control import open_control_socket, serve_control, socket_path
from bastion.data import SyntheticQuoteFeed, replay_from_config
from bastion.journal.reader import open_readonly
from bastion.journal.sqlite import JournalEvent, SqliteJournal
from bastion.kernel import Kernel
from bastion.model.data import Bar, QuoteTick
from bastion.model.enums import TradingState
from bastion.model.events import (
    OrderCanceled,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    TradingStateChanged,
)
from bastion.tasks import TaskManager
from bastion.venues.fix.adapter import FixVenueAdapter

log = structlog.get_logger("bastion.node")

PNL_LOG_INTERVAL_S = 5.0
SHUTDOWN_TIMEOUT_S = 10.0
KILL_SETTLE_TIMEOUT_S = 5.0  # kill --flatten: wait this long for cancels to confirm


def run_node(config: PaperConfig, *, base_dir: Path) -> int:
    """Run a paper-trading node until a signal or ``run_for_s``; return the exit code."""
    return asyncio.run(_Node(config, base_dir).run())


class _Node:
    def __init__(self, config: PaperConfig, base_dir: Path) -> None:
        self.config = config
        self.base_dir = base_dir
        self.stop_requested = asyncio.Event()
        self.tasks = TaskManager(on_crash=self._on_task_crash)
        self.exit_code = 0

    async def run(self) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        clock = LiveClock()
        journal = SqliteJournal.from_config(
            resolve_path(self.base_dir, config.journal.path), config.journal
        )
        try:
            epoch = journal.begin_run(config.node.id, clock.timestamp_ns())
        except BaseException:
            journal.close()  # stops its writer thread
            raise
        kernel_ref: list[Kernel] = []

        def request_flush() -> None:
            loop.call_soon(kernel_ref[0].venue.flush)

        kernel = Kernel(
            config=config,
            base_dir=self.base_dir,
            clock=clock,
            epoch=epoch,
            journal=journal,
            request_flush=request_flush,
        )
        kernel_ref.append(kernel)
        _log_order_events(kernel)
        operator = _Operator(kernel)
        operator.restore(journal.path)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        log.info(
            "node_started",
            node=config.node.id,
            epoch=epoch,
            journal=str(journal.path),
            strategies=list(kernel.strategies.strategies),
            venue=kernel.venue.name,
        )
        try:
            control_path = socket_path(journal.path)
            control_socket = open_control_socket(control_path)
            self.tasks.spawn("control", serve_control(control_socket, control_path, operator))
            await self._connect_venue(kernel)
            kernel.start()
            self.tasks.spawn("feed", self._feed(kernel))
            self.tasks.spawn("pnl-log", self._log_pnl(kernel))
            try:
                await asyncio.wait_for(self.stop_requested.wait(), timeout=config.run_for_s)
            except TimeoutError:
                log.info("run_time_elapsed", run_for_s=config.run_for_s)
            await self._shutdown(kernel)
        finally:
            if isinstance(kernel.venue, FixVenueAdapter):
                await kernel.venue.disconnect()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.tasks.cancel_all()
            journal.close()
        log.info("node_stopped", exit_code=self.exit_code, journal_events=journal.last_seq)
        return self.exit_code

    async def _connect_venue(self, kernel: Kernel) -> None:
        """A FIX venue: start its session and give the first logon a bounded wait."""
        venue = kernel.venue
        if not isinstance(venue, FixVenueAdapter):
            return
        await venue.connect()
        timeout_s = venue.session.settings.logon_timeout_s
        if await venue.wait_logged_on(timeout_s):
            log.info("venue_logged_on", venue=venue.name)
        else:
            log.warning(
                "venue_not_logged_on",
                venue=venue.name,
                waited_s=timeout_s,
                note="orders are refused until the session logs on; still trying",
            )

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("shutdown_requested", signal=sig.name)
        self.stop_requested.set()

    def _on_task_crash(self, name: str, error: BaseException) -> None:
        self.exit_code = 1
        self.stop_requested.set()

    async def _shutdown(self, kernel: Kernel) -> None:
        await self.tasks.cancel_all()  # no more data into strategies
        kernel.stop_strategies()
        asked = kernel.cancel_all_orders()
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        while kernel.execution.open_orders() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # venue latency: cancels confirm asynchronously
        left = kernel.execution.open_orders()
        if left:
            self.exit_code = 1
            log.error("orders_left_open", count=len(left), ids=[o.client_order_id for o in left])
        log.info(
            "shutdown_complete",
            cancels_sent=asked,
            open_orders=len(left),
            realized_pnl=str(kernel.portfolio.realized_pnl()),
            unrealized_pnl=str(kernel.portfolio.unrealized_pnl()),
            fees=str(kernel.portfolio.fees),
        )

    async def _feed(self, kernel: Kernel) -> None:
        async for event in self._events(kernel):
            if type(event) is QuoteTick:
                kernel.on_quote(event)
            else:
                kernel.on_bar(event)  # type: ignore[arg-type]

    async def _events(self, kernel: Kernel) -> AsyncIterator[QuoteTick | Bar]:
        config = self.config
        if config.feed is not None:
            feed_cfg = config.feed
            feed = SyntheticQuoteFeed(
                kernel.instruments[feed_cfg.instrument], feed_cfg, kernel.clock.timestamp_ns()
            )
            interval_s = feed_cfg.interval_ms / 1000
            next_at = time.monotonic()
            while True:
                yield feed.next_quote(kernel.clock.timestamp_ns())
                next_at += interval_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        for source in config.replay:
            replay = replay_from_config(
                source, kernel.instruments[source.instrument], base_dir=self.base_dir
            )
            # replay at the recorded pace, re-stamped to now
            first_ts: int | None = None
            wall0 = time.monotonic()
            for event in replay:
                if first_ts is None:
                    first_ts = event.ts_ns
                delay = wall0 + (event.ts_ns - first_ts) / 1e9 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield _restamp(event, kernel.clock.timestamp_ns())
        if config.feed is not None or config.replay:
            log.info("feed_exhausted")
        # keep running until stopped (with a FIX venue, quotes arrive over its session)
        await asyncio.Event().wait()

    async def _log_pnl(self, kernel: Kernel) -> None:
        portfolio = kernel.portfolio
        while True:
            await asyncio.sleep(PNL_LOG_INTERVAL_S)
            log.info(
                "pnl",
                realized=str(portfolio.realized_pnl()),
                unrealized=str(portfolio.unrealized_pnl()),
                fees=str(portfolio.fees),
                equity=str(portfolio.equity()),
                positions={
                    iid: str(kernel.instruments[iid].size(portfolio.net_quantity(iid)))
                    for iid in portfolio.instruments_traded()
                },
            )


class _Operator:
    """The control channel's commands (``bastion.control.ControlCommands``) on this node."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.reason = ""
        self.restored = False
        kernel.bus.subscribe(TradingStateChanged, self._on_state)

    def _on_state(self, event: TradingStateChanged) -> None:
        self.reason = event.reason
        self.restored = False

    def restore(self, journal_path: Path) -> None:
        """Take over the journal's last trading state (read-only query, before trading)."""
        last = _last_trading_state(journal_path)
        if last is None:
            return
        state, reason = last
        self.kernel.restore_trading_state(state, reason)
        self.reason = reason
        self.restored = True

    async def kill(self, *, flatten: bool, who: str, why: str) -> dict[str, Any]:
        kernel = self.kernel
        started = time.perf_counter()
        cancels = kernel.kill(f"kill by {who}: {why}" if why else f"kill by {who}")
        kill_ms = (time.perf_counter() - started) * 1000
        response: dict[str, Any] = {
            "state": kernel.risk.state.value,
            "cancels_sent": cancels,
            "kill_ms": round(kill_ms, 3),
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
        response["open_orders"] = len(kernel.execution.open_orders())
        response["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 3)
        log.warning("kill_switch", who=who, why=why, flatten=flatten, **response)
        return response

    async def resume(self, *, who: str, why: str) -> dict[str, Any]:
        risk = self.kernel.risk
        previous = risk.state
        risk.set_trading_state(
            TradingState.ACTIVE, f"resume by {who}: {why}" if why else f"resume by {who}"
        )
        log.warning("trading_resumed", who=who, why=why, previous=previous.value)
        return {"state": risk.state.value, "previous": previous.value}

    async def status(self) -> dict[str, Any]:
        kernel = self.kernel
        portfolio = kernel.portfolio
        return {
            "state": kernel.risk.state.value,
            "reason": self.reason,
            "restored": self.restored,
            "open_orders": len(kernel.execution.open_orders()),
            "positions": {
                iid: str(kernel.instruments[iid].size(portfolio.net_quantity(iid)))
                for iid in portfolio.instruments_traded()
            },
            "denials": dict(sorted(kernel.risk.denials.items())),
        }


async def _settle(kernel: Kernel) -> None:
    """Wait (bounded) until the venue has answered every open order."""
    deadline = time.monotonic() + KILL_SETTLE_TIMEOUT_S
    while kernel.execution.open_orders() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


def _last_trading_state(journal_path: Path) -> tuple[TradingState, str] | None:
    """The state and reason of the journal's last ``TradingStateChanged``, if any.

    An undecodable record (a torn tail) restores HALTED: the safe side.
    """
    with open_readonly(journal_path) as (db, _version):
        row = db.execute(
            "SELECT seq, payload FROM events WHERE type = 'TradingStateChanged' "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    seq, payload = row
    try:
        event = msgspec.msgpack.Decoder(JournalEvent).decode(payload)
    except msgspec.DecodeError as error:
        log.error("trading_state_unreadable", seq=seq, error=str(error))
        return TradingState.HALTED, f"journal record {seq} (trading state) is unreadable"
    if not isinstance(event, TradingStateChanged):
        return TradingState.HALTED, f"journal record {seq} is not a trading state change"
    return event.state, event.reason


def _restamp(event: QuoteTick | Bar, ts_ns: int) -> QuoteTick | Bar:
    import msgspec

    return msgspec.structs.replace(event, ts_ns=ts_ns)


def _log_order_events(kernel: Kernel) -> None:
    """Log what an operator needs to see: orders sent, fills, rejects, denials, failures."""
    instruments = kernel.instruments

    def on_event(event: OrderEvent) -> None:
        inst = instruments.get(event.instrument_id)
        fields: dict[str, object] = {
            "client_order_id": event.client_order_id,
            "strategy": event.strategy_id,
            "instrument": event.instrument_id,
        }
        if type(event) is OrderSubmitted:
            order = kernel.execution.order(event.client_order_id)
            if order is not None and inst is not None:
                fields.update(
                    side=order.side.value,
                    qty=str(inst.size(order.quantity)),
                    type=order.order_type.value,
                )
        elif type(event) is OrderFilled and inst is not None:
            fields.update(
                side=event.side.value,
                qty=str(inst.size(event.last_qty)),
                price=str(inst.price(event.last_px)),
                fee=str(event.fee),
                position=str(inst.size(kernel.portfolio.net_quantity(event.instrument_id))),
                realized_pnl=str(kernel.portfolio.realized_pnl(event.instrument_id)),
            )
        elif isinstance(event, OrderRejected | OrderDenied | OrderCanceled):
            fields["reason"] = getattr(event, "reason", "")
        log.info(_EVENT_NAMES[type(event)], **fields)

    for event_type in _EVENT_NAMES:
        kernel.bus.subscribe(event_type, on_event)


_EVENT_NAMES: dict[type[OrderEvent], str] = {
    OrderSubmitted: "order_submitted",
    OrderFilled: "order_filled",
    OrderRejected: "order_rejected",
    OrderDenied: "order_denied",
    OrderCanceled: "order_canceled",
}
