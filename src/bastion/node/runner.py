"""The trading node (paper or live): the kernel on an asyncio loop.

``run_node`` wires a ``Kernel`` to the live clock, a real-time quote feed and
the SQLite journal (which commits on its own writer thread), then runs until
SIGINT/SIGTERM or ``run_for_s``. Shutdown is orderly: strategies stopped, every
open order canceled at the venue (and confirmed), the journal drained and closed,
exit code 0. Orders, fills and PnL are logged as they happen.

Before the journal is opened, ``bastion.live.preflight`` admits the start: the journal
is not the other mode's, and a live node has a clean tree and consumes its arming
(journaled as ``LiveArmed``).

The node listens on a local control socket next to its journal (``bastion.node.control``)
for the operator's kill switch (``bastion kill``), ``resume`` and ``status``. With
``[monitoring]`` it also serves its metrics, ``/healthz`` and ``/readyz`` over HTTP
(``bastion.monitor.node``), bound before anything else starts so that an address it
cannot listen on stops it; without, it logs ``monitoring_off`` (a live node refuses to
start: ``bastion.live.preflight``).

Start-up is recovery first (``bastion.recovery``): the last snapshot is loaded and
the journal tail replayed (orders, fills, positions, trading state, strategy
state), every venue is connected and reconciled, and only then do strategies start
(``on_load`` with their saved state, then ``on_start``) and the feeds run (with several
venues, one still down after its logon wait is reconciled when it logs on, while the
others trade). A HALTED node stays HALTED across restarts. Each venue is watched on
its own: when its session drops, orders for its instruments are rejected (the venue is
not connected) while the other venues trade on; after each new logon it is reconciled
again (its instruments stay unavailable until then), and its cancel-on-disconnect
policy decides what becomes of the orders the drop left open (for a FIX venue,
``bastion.venues.fix.disconnect``). While running, a snapshot is stored every
``journal.snapshot_interval_s`` or ``journal.snapshot_every_events``, and once more
at shutdown. ``recover_only`` (``bastion recover``) stops after the
reconciliation: no strategy runs, nothing is canceled. A member of an HA group
(``[ha]``) starts as a standby and takes this start path once it wins the lease
(``bastion.node.ha_member``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from pathlib import Path
from typing import Any

import msgspec
import structlog

from bastion import native
from bastion.backup.scheduled import scheduled_shipping
from bastion.clock import LiveClock
from bastion.config import PaperConfig
from bastion.errors import ConfigError, FencedError, OperationalError
from bastion.feeds import Feed
from bastion.feeds.arbiter import Arbiter
from bastion.ha.node import EXIT_DEPOSED, ha_journal_name
from bastion.isolation.sandbox import harden_core
from bastion.journal.base import Journal
from bastion.journal.factory import journal_locator, open_journal
from bastion.journal.keys import JournalKeys, journal_keys, require_keys
from bastion.live.arming import discard_arming
from bastion.live.preflight import admit_start, admit_writer, check_live_start, node_manifest
from bastion.model.events import RunManifest, VenueLoggedOn, VenueSessionLost
from bastion.monitor.alerts.node import Alerting
from bastion.monitor.node import NodeMonitor
from bastion.node.access import command_guard, node_identities, socket_mode
from bastion.node.actions import NodeOperator
from bastion.node.audit import AuditTrail
from bastion.node.control import (
    open_control_socket,
    operator_name,
    serve_control,
    socket_path,
)
from bastion.node.ha_member import HaNode
from bastion.node.kernel import Kernel
from bastion.node.order_log import log_order_events
from bastion.recovery.reconcile import combined_reports, reconcile, refuse_unknown_venues
from bastion.recovery.replay import recover_state
from bastion.recovery.state import capture
from bastion.tasks import TaskManager
from bastion.vault.refs import SecretSource
from bastion.venues.base import VenueAdapter

log = structlog.get_logger("bastion.node")

PNL_LOG_INTERVAL_S = 5.0
SHUTDOWN_TIMEOUT_S = 10.0
STATE_REFRESH_S = 0.1  # longest a snapshot waits for isolated strategies' states
RISK_TIMER_S = 0.25  # post-trade limits and override expiry are checked this often


def run_node(
    config: PaperConfig,
    *,
    base_dir: Path,
    source: str = "",
    secrets: SecretSource | None = None,
    keys: JournalKeys | None = None,
) -> int:
    """Run a paper-trading node until a signal or ``run_for_s``; return the exit code.

    ``source``: where the config came from (journaled when the risk limits changed);
    ``secrets``: what the config's ``secret:NAME`` references resolve to
    (``bastion.vault.config.load_secrets``); ``keys``: the journal's keys, when not
    from ``secrets`` (``journal_keys``); neither: a plaintext, unkeyed journal (refused
    if the config refers to keys)."""
    return asyncio.run(_Node(config, base_dir, source=source, secrets=secrets, keys=keys).run())


def recover_node(
    config: PaperConfig,
    *,
    base_dir: Path,
    source: str = "",
    secrets: SecretSource | None = None,
    keys: JournalKeys | None = None,
) -> tuple[int, dict[str, Any]]:
    """Recover and reconcile without trading; return (exit code, report).

    Exit code 0: reconciled; 1: mismatches (the node's trading state was set per
    ``recovery.on_mismatch``) or the venue could not be reached.
    """
    node = _Node(config, base_dir, recover_only=True, source=source, secrets=secrets, keys=keys)
    code = asyncio.run(node.run())
    return code, node.report


class _Node:
    def __init__(
        self,
        config: PaperConfig,
        base_dir: Path,
        *,
        recover_only: bool = False,
        source: str = "",
        secrets: SecretSource | None = None,
        keys: JournalKeys | None = None,
    ) -> None:
        self.config = config
        self.secrets = secrets
        if keys is None and secrets is not None:
            keys = journal_keys(config.journal, secrets)
        self.keys = require_keys(config.journal, keys)
        self.source = source or str(base_dir)
        self.base_dir = base_dir
        self.recover_only = recover_only
        self.stop_requested = asyncio.Event()
        self.clock = LiveClock()
        # who may command it (refused now, before anything starts, if [access] is wrong)
        self.identities = None
        if not recover_only:
            self.identities = node_identities(
                config, base_dir=base_dir, secrets=secrets, clock=self.clock
            )
        self.tasks = TaskManager(on_crash=self._on_task_crash)
        self.exit_code = 0
        self.report: dict[str, Any] = {}
        self.epoch = 0
        self._last_snapshot_seq = -1
        self._last_snapshot_at = 0.0
        self._logons_journaled: dict[str, int] = {}
        self._sessions_down: set[str] = set()
        self.ha: HaNode | None = None
        """An HA member's standby phase and lead (``bastion.node.ha_member``)."""

    async def run(self) -> int:
        config = self.config
        clock = self.clock
        manifest = node_manifest(
            config,
            base_dir=self.base_dir,
            source=self.source,
            who=operator_name(),
            ts_ns=clock.timestamp_ns(),
        )
        check_live_start(config, manifest)
        monitor = self._bind_monitor()  # before anything is journaled or an arming used
        try:
            return await self._run(manifest, monitor)
        finally:
            if monitor is not None:
                await monitor.stop()

    def _bind_monitor(self) -> NodeMonitor | None:
        """The node's metrics and health listener, bound (``monitoring_listening``); None
        when ``[monitoring]`` is absent or disabled (``monitoring_off``) or recovering only."""
        config = self.config.monitoring
        if self.recover_only:
            return None
        if config is None or not config.enabled:
            log.info(
                "monitoring_off",
                note="no [monitoring] section (or enabled = false): no metrics, health or "
                "alerts for this node",
            )
            return None
        monitor = NodeMonitor(
            config, node_id=self.config.node.id, mode=self.config.node.mode, clock=self.clock
        )
        monitor.bind()
        return monitor

    async def _run(self, manifest: RunManifest, monitor: NodeMonitor | None) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        clock = self.clock
        # the journal as its readers see it (SQLite or PostgreSQL): the start checks
        # read its run manifests and used armings, the audit trail its operator events
        readable = journal_locator(
            config.journal,
            base_dir=self.base_dir,
            keys=self.keys,
            secrets=self.secrets,
            name=config.journal_name(),
        )
        armed = admit_start(
            config,
            manifest,
            journal=readable,
            secrets=self.secrets,
            now_ns=clock.timestamp_ns(),
            trading=not self.recover_only,
            read_journal=config.ha is None,  # an HA member reads it once it leads
        )
        leader = ha = None
        if config.ha is not None:  # a standby until it holds the lease
            ha = self.ha = self._ha_member()
            leader = await ha.stand_by(
                self.stop_requested, monitor=monitor, on_signal=self._on_signal
            )
            if leader is None:
                log.info("node_stopped", exit_code=self.exit_code, role="standby")
                return self.exit_code
            try:
                admit_writer(config, readable, armed)
            except BaseException:
                ha.close(release=True)  # it never wrote: hand the lease on at once
                raise
        journal = open_journal(
            config.journal,
            base_dir=self.base_dir,
            keys=self.keys,
            secrets=self.secrets,
            name=config.node.id if leader is None else ha_journal_name(config.ha),
            fence_epoch=None if leader is None else leader.epoch,
            on_fenced=None if ha is None else ha.on_fenced,
            on_failed=None if ha is None else ha.on_journal_failed,
        )
        try:
            epoch = journal.begin_run(config.node.id, clock.timestamp_ns())
        except BaseException as error:
            with contextlib.suppress(OperationalError):
                journal.close()  # stops its writer thread
            if ha is not None:
                ha.close(release=False)
                if isinstance(error, FencedError):
                    return EXIT_DEPOSED
            raise
        kernel_ref: list[Kernel] = []

        def request_flush() -> None:
            loop.call_soon(kernel_ref[0].flush)

        kernel = Kernel(
            config=config,
            base_dir=self.base_dir,
            clock=clock,
            epoch=epoch,
            journal=journal,
            request_flush=request_flush,
            secrets=self.secrets,
            fence=None if leader is None else leader.fence,
            sender_seqs=None if leader is None else leader.sender_seqs,
        )
        kernel_ref.append(kernel)
        self.epoch = epoch
        if kernel.isolation == "process":
            refused = harden_core()
            if refused:
                log.warning("core_hardening_incomplete", refused=refused)
        elif config.strategies:
            log.warning(
                "strategies_inline",
                note='node.isolation = "inline": strategies run in the node\'s own process, '
                "where a strategy can reach the risk gate, read the node's secrets and stall "
                'the kill switch; a node trading money runs them isolated ("process")',
            )
        log_order_events(kernel)
        if monitor is not None:
            monitor.attach(kernel, journal=journal, epoch=epoch)
        operator = NodeOperator(kernel, monitoring=None if monitor is None else monitor.url)
        operator.audit_trail = AuditTrail(readable)
        recovered = recover_state(
            kernel, journal, start=None if leader is None else leader.handover
        )
        if ha is not None:
            operator.ha = ha.lead(kernel, journal)
        try:
            refuse_unknown_venues(kernel.execution.open_orders(), kernel.venues)
            alerting = None if self.recover_only else self._alerting(kernel, epoch)
        except BaseException:
            journal.close()
            raise
        operator.took_over_state()
        kernel.risk_overrides.audit_config(who=operator_name(), source=self.source)
        kernel.bus.publish(
            msgspec.structs.replace(manifest, epoch=epoch, ts_ns=clock.timestamp_ns())
        )
        log.info(
            "run_manifest",
            mode=manifest.mode,
            config_sha256=manifest.config_sha256,
            git_commit=manifest.git_commit,
            git_dirty=manifest.git_dirty,
        )
        if armed is not None:
            kernel.bus.publish(msgspec.structs.replace(armed, ts_ns=clock.timestamp_ns()))
            journal.flush()  # committed before the token goes: its use is on record
            discard_arming(readable.path)
            log.info(
                "live_arming_used",
                token_id=armed.token_id,
                armed_by=armed.who,
                why=armed.why,
                armed_at_ns=armed.armed_at_ns,
            )
        self.report = {"epoch": epoch, **msgspec.structs.asdict(recovered)}
        self.report["torn_tail"] = journal.torn_tail
        adopted: dict[str, int] = {}
        self.report["venues"] = {}
        for venue in kernel.venues.values():
            prep = venue.prepare_recovery(kernel.execution, order_id_prefix=self._order_id_prefix)
            adopted[venue.name] = len(prep.get("adopted", ()))
            self.report["venues"][venue.name] = {"kind": venue.kind, "recovery": prep}
            venue.session_lost(kernel.execution.open_orders())  # a restart is a drop
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        log.info(
            "node_started",
            node=config.node.id,
            epoch=epoch,
            journal=str(journal.path),
            strategies=list(kernel.strategies.strategies),
            isolation=kernel.isolation,
            venues=list(kernel.venues),
            feeds={feed.name: sorted(feed.instruments) for feed in kernel.feeds},
            recover_only=self.recover_only,
            risk_gate_compiled=native.compiled("bastion.risk"),
            validation_compiled=native.compiled("bastion.feeds.validation"),
        )
        recorder = kernel.recorder
        if recorder is not None:
            recorder.start()
            log.info("recording_started", path=str(recorder.root), streams=sorted(recorder.streams))
        try:
            if alerting is not None:
                operator.alerts = alerting.engine
                if monitor is not None:  # metric rules read each sample; its own series
                    monitor.add_listener(alerting.on_sample)
                    monitor.add_source(alerting.sources)
                alerting.start(kernel)
                self.tasks.spawn("alerts", alerting.run())
            if monitor is not None:
                monitor.start()
            if self.identities is not None:
                control_path = socket_path(journal.path)
                control_socket = open_control_socket(control_path, mode=socket_mode(config))
                guard = command_guard(
                    operator, identities=self.identities, epoch=epoch, mode=config.node.mode
                )
                self.tasks.spawn("control", serve_control(control_socket, control_path, guard))
            await self._connect_venues(kernel)
            deferred = await self._reconcile_all(kernel, adopted)
            reconciled = deferred is not None
            if deferred is not None and not self.recover_only:
                for venue in kernel.venues.values():
                    if venue.name not in deferred:
                        venue.after_reconcile(
                            kernel.execution.open_orders(), kernel.risk.cancel_order
                        )
                kernel.risk.track_open_orders(kernel.execution.open_orders())
                kernel.settle_after_restart(set(kernel.venues) - deferred if deferred else None)
                for name in kernel.venues:
                    if name not in deferred:
                        kernel.cancel_if_halted(name)
                self._snapshot(kernel, journal)
                kernel.start()
                if ha is not None:
                    ha.took_over(kernel)
                self.tasks.spawn("risk-timer", self._risk_timer(kernel))
                if kernel.arbiter is not None:
                    self.tasks.spawn("feed-arbiter", self._arbiter_timer(kernel.arbiter))
                if recorder is not None:
                    self.tasks.spawn("recorder", recorder.run())
                for feed in kernel.feeds:
                    if feed.paced:
                        self.tasks.spawn(f"feed-{feed.name}", self._feed(kernel, feed))
                self.tasks.spawn("pnl-log", self._log_pnl(kernel))
                if (shipping := scheduled_shipping(config, self.source, monitor)) is not None:
                    self.tasks.spawn("backup-shipping", shipping.run())  # a niced child
                self.tasks.spawn("snapshots", self._snapshots(kernel, journal))
                if monitor is not None:
                    monitor.trading_started()
                for venue in kernel.venues.values():
                    watch = self._watch_venue(
                        kernel,
                        venue,
                        deferred=adopted.get(venue.name, 0) if venue.name in deferred else None,
                    )
                    self.tasks.spawn(f"venue-{venue.name}", watch)
                try:
                    async with asyncio.timeout(config.run_for_s):
                        await self.stop_requested.wait()
                except TimeoutError:
                    log.info("run_time_elapsed", run_for_s=config.run_for_s)
                await self._shutdown(kernel)
                if self.deposed is None:
                    self._snapshot(kernel, journal)
            elif self.recover_only:
                journal.flush()
                self._snapshot(kernel, journal)
                self.report["state"] = kernel.risk.state.value
                if not reconciled or self.report.get("reconciliation", {}).get("mismatches"):
                    self.exit_code = 1
        except OperationalError as error:
            if self.deposed is None:
                raise
            # deposed: its journal refuses, so whatever still tried to journal on the way
            # out (a failed strategy's cancels, a last state change) fails; expected
            log.warning("shutdown_deposed_refused", reason=self.deposed, error=str(error))
        finally:
            if ha is not None:
                await ha.settle()
            for venue in kernel.venues.values():
                await (venue.disconnect() if self.deposed is None else venue.abandon())
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.tasks.cancel_all()
            if recorder is not None:  # the feeds have stopped: what they sent is written
                recorder.close()
                log.info("recording_closed", **dataclasses.asdict(recorder.stats()))
            if alerting is not None:
                alerting.close()
            if monitor is not None:
                await monitor.stop()  # it reads the journal
            if ha is None:
                journal.close()
            else:
                ha.close_journal(journal)
                ha.close(release=True)
        log.info("node_stopped", exit_code=self.exit_code, journal_events=journal.last_seq)
        return self.exit_code

    # -- HA (bastion.node.ha_member) -------------------------------------------------------
    def _ha_member(self) -> HaNode:
        if self.recover_only:
            raise ConfigError(
                "bastion recover: an HA member recovers by taking the lease (bastion run); "
                "recovering beside a leader would write its journal"
            )
        return HaNode(
            self.config,
            base_dir=self.base_dir,
            keys=self.keys,
            secrets=self.secrets,
            clock=self.clock,
            identities=self.identities,
            tasks=self.tasks,
            stop=self._stop_with,
        )

    def _stop_with(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.stop_requested.set()

    @property
    def deposed(self) -> str | None:
        """Why this HA leader was deposed: it sends and journals nothing more, and exits."""
        return None if self.ha is None else self.ha.deposed

    def _alerting(self, kernel: Kernel, epoch: int) -> Alerting | None:
        """The node's alert rules, notifiers and dead-man's switch (None: monitoring off)."""
        return Alerting.for_node(
            bus=kernel.bus, clock=self.clock, config=self.config, secrets=self.secrets, epoch=epoch
        )

    def _journal_logon(self, kernel: Kernel, venue: VenueAdapter) -> None:
        """Journal ``venue``'s logon (``VenueLoggedOn``) unless it already is."""
        if venue.connected and venue.logons > self._logons_journaled.get(venue.name, 0):
            self._logons_journaled[venue.name] = venue.logons
            self._sessions_down.discard(venue.name)
            kernel.bus.publish(
                VenueLoggedOn(
                    ts_ns=self.clock.timestamp_ns(), venue=venue.name, logons=venue.logons
                )
            )

    def _journal_session_lost(self, kernel: Kernel, venue: VenueAdapter, reason: str) -> None:
        """Journal that ``venue`` has no session (``VenueSessionLost``), once per loss."""
        if venue.name not in self._sessions_down:
            self._sessions_down.add(venue.name)
            kernel.bus.publish(
                VenueSessionLost(ts_ns=self.clock.timestamp_ns(), venue=venue.name, reason=reason)
            )

    @property
    def _order_id_prefix(self) -> str:
        return f"{self.config.node.id}-"

    async def _connect_venues(self, kernel: Kernel) -> None:
        """Start every venue's session and give the first logons a bounded wait."""
        venues = list(kernel.venues.values())
        for venue in venues:
            await venue.connect()
        waits = [venue.wait_connected(venue.logon_timeout_s) for venue in venues]
        for venue, connected in zip(venues, await asyncio.gather(*waits), strict=True):
            if connected:
                log.info("venue_logged_on", venue=venue.name)
                self._journal_logon(kernel, venue)
            else:
                self._journal_session_lost(
                    kernel, venue, f"not logged on within {venue.logon_timeout_s:g} s of start"
                )
                log.warning(
                    "venue_not_logged_on",
                    venue=venue.name,
                    waited_s=venue.logon_timeout_s,
                    note="no strategy starts before the venue is reconciled; still trying",
                )

    async def _reconcile_all(self, kernel: Kernel, adopted: dict[str, int]) -> set[str] | None:
        """Reconcile the venues; None if stopped (or, recovering only, timed out) first.
        Strategies start only after this returns.

        Every venue is waited for, except in a live node with several venues: there a
        venue still down after its logon wait is deferred (the set returned) once another
        is reconciled, and is reconciled when it logs on, as after a drop; its
        instruments are unavailable until then. ``report["reconciliation"]`` sums the
        venues' reports (with one venue: its report); ``report["venues"][name]
        ["reconciliation"]`` is each venue's (None while deferred)."""
        venues = list(kernel.venues.values())
        deferred: set[str] = set()
        if not self.recover_only and len(venues) > 1:
            if not await self._until_any_connected(venues):
                return None
            deferred = {v.name for v in venues if not v.connected}
        reports: list[dict[str, Any]] = []
        for venue in venues:
            if venue.name in deferred:
                log.warning("venue_reconciliation_deferred", venue=venue.name)
                self.report["venues"][venue.name]["reconciliation"] = None
                continue
            if not await self._until_connected(venue):
                return None
            self._journal_logon(kernel, venue)
            report = await reconcile(
                kernel,
                venue=venue,
                epoch=self.epoch,
                config=self.config.recovery,
                order_id_prefix=self._order_id_prefix,
                adopted_before=adopted.get(venue.name, 0),
            )
            reports.append(msgspec.structs.asdict(report))
            self.report["venues"][venue.name]["reconciliation"] = reports[-1]
        self.report["reconciliation"] = combined_reports(reports)
        return deferred

    async def _until_any_connected(self, venues: list[VenueAdapter]) -> bool:
        """Wait until one of ``venues`` is connected; False if stopped first."""
        while not any(venue.connected for venue in venues):
            if self.stop_requested.is_set():
                return False
            for venue in venues:
                if await venue.wait_connected(0.1):
                    break
        return True

    async def _until_connected(self, venue: VenueAdapter) -> bool:
        """Wait for ``venue``'s session; False if stopped (or, recovering only, past
        ``recovery.timeout_s``) first."""
        deadline = self.clock.monotonic_s() + self.config.recovery.timeout_s
        while not venue.connected:
            if self.stop_requested.is_set():
                return False
            if self.recover_only and self.clock.monotonic_s() > deadline:
                self.report["reconciliation"] = {
                    "venue": venue.name,
                    "mismatches": [f"venue {venue.name} not reachable"],
                }
                return False
            await venue.wait_connected(0.5)
        return True

    async def _watch_venue(
        self, kernel: Kernel, venue: VenueAdapter, *, deferred: int | None = None
    ) -> None:
        """After every new logon of ``venue`` (a dropped connection, a venue restart),
        reconcile it again, reject the amends the drop lost (``Kernel.reject_lost_amends``),
        then apply its cancel-on-disconnect policy to what the drop left open; if the
        node is HALTED or the venue halted, cancel its open orders (a kill while it was
        down could not reach it). From the drop until it is reconciled, its instruments
        are unavailable (orders for them are rejected) and the other venues trade on.

        A logon is told by the venue's logon count, not by its logged-on flag: a drop
        and a new logon while this task was busy (or, for a deferred venue, before it
        started) is still reconciled.

        ``deferred``: the venue was down at start (the orders its recovery adopted): it
        is reconciled as soon as it is logged on (at once if it already is), which
        counts them and settles what the stop left half done at this venue
        (``Kernel.settle_after_restart``)."""
        first = deferred is not None
        while True:
            if not first:
                if venue.reconciled:
                    await venue.wait_disconnected()
                # it dropped (and may be logged on again already): a new logon follows
                log.warning(
                    "venue_disconnected",
                    venue=venue.name,
                    unavailable_instruments=sorted(
                        iid for iid, i in kernel.instruments.items() if i.venue == venue.name
                    ),
                )
                venue.session_lost(kernel.execution.open_orders())
                self._journal_session_lost(kernel, venue, "session dropped")
            await venue.wait_connected()
            self._journal_logon(kernel, venue)
            await reconcile(
                kernel,
                venue=venue,
                epoch=self.epoch,
                config=self.config.recovery,
                order_id_prefix=self._order_id_prefix,
                adopted_before=deferred or 0,
            )
            kernel.reject_lost_amends(venue.name)  # sent before this logon, never answered
            venue.after_reconcile(kernel.execution.open_orders(), kernel.risk.cancel_order)
            if first:
                kernel.settle_after_restart({venue.name})
                first = False
                deferred = None
            kernel.cancel_if_halted(venue.name)  # a kill it was down for

    async def _risk_timer(self, kernel: Kernel) -> None:
        """Post-trade limits (daily loss, drawdown) between fills, and override expiry."""
        while True:
            await asyncio.sleep(RISK_TIMER_S)
            kernel.risk.check_post_trade()
            kernel.risk_overrides.expire()

    async def _arbiter_timer(self, arbiter: Arbiter) -> None:
        """A followed feed gone silent is left, or its instrument reported without a
        healthy feed, within ``arbitration.poll_ms`` even when no other feed ticks."""
        interval_s = arbiter.config.poll_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            arbiter.poll()

    def _snapshot(self, kernel: Kernel, journal: Journal) -> None:
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

    async def _snapshots(self, kernel: Kernel, journal: Journal) -> None:
        cfg = self.config.journal
        poll_s = min(1.0, cfg.snapshot_interval_s)
        while True:
            await asyncio.sleep(poll_s)
            new_events = journal.last_seq - self._last_snapshot_seq
            due = self.clock.monotonic_s() - self._last_snapshot_at >= cfg.snapshot_interval_s
            if new_events >= cfg.snapshot_every_events or (due and new_events > 0):
                await kernel.strategies.refresh_states(STATE_REFRESH_S)
                self._snapshot(kernel, journal)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("shutdown_requested", signal=sig.name)
        self.stop_requested.set()

    def _on_task_crash(self, name: str, error: BaseException) -> None:
        if self.deposed is not None:
            return  # a deposed leader's refused journal: its own exit (deposed) stands
        self.exit_code = 1
        self.stop_requested.set()

    async def _shutdown(self, kernel: Kernel) -> None:
        await self.tasks.cancel_all()  # no more data into strategies
        kernel.stop_strategies()
        if self.deposed is not None:  # another member leads: nothing is canceled from here
            log.warning(
                "shutdown_deposed",
                reason=self.deposed,
                open_orders=len(kernel.execution.open_orders()),
            )
            return
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

    async def _feed(self, kernel: Kernel, feed: Feed) -> None:
        """Run a feed the node paces (one that pushes on its own was attached when the
        kernel was built)."""
        await feed.run(kernel.feed_sinks[feed.name], kernel.clock)
        log.info("feed_exhausted", feed=feed.name)

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
