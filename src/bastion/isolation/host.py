"""The core's side of strategy isolation: one process per strategy group, watched.

``ProcessStrategyHost`` stands where ``StrategyRunner`` stands in an inline node (the
kernel calls the same methods), but no strategy code runs in the core: each group of
strategies runs in a process of its own (``bastion.isolation.worker``), started with
a scrubbed environment, no file descriptor of the core but its channel, and the
sandbox of ``bastion.isolation.sandbox``. The host sends it quotes, bars and its own
order events, and takes from it order commands, each checked (the strategy is one of
the process's, the client order id one granted to it, the order one of its own)
before it goes to the risk gate like any other order. A process that breaks the
protocol, raises, crashes, stops answering (``max_handler_ms``, ``max_backlog``) or
does not start is failed: ``StrategyFailed`` for each of its strategies, its open
orders canceled, the node halted if a strategy's ``on_error`` is ``halt``, and per
``restart`` started again with its last saved state.

Nothing here ever waits for a strategy process on the event loop: sends are
non-blocking (what the socket does not take is kept and counted against the
backlog), reads are bounded per turn, so the kill switch is served whatever the
strategies do.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec
import structlog

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.config import InstrumentConfig
from bastion.errors import ConfigError
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.isolation import protocol as p
from bastion.isolation.sandbox import Confinement, python_dirs, scrubbed_env
from bastion.logs import relay_lines
from bastion.model.data import Bar, QuoteTick
from bastion.model.enums import TradingState
from bastion.model.events import (
    ORDER_EVENT_TYPES,
    FeedStatus,
    OrderCancelRejected,
    OrderEvent,
    OrderFilled,
    OrderModifyRejected,
    StrategyFailed,
)
from bastion.model.orders import Order
from bastion.portfolio.portfolio import Portfolio
from bastion.recovery.state import order_state, position_state
from bastion.risk.gate import RiskGate
from bastion.strategy.config import StrategyConfig
from bastion.tasks import spawn

log = structlog.get_logger("bastion.isolation")

ID_BLOCK: Final = 4096
"""Client order ids granted to a process at a time (more when half are used)."""
MAX_MESSAGES_PER_TURN: Final = 256
"""Messages of one process handled per event-loop turn; the rest wait their turn."""
MAX_UNSENT_BYTES: Final = 64 << 20
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 3.0
OUTPUT_LINE_MAX: Final = 2000
OUTPUT_LINES_PER_S: Final = 200
WATCH_TICK_MAX_S: Final = 0.01
"""The watchdog looks at least this often (and samples the loop's lag as often)."""


class StrategyProcess:
    """One strategy process, as the core sees it."""

    def __init__(self, group: str, configs: list[StrategyConfig]) -> None:
        self.group = group
        self.configs = configs
        self.strategy_ids = frozenset(c.name for c in configs)
        first = configs[0]
        self.limits = first.limits
        self.restart = first.restart
        self.restart_backoff_s = first.restart_backoff_s
        self.max_restarts = first.max_restarts
        self.state = "new"
        """new, starting, running, stopping, stopped or failed."""
        self.pid = 0
        self.popen: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.output_fd = -1
        self.buffer = p.FrameBuffer(p.MAX_WORKER_FRAME)
        self.unsent = bytearray()
        self.held = bytearray()
        """Frames kept while the host handles this process's messages (``_drain``)."""
        self.sent = 0
        self.acked = 0
        self.busy_since = 0.0
        self.last_input = 0.0
        self.started_at = 0.0
        self.restarts = 0
        self.failure = ""
        self.confinement: Confinement | None = None
        self.id_prefix = ""
        self.ranges: list[tuple[int, int]] = []
        self.next_seq = 0
        self.granted_until = 0
        self.subscribed: set[str] = set()
        self.send_quote: Callable[[QuoteTick], None] = _ignore
        self.output_tail = b""
        self.output_window = (0.0, 0)
        self.output_dropped = 0

    @property
    def pending(self) -> int:
        return self.sent - self.acked

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid or None,
            "strategies": sorted(self.strategy_ids),
            "restarts": self.restarts,
            "pending_inputs": self.pending,
            "failure": self.failure or None,
            "sandbox_gaps": self.confinement.gaps() if self.confinement else None,
            "output_lines_dropped": self.output_dropped,
        }


