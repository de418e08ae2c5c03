"""A hostile strategy: it tries every way out of its process that the issue's reviewer
tried, and a few more, and logs one ``attack`` line per attempt (``name``, ``blocked``,
``detail``). The node relays its process's lines to the node's stderr, where
``test_isolation_attacks`` reads them.

In ``on_start``: the objects behind its context's bound methods, ``gc`` for the core's
objects and sockets, a way to set the trading state, its environment, the core's
``/proc`` entries (environ, mem, fds), ptrace, its own file descriptors, the journal
(read and write), a TCP connect and listen, a UDP datagram out, the control socket
(kill, resume, and kill from a child that has exited before the node looks at it),
signals to the core, a process of its own left behind. On its first quote: a 5,000-lot
market order through the normal API. Once that order is answered: ``attacks_done``,
then a forged frame straight on its channel (a 5,000-lot order in another strategy's
name), which must fail its process and nothing else.

Params: ``instrument``, ``journal``, ``control_socket``, ``tcp_port``, ``udp_port``,
``victim`` (the other strategy's id). Run by the node under test; never imported.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from typing import Any

from bastion.isolation import protocol as p
from bastion.isolation.sandbox import ENV_ALWAYS
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.model.events import OrderDenied, OrderEvent, OrderInitialized
from bastion.model.orders import Order
from bastion.strategy import QuoteTick, Strategy

CORE_CLASSES = frozenset(
    {
        "RiskGate",
        "ExecutionEngine",
        "Kernel",
        "SqliteJournal",
        "MessageBus",
        "ProcessStrategyHost",
        "NodeOperator",
        "VenueAdapter",
    }
)
"""Classes of the core's objects; an instance of one (or a subclass) here is a breach."""
BIG_ORDER_LOTS = 5_000
PTRACE_ATTACH = 16


class Breach(Exception):
    """An attempt that got through."""


def core_objects(objects: list[Any]) -> list[str]:
    found = set()
    for obj in objects:
        try:
            names = {c.__name__ for c in type(obj).__mro__}
        except Exception:
            continue
        hit = names & CORE_CLASSES
        if hit:
            found.add(type(obj).__name__)
    return sorted(found)


