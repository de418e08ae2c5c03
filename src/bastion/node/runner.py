"""The live trading node (paper mode for now): the kernel on an asyncio loop.

``run_node`` wires a ``Kernel`` to the live clock, a real-time quote feed and
the SQLite journal (which commits on its own writer thread), then runs until
SIGINT/SIGTERM or ``run_for_s``. Shutdown is orderly: strategies stopped, every
open order canceled at the venue (and confirmed), the journal drained and closed,
exit code 0. Orders, fills and PnL are logged as they happen.

The node listens on a local control socket next to its journal (``bastion.node.control``)
for the operator's kill switch (``bastion kill``), ``resume`` and ``status``.

Start-up is recovery first (``bastion.recovery``): the last snapshot is loaded and
the journal tail replayed (orders, fills, positions, trading state, strategy
state), the venue is connected and reconciled, and only then do strategies start
(``on_load`` with their saved state, then ``on_start``). A HALTED node stays
HALTED across restarts. After each reconciliation (at start and after every new
logon) ``fix_venue.cancel_on_disconnect`` decides what becomes of the orders the drop
left open (``bastion.venues.fix.disconnect``). While running, a snapshot is stored every
``journal.snapshot_interval_s`` or ``journal.snapshot_every_events``, and once
more at shutdown. ``recover_only`` (``bastion recover``) stops after the
reconciliation: no strategy runs, nothing is canceled.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import structlog

from bastion.clock import LiveClock
from bastion.config import PaperConfig, resolve_path
from bastion.data import SyntheticQuoteFeed
from bastion.journal.sqlite import SqliteJournal
from bastion.model.data import Bar, QuoteTick
from bastion.model.events import (
    OrderCanceled,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from bastion.node.actions import NodeOperator
from bastion.node.control import (
    open_control_socket,
    operator_name,
    serve_control,
    socket_path,
)
from bastion.node.kernel import Kernel
from bastion.recovery.reconcile import reconcile
from bastion.recovery.replay import recover_state
from bastion.recovery.state import capture
from bastion.risk import native
from bastion.tasks import TaskManager, wait_first
from bastion.venues.fix.adapter import FixVenueAdapter
from bastion.venues.fix.disconnect import DisconnectCancels

log = structlog.get_logger("bastion.node")

PNL_LOG_INTERVAL_S = 5.0
SHUTDOWN_TIMEOUT_S = 10.0
RISK_TIMER_S = 0.25  # post-trade limits and override expiry are checked this often


def run_node(config: PaperConfig, *, base_dir: Path, source: str = "") -> int:
    """Run a paper-trading node until a signal or ``run_for_s``; return the exit code.

    ``source``: where the config came from (journaled when the risk limits changed)."""
    return asyncio.run(_Node(config, base_dir, source=source).run())


def recover_node(
    config: PaperConfig, *, base_dir: Path, source: str = ""
) -> tuple[int, dict[str, Any]]:
    """Recover and reconcile without trading; return (exit code, report).

    Exit code 0: reconciled; 1: mismatches (the node's trading state was set per
    ``recovery.on_mismatch``) or the venue could not be reached.
    """
    node = _Node(config, base_dir, recover_only=True, source=source)
    code = asyncio.run(node.run())
    return code, node.report


class _Node:
    def __init__(
        self, config: PaperConfig, base_dir: Path, *, recover_only: bool = False, source: str = ""
    ) -> None:
        self.config = config
        self.source = source or str(base_dir)
        self.base_dir = base_dir
        self.recover_only = recover_only
        self.stop_requested = asyncio.Event()
        self.clock = LiveClock()
        self.tasks = TaskManager(on_crash=self._on_task_crash)
        self.exit_code = 0
        self.report: dict[str, Any] = {}
        self.epoch = 0
        self._last_snapshot_seq = -1
        self._last_snapshot_at = 0.0

    async def run(self) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        clock = self.clock
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
        self.epoch = epoch
        _log_order_events(kernel)
        operator = NodeOperator(kernel)
        recovered = recover_state(kernel, journal)
        operator.took_over_state()
        kernel.risk_overrides.audit_config(who=operator_name(), source=self.source)
        self.report = {"epoch": epoch, **msgspec.structs.asdict(recovered)}
        self.report["torn_tail"] = journal.torn_tail
        adopted = 0
        disconnect: DisconnectCancels | None = None
        if isinstance(kernel.venue, FixVenueAdapter):
            prep = kernel.venue.prepare_recovery(
                kernel.execution, order_id_prefix=self._order_id_prefix
            )
            adopted = len(prep.adopted)
            self.report["fix"] = msgspec.structs.asdict(prep)
            assert config.fix_venue is not None
            disconnect = DisconnectCancels(kernel.venue, config.fix_venue.cancel_on_disconnect)
            disconnect.session_lost(kernel.execution.open_orders())  # a restart is a drop
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        log.info(
            "node_started",
            node=config.node.id,
            epoch=epoch,
            journal=str(journal.path),
            strategies=list(kernel.strategies.strategies),
            venue=kernel.venue.name,
            recover_only=self.recover_only,
            risk_gate_compiled=native.compiled(),
        )
        try:
            if not self.recover_only:
                control_path = socket_path(journal.path)
                control_socket = open_control_socket(control_path)
                self.tasks.spawn("control", serve_control(control_socket, control_path, operator))
            await self._connect_venue(kernel)
            reconciled = await self._reconcile(kernel, adopted)
            if reconciled and not self.recover_only:
                if disconnect is not None:
                    disconnect.after_reconcile(
                        kernel.execution.open_orders(), kernel.risk.cancel_order
                    )
                kernel.risk.track_open_orders(kernel.execution.open_orders())
                kernel.settle_after_restart()
                self._snapshot(kernel, journal)
                kernel.start()
                self.tasks.spawn("risk-timer", self._risk_timer(kernel))
                self.tasks.spawn("feed", self._feed(kernel))
                self.tasks.spawn("pnl-log", self._log_pnl(kernel))
                self.tasks.spawn("snapshots", self._snapshots(kernel, journal))
                if disconnect is not None:
                    self.tasks.spawn("relogon", self._reconcile_on_relogon(kernel, disconnect))
                try:
                    await asyncio.wait_for(self.stop_requested.wait(), timeout=config.run_for_s)
                except TimeoutError:
                    log.info("run_time_elapsed", run_for_s=config.run_for_s)
                await self._shutdown(kernel)
                self._snapshot(kernel, journal)
            elif self.recover_only:
                journal.flush()
                self._snapshot(kernel, journal)
                self.report["state"] = kernel.risk.state.value
                if not reconciled or self.report.get("reconciliation", {}).get("mismatches"):
                    self.exit_code = 1
        finally:
            if isinstance(kernel.venue, FixVenueAdapter):
                await kernel.venue.disconnect()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.tasks.cancel_all()
            journal.close()
        log.info("node_stopped", exit_code=self.exit_code, journal_events=journal.last_seq)
        return self.exit_code

    @property
    def _order_id_prefix(self) -> str:
        return f"{self.config.node.id}-"

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
                note="no strategy starts before the venue is reconciled; still trying",
            )

    async def _reconcile(self, kernel: Kernel, adopted: int) -> bool:
        """Reconcile once the venue is reachable; False if stopped (or, recovering only,
        timed out) first. Strategies start only after this returns True."""
        venue = kernel.venue
        if isinstance(venue, FixVenueAdapter):
            deadline = self.clock.monotonic_s() + self.config.recovery.timeout_s
            while not venue.session.logged_on:
                if self.stop_requested.is_set():
                    return False
                if self.recover_only and self.clock.monotonic_s() > deadline:
                    self.report["reconciliation"] = {
                        "mismatches": [f"venue {venue.name} not reachable"]
                    }
                    return False
                await wait_first(self.stop_requested.wait(), venue.logged_on.wait(), timeout_s=0.5)
        report = await reconcile(
            kernel,
            epoch=self.epoch,
            config=self.config.recovery,
            order_id_prefix=self._order_id_prefix,
            adopted_before=adopted,
        )
        self.report["reconciliation"] = msgspec.structs.asdict(report)
        return True

    async def _reconcile_on_relogon(self, kernel: Kernel, disconnect: DisconnectCancels) -> None:
        """After every new logon (a dropped connection, a venue restart), reconcile again,
        then apply ``fix_venue.cancel_on_disconnect`` to what the drop left open."""
        venue = disconnect.venue
        while True:
            while venue.session.logged_on:
                await venue.logged_off.wait()
            disconnect.session_lost(kernel.execution.open_orders())
            await venue.logged_on.wait()
            await reconcile(
                kernel,
                epoch=self.epoch,
                config=self.config.recovery,
                order_id_prefix=self._order_id_prefix,
            )
            disconnect.after_reconcile(kernel.execution.open_orders(), kernel.risk.cancel_order)

    async def _risk_timer(self, kernel: Kernel) -> None:
        """Post-trade limits (daily loss, drawdown) between fills, and override expiry."""
        while True:
            await asyncio.sleep(RISK_TIMER_S)
            kernel.risk.check_post_trade()
            kernel.risk_overrides.expire()

    def _snapshot(self, kernel: Kernel, journal: SqliteJournal) -> None:
        if journal.last_seq == self._last_snapshot_seq:
            return
        started = self.clock.monotonic_s()
        payload = capture(kernel, node_id=self.config.node.id, epoch=self.epoch)
        seq = journal.snapshot(payload, kernel.clock.timestamp_ns())
        self._last_snapshot_seq = seq
        self._last_snapshot_at = self.clock.monotonic_s()
        log.info(
            "snapshot_taken",
            seq=seq,
            bytes=len(payload),
            ms=round((self.clock.monotonic_s() - started) * 1000, 3),
        )

    async def _snapshots(self, kernel: Kernel, journal: SqliteJournal) -> None:
        cfg = self.config.journal
        poll_s = min(1.0, cfg.snapshot_interval_s)
        while True:
            await asyncio.sleep(poll_s)
            new_events = journal.last_seq - self._last_snapshot_seq
            due = self.clock.monotonic_s() - self._last_snapshot_at >= cfg.snapshot_interval_s
            if new_events >= cfg.snapshot_every_events or (due and new_events > 0):
                self._snapshot(kernel, journal)

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
        deadline = self.clock.monotonic_s() + SHUTDOWN_TIMEOUT_S
        while kernel.execution.open_orders() and self.clock.monotonic_s() < deadline:
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
            next_at = self.clock.monotonic_s()
            while True:
                yield feed.next_quote(kernel.clock.timestamp_ns())
                next_at += interval_s
                await asyncio.sleep(max(0.0, next_at - self.clock.monotonic_s()))
        for source in config.replay:
            from bastion.data.replay import replay_from_config  # numpy, pyarrow: on use

            replay = replay_from_config(
                source, kernel.instruments[source.instrument], base_dir=self.base_dir
            )
            # replay at the recorded pace, re-stamped to now
            first_ts: int | None = None
            wall0 = self.clock.monotonic_s()
            for event in replay:
                if first_ts is None:
                    first_ts = event.ts_ns
                delay = wall0 + (event.ts_ns - first_ts) / 1e9 - self.clock.monotonic_s()
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