def _ignore(_: object) -> None:
    return None


Launch = Callable[[socket.socket, int, dict[str, str]], "subprocess.Popen[bytes]"]
"""Starts a strategy process: (its end of the channel, the descriptor for its stdout and
stderr, its environment) -> the process. It must start the process in a session of
its own (the host kills its process group)."""


def launch_worker(
    channel: socket.socket, output_fd: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """``python -m bastion.isolation.worker FD``: the channel its one descriptor of the
    core, a session of its own, ``/`` its working directory."""
    return subprocess.Popen(
        [sys.executable, "-m", "bastion.isolation.worker", str(channel.fileno())],
        pass_fds=(channel.fileno(),),
        stdin=subprocess.DEVNULL,
        stdout=output_fd,
        stderr=output_fd,
        env=env,
        close_fds=True,
        start_new_session=True,
        cwd="/",
    )


class ProcessStrategyHost:
    """Runs the node's strategies in their own processes (``node.isolation = "process"``)."""

    def __init__(
        self,
        *,
        configs: list[StrategyConfig],
        base_dir: Path,
        bus: MessageBus,
        clock: Clock,
        portfolio: Portfolio,
        execution: ExecutionEngine,
        risk: RiskGate,
        ids: ClientOrderIdGenerator,
        instruments: list[InstrumentConfig],
        last_quotes: dict[str, QuoteTick],
        flush: Callable[[], None],
        log_level: str = "info",
        log_format: str = "console",
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._portfolio = portfolio
        self._execution = execution
        self._risk = risk
        self._ids = ids
        self._instrument_configs = instruments
        self._instrument_ids = {i.id for i in instruments}
        self._last_quotes = last_quotes
        self._flush = flush
        self._log_level = log_level
        self._log_format = log_format
        self.strategies: dict[str, StrategyConfig] = {}
        self.paths: dict[str, Path] = {}
        groups: dict[str, list[StrategyConfig]] = {}
        for config in configs:
            path = (base_dir / config.path).resolve()
            if not path.is_file():
                raise ConfigError(f"strategy {config.name!r}: file not found: {path}")
            if config.name in self.strategies:
                raise ConfigError(f"duplicate strategy name {config.name!r}")
            self.strategies[config.name] = config
            self.paths[config.name] = path
            groups.setdefault(config.process_group, []).append(config)
        self.processes = {g: StrategyProcess(g, c) for g, c in groups.items()}
        self._process_of = {
            sid: proc for proc in self.processes.values() for sid in proc.strategy_ids
        }
        self._on_error = {c.name: c.on_error for c in configs}
        self.running: set[str] = set()
        self.failures: list[str] = []
        self.restored_states: dict[str, bytes] = {}
        self.quote_subscribers: dict[str, tuple[Callable[[Any], None], ...]] = {}
        self.bar_subscribers: dict[str, list[StrategyProcess]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.loop_lag_ms = 0.0
        self.loop_lag_max_ms = 0.0
        self._events_subscribed = False
        self.launch: Launch = launch_worker
        """How a strategy process is started. The one test seam: a test sets a launch
        that keeps the channel's other end and plays the strategy process itself."""
        self._holding = False
        self._held: list[StrategyProcess] = []
        self._held_write_due = False

    # -- lifecycle ----------------------------------------------------------------------
    def start_all(self) -> None:
        """Start every strategy process (on the running event loop)."""
        self._loop = asyncio.get_running_loop()
        if not self._events_subscribed:
            for event_type in ORDER_EVENT_TYPES:
                if event_type is not OrderFilled:  # fills come from the fill pipeline
                    self._bus.subscribe(event_type, self.on_order_event)
            self._bus.subscribe(FeedStatus, self.on_feed_status)
            self._events_subscribed = True
        for proc in self.processes.values():
            self._spawn(proc)
        self._watchdog = spawn("strategy-watchdog", self._watch())

    def stop_all(self) -> None:
        """Ask every process to stop (``on_stop``, a last ``on_save``), handle what it
        sends meanwhile (orders from ``on_stop`` too), and wait up to ``STOP_TIMEOUT_S``;
        a process still there then is killed."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        live = [proc for proc in self.processes.values() if proc.state in ("starting", "running")]
        for proc in live:
            self._send_input(proc, p.frame(p.Stop()))
            proc.state = "stopping"
        deadline = self._clock.monotonic_s() + STOP_TIMEOUT_S
        while True:
            waiting = [proc for proc in live if proc.sock is not None]
            if not waiting or self._clock.monotonic_s() >= deadline:
                break
            self._wait_readable(waiting, deadline - self._clock.monotonic_s())
        for proc in live:
            for sid in proc.strategy_ids:
                if sid in self.running:
                    self.running.discard(sid)
                    log.info("strategy_stopped", strategy=sid)
            self._close(proc, kill=proc.state != "stopped")
            if proc.popen is not None:
                try:
                    proc.popen.wait(timeout=max(0.1, deadline - self._clock.monotonic_s()))
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait()
            proc.state = "stopped"

    def stop_strategy(self, strategy_id: str) -> str | None:
        """Not one by one: a process may hold several strategies and a stopped one
        cannot yet be started again in it."""
        return (
            f"strategy {strategy_id} runs isolated in a process: stopping and starting one "
            "isolated strategy is not supported yet; disable it instead (its orders are "
            "denied; with risk.cancel_on_disable its open orders are canceled)"
        )

    def start_strategy(self, strategy_id: str) -> str | None:
        """Not one by one (see ``stop_strategy``)."""
        return self.stop_strategy(strategy_id)

    def save_states(self) -> dict[str, bytes]:
        """The states the strategies saved last: asked for before each snapshot
        (``refresh_states``) and at stop."""
        return dict(self.restored_states)

    async def refresh_states(self, timeout_s: float) -> None:
        """Ask every running process for its strategies' states and wait (up to
        ``timeout_s``, the loop running meanwhile) until each has answered, so that the
        snapshot about to be taken has them fresh."""
        asked: list[tuple[StrategyProcess, int]] = []
        for proc in self.processes.values():
            if proc.state == "running":
                self._send_input(proc, p.frame(p.Save()))
                asked.append((proc, proc.sent))
        deadline = self._clock.monotonic_s() + timeout_s
        while asked and self._clock.monotonic_s() < deadline:
            asked = [(proc, n) for proc, n in asked if proc.state == "running" and proc.acked < n]
            if asked:
                await asyncio.sleep(0.001)

    def status(self) -> dict[str, Any]:
        return {
            "isolation": "process",
            "processes": {g: proc.status() for g, proc in self.processes.items()},
            "loop_lag_ms": round(self.loop_lag_ms, 3),
            "loop_lag_max_ms": round(self.loop_lag_max_ms, 3),
        }

    # -- data and events to the processes -----------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        procs = self.bar_subscribers.get(bar.instrument_id)
        if procs:
            data = p.frame(
                p.BarMsg(
                    bar.instrument_id,
                    bar.ts_ns,
                    bar.open,
                    bar.high,
                    bar.low,
                    bar.close,
                    bar.volume,
                    bar.interval_ns,
                    bar.gap_before,
                    bar.backfilled,
                )
            )
            for proc in procs:
                self._send_input(proc, data)

    @property
    def hears_order_events(self) -> bool:
        """Always: each process's strategies get their orders' events (the host does not
        know which of them listen)."""
        return True

    def on_order_event(self, event: OrderEvent) -> None:
        proc = self._process_of.get(event.strategy_id)
        if proc is not None and proc.state in ("starting", "running", "stopping"):
            # held to the end of this callback: the events of a burst (the kill's
            # cancels, an order's fills) go in one write, not one each
            self._send_input(proc, p.frame(p.EventMsg(event)), hold=True)  # type: ignore[arg-type]

    def on_feed_status(self, status: FeedStatus) -> None:
        """To the processes subscribed to the instrument's quotes."""
        for proc in self.processes.values():
            if status.instrument_id in proc.subscribed:
                self._send_input(proc, p.frame(p.EventMsg(status)), hold=True)

    def fail(self, target: object, error: BaseException) -> None:
        """The kernel's hook for a handler that raised; a process's never does."""
        if isinstance(target, StrategyProcess):
            self._fail(target, f"{type(error).__name__}: {error}")

    # -- spawning -----------------------------------------------------------------------
    def _spawn(self, proc: StrategyProcess) -> None:
        assert self._loop is not None
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        env: set[str] = set()
        for config in proc.configs:
            env.update(config.env)
        try:
            popen = self.launch(child, out_w, scrubbed_env(sorted(env)))
        except OSError as error:
            for fd in (out_r, out_w):
                os.close(fd)
            parent.close()
            child.close()
            self._fail(proc, f"could not start: {error}")
            return
        finally:
            child.close()
        os.close(out_w)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, popen.pid, 10)  # the core wins the CPU
        parent.setblocking(False)
        os.set_blocking(out_r, False)
        proc.popen, proc.pid, proc.sock, proc.output_fd = popen, popen.pid, parent, out_r
        proc.buffer = p.FrameBuffer(p.MAX_WORKER_FRAME)
        proc.unsent = bytearray()
        proc.sent = proc.acked = 0
        proc.state = "starting"
        proc.started_at = proc.last_input = self._clock.monotonic_s()
        proc.subscribed = set()
        proc.failure = ""
        proc.send_quote = functools.partial(self._send_quote, proc)
        self._loop.add_reader(parent.fileno(), self._on_readable, proc)
        self._loop.add_reader(out_r, self._on_output, proc, out_r)
        first = self._grant(proc, fresh=True)
        sids = proc.strategy_ids
        read_dirs = set(python_dirs())
        for config in proc.configs:
            read_dirs.add(str(self.paths[config.name].parent))
            read_dirs.update(config.read_paths)
        start = p.Start(
            id_prefix=self._ids.prefix,
            ids=first,
            strategies=[
                p.StrategySpec(c.name, str(self.paths[c.name]), c.class_name, dict(c.params))
                for c in proc.configs
            ],
            instruments=self._instrument_configs,
            positions=[
                position_state(x) for x in self._portfolio.positions() if x.strategy_id in sids
            ],
            orders=[order_state(o) for o in self._execution.open_orders() if o.strategy_id in sids],
            states={s: d for s, d in self.restored_states.items() if s in sids},
            last_quotes=list(self._last_quotes.values()),
            log_level=self._log_level,
            log_format=self._log_format,
            currency=self._portfolio.currency,
            memory_mb=proc.limits.memory_mb,
            cpu_s=proc.limits.cpu_s,
            open_files=proc.limits.open_files,
            read_dirs=sorted(read_dirs),
        )
        self._send(proc, p.frame(start))
        self.running.update(sids)
        log.info(
            "strategy_process_started", group=proc.group, pid=popen.pid, strategies=sorted(sids)
        )

    def _grant(self, proc: StrategyProcess, *, fresh: bool = False) -> tuple[int, int]:
        first, last = self._ids.reserve(ID_BLOCK)
        if fresh:
            proc.ranges = []
            proc.next_seq = first
            proc.id_prefix = self._ids.prefix
        proc.ranges.append((first, last))
        proc.granted_until = last
        return first, last

    # -- sending ------------------------------------------------------------------------
    def _send_quote(self, proc: StrategyProcess, quote: QuoteTick) -> None:
        """A quote handler of the kernel's hot path: never raises into it."""
        try:
            self._send_input(proc, p.quote_frame(quote))
        except Exception as error:
            log.error("strategy_quote_send_failed", group=proc.group, error=repr(error))
            self._fail(proc, f"the core could not send it a quote: {error!r}")

    def _send_input(self, proc: StrategyProcess, data: bytes, *, hold: bool = False) -> None:
        """Send an input the process must handle (the watchdog counts it); with
        ``hold``, at the end of the current event-loop callback."""
        if proc.state not in ("starting", "running", "stopping"):
            return
        proc.sent += 1
        now = self._clock.monotonic_s()
        proc.last_input = now
        if proc.sent - proc.acked == 1:
            proc.busy_since = now
        elif proc.sent - proc.acked > proc.limits.max_backlog:
            self._fail(
                proc,
                f"unresponsive: {proc.sent - proc.acked} inputs unhandled "
                f"(max_backlog {proc.limits.max_backlog})",
            )
            return
        self._send(proc, data, hold=hold)

    def _send(self, proc: StrategyProcess, data: bytes | bytearray, *, hold: bool = False) -> None:
        sock = proc.sock
        if sock is None:
            return
        if self._holding or hold:
            if not proc.held:
                self._held.append(proc)
                if not self._holding and not self._held_write_due and self._loop is not None:
                    self._held_write_due = True
                    self._loop.call_soon(self._send_held)
            proc.held += data
            return
        if proc.held:  # what is held goes first
            data, proc.held = proc.held + data, bytearray()
        if proc.unsent:
            proc.unsent += data
            if len(proc.unsent) > MAX_UNSENT_BYTES:
                self._fail(proc, f"unresponsive: {len(proc.unsent)} bytes it does not read")
            return
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost(proc)
            return
        if sent < len(data):
            proc.unsent += data[sent:]
            if self._loop is not None:
                self._loop.add_writer(sock.fileno(), self._on_writable, proc)

    def _send_held(self) -> None:
        self._held_write_due = False
        held, self._held = self._held, []
        for proc in held:
            data, proc.held = proc.held, bytearray()
            if data:
                self._send(proc, data)

    def _on_writable(self, proc: StrategyProcess) -> None:
        sock = proc.sock
        if sock is None:
            return
        try:
            sent = sock.send(proc.unsent)
        except BlockingIOError:
            return
        except OSError:
            self._lost(proc)
            return
        del proc.unsent[:sent]
        if not proc.unsent and self._loop is not None:
            self._loop.remove_writer(sock.fileno())

    # -- receiving ----------------------------------------------------------------------
    def _on_readable(self, proc: StrategyProcess) -> None:
        sock = proc.sock
        if sock is None:
            return
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(proc)
            return
        proc.buffer.feed(data)
        if self._drain(proc) and self._loop is not None and proc.sock is not None:
            # more may wait: read no more until they are handled, a turn at a time
            self._loop.remove_reader(proc.sock.fileno())
            self._loop.call_soon(self._resume, proc)

    def _drain(self, proc: StrategyProcess) -> bool:
        """Handle the whole messages received, at most ``MAX_MESSAGES_PER_TURN``; True
        when it stopped there (more may wait).

        What the messages cause (order events, ids, for this process or another) is
        held and sent once they are handled: one write per process, not one per event,
        and none ahead of the orders on their way to the venue."""
        holding = self._holding
        self._holding = True
        handled = 0
        try:
            try:
                while proc.sock is not None and (payload := proc.buffer.next()) is not None:
                    self._handle(proc, p.WORKER_DECODER.decode(payload))
                    handled += 1
                    if handled >= MAX_MESSAGES_PER_TURN:
                        break
            except (
                p.ProtocolError,
                msgspec.DecodeError,
                msgspec.ValidationError,
                UnicodeDecodeError,
            ) as error:
                self._fail(proc, f"protocol violation: {error}")
            except _Violation as error:
                self._fail(proc, f"protocol violation: {error}")
            except Exception as error:  # a message the core cannot handle fails its sender
                log.exception("strategy_message_not_handled", group=proc.group)
                self._fail(proc, f"message not handled: {type(error).__name__}: {error}")
            if handled:
                self._flush()
        finally:
            if not holding:
                self._holding = False
                self._send_held()
        return handled >= MAX_MESSAGES_PER_TURN and proc.sock is not None

    def _resume(self, proc: StrategyProcess) -> None:
        """The next turn of a process that sent more than one turn's messages: handle
        another turn's, and read its channel again once none is left whole (what is left
        then is part of a message: the rest is still to be read)."""
        more = self._drain(proc)
        sock = proc.sock
        if sock is None or self._loop is None:
            return
        if more:
            self._loop.call_soon(self._resume, proc)
        else:
            self._loop.add_reader(sock.fileno(), self._on_readable, proc)

    def _wait_readable(self, procs: list[StrategyProcess], timeout: float) -> None:
        """At stop: block up to ``timeout`` for the processes' messages and handle them."""
        socks = {proc.sock.fileno(): proc for proc in procs if proc.sock is not None}
        ready, _, _ = select.select(list(socks), [], [], max(0.0, timeout))
        for fd in ready:
            proc = socks[fd]
            if proc.unsent:
                self._on_writable(proc)
            self._on_readable(proc)
            while proc.sock is not None and len(proc.buffer) >= 4:
                before = len(proc.buffer)
                self._drain(proc)
                if len(proc.buffer) == before:
                    break

    def _handle(self, proc: StrategyProcess, message: p.WorkerMessage) -> None:
        kind = type(message)
        if kind is p.Done:
            handled = message.handled  # type: ignore[union-attr]
            if not proc.acked <= handled <= proc.sent:
                raise _Violation(f"handled {handled} inputs, of {proc.sent} sent")
            proc.acked = handled
            proc.busy_since = self._clock.monotonic_s()
        elif kind is p.Submit:
            self._submit(proc, message)  # type: ignore[arg-type]
        elif kind is p.Cancel:
            c: p.Cancel = message  # type: ignore[assignment]
            order = self._own_order(proc, c.strategy_id, c.client_order_id)
            if not self._risk.cancel_order(order) and order.is_open:
                self._refused(proc, OrderCancelRejected, order)
        elif kind is p.Modify:
            m: p.Modify = message  # type: ignore[assignment]
            order = self._own_order(proc, m.strategy_id, m.client_order_id)
            if not self._risk.modify_order(order, m.quantity, m.price) and order.is_open:
                self._refused(proc, OrderModifyRejected, order)
        elif kind is p.Subscribe:
            s: p.Subscribe = message  # type: ignore[assignment]
            self._check_strategy(proc, s.strategy_id)
            if s.instrument_id not in self._instrument_ids:
                raise _Violation(f"subscribe to unknown instrument {s.instrument_id!r}")
            self._subscribe(proc, s.instrument_id, bars=s.bars)
        elif kind is p.State:
            st: p.State = message  # type: ignore[assignment]
            self._check_strategy(proc, st.strategy_id)
            self.restored_states[st.strategy_id] = st.data
        elif kind is p.Ready:
            self._ready(proc, message.confinement)  # type: ignore[union-attr]
        elif kind is p.Failed:
            f: p.Failed = message  # type: ignore[assignment]
            self._check_strategy(proc, f.strategy_id)
            self._fail(proc, f"strategy {f.strategy_id} raised: {f.error[:2000]}")
        elif kind is p.Bye:
            if proc.state != "stopping":
                raise _Violation("said goodbye unasked (the node did not ask it to stop)")
            proc.state = "stopped"

    def _refused(
        self,
        proc: StrategyProcess,
        kind: type[OrderCancelRejected | OrderModifyRejected],
        order: Order,
    ) -> None:
        """Tell the process the gate refused its cancel or modify (journaled in the core
        as ``CommandDenied``; the core's order is unchanged), so that its copy, which
        went pending when it asked, returns to where the core's is."""
        event = kind(
            ts_ns=self._clock.timestamp_ns(),
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            reason="refused by the risk gate",
        )
        self._send_input(proc, p.frame(p.EventMsg(event)))

    def _check_strategy(self, proc: StrategyProcess, strategy_id: str) -> None:
        if strategy_id not in proc.strategy_ids:
            raise _Violation(f"strategy {strategy_id!r} is not one of this process's")

    def _own_order(self, proc: StrategyProcess, strategy_id: str, client_order_id: str) -> Order:
        self._check_strategy(proc, strategy_id)
        order = self._execution.order(client_order_id)
        if order is None or order.strategy_id != strategy_id:
            raise _Violation(f"order {client_order_id!r} is not one of {strategy_id}'s")
        return order

    def _submit(self, proc: StrategyProcess, m: p.Submit) -> None:
        self._check_strategy(proc, m.strategy_id)
        coid = m.client_order_id
        digits = coid[len(proc.id_prefix) :]
        # one spelling per number: ASCII digits, no leading zero (int() takes '٣' and '03')
        if (
            not coid.startswith(proc.id_prefix)
            or not (digits.isascii() and digits.isdigit())
            or str(int(digits)) != digits
        ):
            raise _Violation(f"client order id {coid!r} was not granted to it")
        seq = int(digits)
        if seq < proc.next_seq or not any(a <= seq <= b for a, b in proc.ranges):
            raise _Violation(f"client order id {coid!r} was not granted to it, or is used")
        proc.next_seq = seq + 1
        while proc.ranges and proc.ranges[0][1] < proc.next_seq:
            proc.ranges.pop(0)
        if proc.granted_until - seq < ID_BLOCK // 2:
            first, last = self._grant(proc)
            self._send_input(proc, p.frame(p.Ids(first, last)))
        try:
            order = self._execution.create_order(
                strategy_id=m.strategy_id,
                instrument_id=m.instrument_id,
                venue=m.venue,
                side=m.side,
                order_type=m.order_type,
                quantity=m.quantity,
                price=m.price,
                time_in_force=m.time_in_force,
                reduce_only=m.reduce_only,
                client_order_id=coid,
            )
        except ValueError as error:
            raise _Violation(f"order {coid}: {error}") from error
        self._risk.submit_order(order)

    def _subscribe(self, proc: StrategyProcess, instrument_id: str, *, bars: bool) -> None:
        if bars:
            procs = self.bar_subscribers.setdefault(instrument_id, [])
            if proc not in procs:
                procs.append(proc)
            return
        if instrument_id in proc.subscribed:
            return
        proc.subscribed.add(instrument_id)
        handlers = self.quote_subscribers.get(instrument_id, ())
        self.quote_subscribers[instrument_id] = (*handlers, proc.send_quote)

    def _unsubscribe(self, proc: StrategyProcess) -> None:
        for iid, handlers in list(self.quote_subscribers.items()):
            self.quote_subscribers[iid] = tuple(h for h in handlers if h is not proc.send_quote)
        for procs in self.bar_subscribers.values():
            if proc in procs:
                procs.remove(proc)
        proc.subscribed = set()

    def _ready(self, proc: StrategyProcess, confinement: Confinement) -> None:
        proc.confinement = confinement
        if proc.state == "starting":
            proc.state = "running"
        gaps = confinement.gaps()
        fields = {"group": proc.group, "pid": proc.pid, "strategies": sorted(proc.strategy_ids)}
        if gaps:
            log.warning("strategy_sandbox_incomplete", gaps=gaps, **fields)
        log.info("strategy_started", landlock_abi=confinement.landlock_abi, **fields)

    def _on_output(self, proc: StrategyProcess, fd: int) -> None:
        """Relay the process's stdout/stderr lines (pipe ``fd``) to the node's stderr
        (and its log file), bounded."""
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)
            if proc.output_fd == fd:  # not already a restarted process's
                proc.output_fd = -1
            return
        lines = (proc.output_tail + data).split(b"\n")
        proc.output_tail = lines.pop()[-OUTPUT_LINE_MAX:]
        now = self._clock.monotonic_s()
        window_start, count = proc.output_window
        if now - window_start >= 1.0:
            window_start, count = now, 0
        out = []
        for raw in lines:
            if count >= OUTPUT_LINES_PER_S:
                proc.output_dropped += 1
                continue
            count += 1
            text = raw[:OUTPUT_LINE_MAX].decode("utf-8", "replace")
            out.append("".join(c if c.isprintable() or c == "\t" else "?" for c in text))
        proc.output_window = (window_start, count)
        if out:
            relay_lines("\n".join(out) + "\n")

    # -- failure ------------------------------------------------------------------------
    def _lost(self, proc: StrategyProcess) -> None:
        """The channel closed: the process is exiting (or closed it on purpose). Its
        cause is read from its exit status, polled without blocking the loop."""
        if proc.state in ("failed", "stopped", "new"):
            self._close(proc, kill=False)
            return
        if proc.state == "stopping":
            self._close(proc, kill=False)
            proc.state = "stopped"
            return
        self._close(proc, kill=False)
        proc.state = "exiting"
        self._poll_exit(proc, self._clock.monotonic_s() + 0.25)

    def _poll_exit(self, proc: StrategyProcess, deadline: float) -> None:
        popen = proc.popen
        code = popen.poll() if popen is not None else None
        if code is None and self._clock.monotonic_s() < deadline and self._loop is not None:
            self._loop.call_later(0.005, self._poll_exit, proc, deadline)
            return
        self._fail(proc, _exit_cause(code))

    def _fail(self, proc: StrategyProcess, cause: str) -> None:
        if proc.state in ("failed", "stopped", "new"):
            return
        proc.state = "failed"
        proc.failure = cause
        self._close(proc, kill=True)
        self._unsubscribe(proc)
        halt = []
        for sid in sorted(proc.strategy_ids):
            if sid in self.running:
                self.running.discard(sid)
                self.failures.append(f"{sid}: {cause}")
                log.error(
                    "strategy_failed", strategy=sid, group=proc.group, pid=proc.pid, error=cause
                )
                self._bus.publish(
                    StrategyFailed(ts_ns=self._clock.timestamp_ns(), strategy_id=sid, error=cause)
                )
                if self._on_error.get(sid) == "halt":
                    halt.append(sid)
        orders = [o for o in self._execution.open_orders() if o.strategy_id in proc.strategy_ids]
        if orders:
            log.warning(
                "failed_strategy_orders_canceled",
                group=proc.group,
                client_order_ids=[o.client_order_id for o in orders],
            )
            self._risk.cancel_orders(orders)
        if halt:
            self._risk.set_trading_state(
                TradingState.HALTED, f"strategy {', '.join(halt)} failed: {cause}"
            )
        self._flush()
        if (
            proc.restart == "on_failure"
            and proc.restarts < proc.max_restarts
            and self._loop is not None
        ):
            delay = proc.restart_backoff_s * (2**proc.restarts)
            proc.restarts += 1
            log.warning(
                "strategy_restart_scheduled", group=proc.group, in_s=delay, restart=proc.restarts
            )
            self._loop.call_later(delay, self._restart, proc)

    def _restart(self, proc: StrategyProcess) -> None:
        if proc.state != "failed" or self._watchdog is None:
            return  # stopping meanwhile
        self._spawn(proc)

    def _close(self, proc: StrategyProcess, *, kill: bool) -> None:
        sock = proc.sock
        if sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
                self._loop.remove_writer(sock.fileno())
            sock.close()
            proc.sock = None
        proc.unsent = bytearray()
        proc.held = bytearray()
        popen = proc.popen
        if kill and popen is not None and popen.poll() is None:
            try:
                os.killpg(popen.pid, signal.SIGKILL)  # its children too
            except OSError:
                popen.kill()
        if popen is not None and self._loop is not None:
            self._loop.call_later(0.05, _reap, popen)

    # -- watchdog -----------------------------------------------------------------------
    async def _watch(self) -> None:
        """Every few ms: a process with inputs unhandled for ``max_handler_ms`` is
        unresponsive; an idle one is pinged, so one that stopped reading is found
        without data flowing. Also measures this loop's own lag, which is not counted
        against the processes: a stall of the core is not a strategy's."""
        limits = [proc.limits.max_handler_ms for proc in self.processes.values()]
        # a short tick whatever the limits: the lag reported is only as fine as the tick
        tick = min(WATCH_TICK_MAX_S, max(0.005, min(limits, default=1000) / 4000))
        ping = p.frame(p.Ping())
        last = self._clock.monotonic_s()
        while True:
            await asyncio.sleep(tick)
            now = self._clock.monotonic_s()
            lag_s = max(0.0, now - last - tick)
            last = now
            self.loop_lag_ms = lag_s * 1000
            self.loop_lag_max_ms = max(self.loop_lag_max_ms, self.loop_lag_ms)
            for proc in self.processes.values():
                limit_s = proc.limits.max_handler_ms / 1000
                if lag_s > limit_s / 4:
                    # the core stalled (a pause, a long callback): the process's answers
                    # may have waited unread meanwhile, so that time is not its own
                    proc.busy_since = min(now, proc.busy_since + lag_s)
                if proc.state == "starting" and now - proc.started_at > START_TIMEOUT_S:
                    self._fail(proc, f"did not start within {START_TIMEOUT_S:.0f} s")
                elif proc.state != "running":
                    continue
                elif proc.pending and now - proc.busy_since > limit_s:
                    self._on_readable(proc)  # read what it answered before judging it
                    if proc.state == "running" and proc.pending and now - proc.busy_since > limit_s:
                        self._fail(
                            proc,
                            f"unresponsive: {proc.pending} inputs unhandled for "
                            f"{(now - proc.busy_since) * 1000:.0f} ms "
                            f"(max_handler_ms {proc.limits.max_handler_ms})",
                        )
                elif not proc.pending and now - proc.last_input > limit_s / 2:
                    self._send_input(proc, ping)


class _Violation(Exception):
    """A message a well-behaved strategy process never sends."""


def _reap(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        asyncio.get_event_loop().call_later(0.2, _reap, popen)


def _exit_cause(code: int | None) -> str:
    if code is None:
        return "closed its channel and did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {
            "SIGSEGV": " (a crash in native code)",
            "SIGKILL": " (killed: out of memory, or by someone)",
            "SIGXCPU": " (its CPU time limit)",
            "SIGABRT": " (aborted)",
        }.get(name, "")
        return f"process died of {name}{hint}"
    return f"process exited with code {code}"


__all__ = ("Launch", "ProcessStrategyHost", "StrategyProcess", "launch_worker")