def reachable_from(roots: list[Any], limit: int = 500_000) -> list[Any]:
    """Every object reachable from ``roots`` by references (bounded)."""
    seen: dict[int, Any] = {}
    todo = list(roots)
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        todo.extend(gc.get_referents(obj))
    return list(seen.values())


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and their kinds (by ``fstat``, not /proc)."""
    kinds = {}
    for fd in range(4096):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISSOCK(mode):
            kinds[fd] = "socket"
        elif stat.S_ISFIFO(mode):
            kinds[fd] = "pipe"
        elif stat.S_ISCHR(mode):
            kinds[fd] = "char"
        elif stat.S_ISREG(mode):
            kinds[fd] = "file"
        else:
            kinds[fd] = "other"
    return kinds


def control_request(sock: socket.socket, request: dict[str, Any]) -> dict[str, Any]:
    sock.settimeout(5)
    sock.sendall(json.dumps(request).encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    answer: dict[str, Any] = json.loads(data) if data.strip() else {"ok": False, "error": "EOF"}
    if answer.get("ok") is True:
        raise Breach(f"the node obeyed: {answer}")
    return answer


class Hostile(Strategy):
    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.ppid = os.getppid()
        self.channel_fd = int(sys.argv[1])
        self.big: Order | None = None
        self.done = False
        # first, before any attempt opens something of its own
        self.attempt("own_fds", self.own_fds)
        self.attempt("bound_method_self", self.bound_method_self)
        self.attempt("gc_core_objects", self.gc_core_objects)
        self.attempt("gc_sockets", self.gc_sockets)
        self.attempt("set_trading_state", self.trading_state)
        self.attempt("environ", self.environ)
        self.attempt("proc_core_environ", lambda: self.read(f"/proc/{self.ppid}/environ"))
        self.attempt("proc_core_mem", self.proc_core_mem)
        self.attempt("proc_core_fd_list", lambda: os.listdir(f"/proc/{self.ppid}/fd"))
        self.attempt("proc_core_fd_open", self.proc_core_fd_open)
        self.attempt("ptrace_core", self.ptrace_core)
        self.attempt("journal_read", lambda: self.read(self.params["journal"]))
        self.attempt("journal_write", self.journal_write)
        self.attempt("tcp_connect", self.tcp_connect)
        self.attempt("tcp_listen", self.tcp_listen)
        self.attempt("udp_send", self.udp_send)
        self.attempt("control_kill", lambda: self.control({"cmd": "kill"}))
        self.attempt("control_resume", lambda: self.control({"cmd": "resume"}))
        self.attempt("control_kill_exited_child", self.control_kill_exited_child)
        self.attempt("signal_core_sigterm", lambda: self.signal_core(signal.SIGTERM))
        self.attempt("signal_core_sigstop", lambda: self.signal_core(signal.SIGSTOP))
        self.attempt("process_left_behind", self.leave_a_process)
        self.subscribe_quotes(self.iid)

    # -- reporting ----------------------------------------------------------------------
    def attempt(self, name: str, attack: Callable[[], object]) -> None:
        """Run one attack; it is blocked if it raises anything but ``Breach``."""
        try:
            result = attack()
        except Breach as breach:
            self.log.error("attack", name=name, blocked=False, detail=str(breach)[:400])
        except Exception as error:  # any refusal counts as blocked
            self.log.info("attack", name=name, blocked=True, detail=repr(error)[:400])
        else:
            self.log.error("attack", name=name, blocked=False, detail=repr(result)[:400])

    @staticmethod
    def read(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read(256)

    # -- the attacks (each returns only if it got through) -------------------------------
    def own_fds(self) -> None:
        fds = open_fds()
        allowed = {0, 1, 2, self.channel_fd}
        self.log.info("own_fds", fds={str(k): v for k, v in fds.items()}, channel=self.channel_fd)
        extra = {fd: kind for fd, kind in fds.items() if fd not in allowed}
        if extra or fds.get(self.channel_fd) != "socket":
            raise Breach(f"file descriptors besides 0, 1, 2 and the channel: {extra}")
        raise PermissionError(f"only {sorted(fds)} are open")

    def bound_method_self(self) -> None:
        ctx = self.ctx
        roots = [
            ctx.risk.submit_order.__self__,  # type: ignore[attr-defined]
            ctx.risk.cancel_order.__self__,  # type: ignore[attr-defined]
            ctx.execution.create_order.__self__,  # type: ignore[attr-defined]
            ctx.portfolio,
            ctx,
        ]
        found = core_objects(reachable_from(roots))
        if found:
            raise Breach(f"reached {found} from the context's methods")
        raise LookupError(f"nothing of the core behind {[type(r).__name__ for r in roots]}")

    def gc_core_objects(self) -> None:
        found = core_objects(gc.get_objects())
        if found:
            raise Breach(f"gc holds {found}")
        raise LookupError("gc holds no object of the core")

    def gc_sockets(self) -> None:
        socks = [o for o in gc.get_objects() if isinstance(o, socket.socket)]
        others = [s for s in socks if s.fileno() not in (-1, self.channel_fd)]
        if others:
            raise Breach(f"sockets besides the channel: {others}")
        raise LookupError(f"{len(socks)} socket object(s), all the channel")

    def trading_state(self) -> None:
        holders = [
            type(o).__name__ for o in gc.get_objects() if hasattr(type(o), "set_trading_state")
        ]
        if holders:
            raise Breach(f"set_trading_state on {holders}")
        self.ctx.risk.set_trading_state("HALTED", "hostile")  # type: ignore[attr-defined]

    def environ(self) -> None:
        seen = dict(os.environ)
        self.log.info("environ_seen", environ=seen)
        extra = set(seen) - set(ENV_ALWAYS)
        if extra:
            raise Breach(f"environment variables beyond {ENV_ALWAYS}: {sorted(extra)}")
        raise LookupError(f"only {sorted(seen)}")

    def proc_core_mem(self) -> bytes:
        with open(f"/proc/{self.ppid}/maps", "rb") as maps:
            start = int(maps.readline().split(b"-")[0], 16)
        with open(f"/proc/{self.ppid}/mem", "rb") as mem:
            mem.seek(start)
            return mem.read(64)

    def proc_core_fd_open(self) -> None:
        errors = []
        for fd in range(3, 32):
            try:
                with open(f"/proc/{self.ppid}/fd/{fd}", "rb") as f:
                    raise Breach(f"opened the core's fd {fd}: {f.read(64)!r}")
            except OSError as error:
                errors.append(error.errno or 0)
        raise PermissionError(f"errnos {sorted(set(errors))}")

    def ptrace_core(self) -> int:
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.ptrace(ctypes.c_long(PTRACE_ATTACH), ctypes.c_int(self.ppid), None, None)
        if result == -1:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        return int(result)

    def journal_write(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            try:
                with open(self.params["journal"] + suffix, "r+b") as f:
                    raise Breach(f"opened the journal{suffix} for writing: {f!r}")
            except FileNotFoundError:
                continue
            except OSError:
                continue
        with open(self.params["journal"] + "-forged", "wb") as f:
            raise Breach(f"created a file next to the journal: {f!r}")

    def tcp_connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", int(self.params["tcp_port"])), timeout=2)
        sock.close()

    def tcp_listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        sock.close()

    def udp_send(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.sendto(b"out", ("127.0.0.1", int(self.params["udp_port"])))
        finally:
            sock.close()

    def control(self, request: dict[str, Any]) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.params["control_socket"])
            answer = control_request(sock, request)
        finally:
            sock.close()
        raise PermissionError(f"refused: {answer}")

    def control_kill_exited_child(self) -> None:
        """A child connects, hands the connection over and exits (reaped): by the time the
        node asks who is on the other end, that process is gone."""
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the child
            try:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.connect(self.params["control_socket"])
                socket.send_fds(child_end, [b"x"], [conn.fileno()])
            finally:
                os._exit(0)
        child_end.close()
        _, fds, _, _ = socket.recv_fds(parent_end, 1, 1)
        parent_end.close()
        os.waitpid(pid, 0)
        if not fds:
            raise OSError("the child could not connect")
        sock = socket.socket(fileno=fds[0])
        try:
            answer = control_request(sock, {"cmd": "kill"})
        finally:
            sock.close()
        raise PermissionError(f"refused: {answer}")

    def leave_a_process(self) -> None:
        """A daemon of its own (a new session, a double fork), which would outlive its
        process and the node, and could command the next node on its control socket."""
        pid = os.fork()
        if pid == 0:  # the child
            os.setsid()
            if os.fork() == 0:
                time.sleep(3)  # long enough to be a threat, short enough not to leak
            os._exit(0)
        os.waitpid(pid, 0)
        raise Breach("started a process of its own, in a session of its own")

    def signal_core(self, sig: signal.Signals) -> None:
        os.kill(self.ppid, sig)
        if sig is signal.SIGSTOP:
            os.kill(self.ppid, signal.SIGCONT)
        raise Breach(f"{sig.name} delivered to the core")

    # -- through the normal API ---------------------------------------------------------
    def on_quote(self, quote: QuoteTick) -> None:
        if self.big is None:
            lot = self.instrument(self.iid).lot_raw
            self.big = self.submit(OrderSide.BUY, self.iid, BIG_ORDER_LOTS * lot)
            self.log.info("big_order_sent", client_order_id=self.big.client_order_id)

    def on_order_event(self, event: OrderEvent) -> None:
        if self.big is None or event.client_order_id != self.big.client_order_id or self.done:
            return
        if type(event) is OrderInitialized:
            return  # the gate's answer comes next
        self.done = True
        blocked = type(event) is OrderDenied
        (self.log.info if blocked else self.log.error)(
            "attack", name="oversized_order", blocked=blocked, detail=repr(event)[:400]
        )
        self.log.info("attacks_done")
        self.forge_on_channel()

    def forge_on_channel(self) -> None:
        """A 5,000-lot order in the victim's name, written straight on the channel."""
        lot = self.instrument(self.iid).lot_raw
        coid = self.ctx.execution._next_id()  # type: ignore[attr-defined]
        forged = p.Submit(
            self.params["victim"],
            coid,
            self.iid,
            self.ctx.venue_of(self.iid),
            OrderSide.BUY,
            OrderType.MARKET,
            BIG_ORDER_LOTS * lot,
            None,
            TimeInForce.GTC,
            False,
        )
        self.log.info("forged_frame_sent", client_order_id=coid)
        os.write(self.channel_fd, p.frame(forged))
