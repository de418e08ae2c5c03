"""Two FIX sessions wired back to back in memory, on one fake clock.

``Pair`` owns an initiator and an acceptor ``FixSession`` (each with its own
``SqliteSessionStore`` file) and two ``Pipe`` s. Bytes a session writes wait in
its pipe until the test calls ``pump`` (or ``deliver`` on one pipe), so a test
decides exactly what reaches the other side and when: it can drop, truncate or
corrupt data in flight. ``FakeClock`` drives both the wall clock (``now_ns``,
SendingTime) and the monotonic clock (heartbeats, timeouts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bastion.clock import Cancelable, Clock, TimerCallback
from bastion.fix.codec import FixMessage, FixParser, Garbled, encode
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.fix.timestamps import format_utc_timestamp

T0 = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
INI, ACC = "CLIENT", "VENUE"
PASSWORD = "s3cr3t-pw-9f1c"
TRANSACT_TIME = "20240102-14:30:00.000"


def new_order(cl_ord_id: str, *more: tuple[int, object]) -> FixMessage:
    """A NewOrderSingle the FIX 4.4 dictionary accepts: buy 10 XYZ at the market."""
    return FixMessage.of(
        "D",
        (11, cl_ord_id),
        (55, "XYZ"),
        (54, "1"),
        (60, TRANSACT_TIME),
        (38, "10"),
        (40, "1"),
        *more,
    )


def order_body(cl_ord_id: str) -> list[tuple[int, str]]:
    """The body of ``new_order(cl_ord_id)``, for ``frame("D", *order_body(...), seq=...)``."""
    return new_order(cl_ord_id).fields[1:]


def execution_report(exec_id: str, *more: tuple[int, object]) -> FixMessage:
    """An ExecutionReport (New) the FIX 4.4 dictionary accepts."""
    return FixMessage.of(
        "8",
        (37, "OID-" + exec_id),
        (17, exec_id),
        (150, "0"),
        (39, "0"),
        (55, "XYZ"),
        (54, "1"),
        (151, "10"),
        (14, "0"),
        (6, "0"),
        *more,
    )


class FakeClock(Clock):
    """Wall and monotonic time that move only when the test says so (no timers)."""

    def __init__(self, start_ns: int = T0) -> None:
        self.ns = start_ns
        self.mono = 1_000.0

    def now_ns(self) -> int:
        return self.ns

    def timestamp_ns(self) -> int:
        return self.ns

    def monotonic_s(self) -> float:
        return self.mono

    def call_at(self, ts_ns: int, callback: TimerCallback) -> Cancelable:
        raise NotImplementedError("FIX sessions set no timers")

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * 1e9)
        self.mono += seconds


class RecordingApp:
    """An ``Application`` that records what the session hands it.

    ``password`` (acceptor side) is what ``authenticate`` accepts; ``handler``
    lets a test raise from ``on_message``.
    """

    def __init__(self, password: str | None = None) -> None:
        self.password = password
        self.messages: list[FixMessage] = []
        self.logons = 0
        self.logouts: list[str] = []
        self.handler: Callable[[FixMessage], None] | None = None

    def on_logon(self, session: FixSession) -> None:
        self.logons += 1

    def on_logout(self, session: FixSession, reason: str) -> None:
        self.logouts.append(reason)

    def on_message(self, session: FixSession, message: FixMessage) -> None:
        if self.handler is not None:
            self.handler(message)
        self.messages.append(message)

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        if self.password is None:
            return None
        if logon.get(553) != "trader" or logon.get(554) != self.password:
            return "invalid username or password"
        return None

    def texts(self, tag: int = 58) -> list[str]:
        return [m.get(tag) or "" for m in self.messages]


class Pipe:
    """One direction of a connection: written bytes wait here until delivered."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.wire: list[bytes] = []  # everything ever written, for inspection
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.pending.append(data)
        self.wire.append(data)

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        return data

    def messages(self) -> list[FixMessage]:
        """Every message ever written to this pipe, parsed."""
        return parse_all(b"".join(self.wire))


def parse_all(data: bytes) -> list[FixMessage]:
    parser = FixParser()
    parser.feed(data)
    out = []
    for item in parser.messages():
        assert not isinstance(item, Garbled), item
        out.append(item)
    return out


def settings(sender: str, target: str, **overrides: object) -> SessionSettings:
    fields: dict[str, object] = {"sender_comp_id": sender, "target_comp_id": target}
    fields.update(overrides)
    return SessionSettings(**fields)  # type: ignore[arg-type]


class Pair:
    """An initiator and an acceptor session, connected on demand through two pipes."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        clock: FakeClock | None = None,
        ini_settings: SessionSettings | None = None,
        acc_settings: SessionSettings | None = None,
        acc_password: str | None = PASSWORD,
    ) -> None:
        self.tmp_path = tmp_path
        self.clock = clock or FakeClock()
        self.ini_settings = ini_settings or settings(
            INI, ACC, heartbeat_s=30, username="trader", password=PASSWORD
        )
        self.acc_settings = acc_settings or settings(ACC, INI, heartbeat_s=30)
        self.ini_app = RecordingApp()
        self.acc_app = RecordingApp(password=acc_password)
        self.stores: list[SqliteSessionStore] = []
        self.ini = self.new_session("ini")
        self.acc = self.new_session("acc")
        self.to_acc = Pipe()
        self.to_ini = Pipe()
        self.connections = 0
        self.history: list[tuple[Pipe, Pipe]] = []  # (to_acc, to_ini) of every connection

    def new_session(self, side: str) -> FixSession:
        """A fresh FixSession object (as after a process restart) on the side's store file."""
        cfg = self.ini_settings if side == "ini" else self.acc_settings
        app = self.ini_app if side == "ini" else self.acc_app
        store = SqliteSessionStore(
            self.tmp_path / f"{side}.sqlite", cfg.key, now_ns=self.clock.now_ns()
        )
        self.stores.append(store)
        session = FixSession(cfg, store, app, clock=self.clock)
        if side == "ini":
            self.ini = session
        else:
            self.acc = session
        return session

    def connect(self) -> None:
        """A new TCP connection: the acceptor is ready, the initiator sends its Logon."""
        self.connections += 1
        self.to_acc, self.to_ini = Pipe(), Pipe()
        self.history.append((self.to_acc, self.to_ini))
        self.acc.connection_made(self.to_ini.write, self.to_ini.close, initiator=False)
        self.ini.connection_made(self.to_acc.write, self.to_acc.close, initiator=True)

    def pump(self, max_rounds: int = 100) -> None:
        """Deliver bytes both ways until neither side has anything more to say.

        A side that closed its end has its bytes delivered first (TCP flushes on
        close), then the other side learns that the connection is gone.
        """
        for _ in range(max_rounds):
            moved = False
            for pipe, receiver in ((self.to_acc, self.acc), (self.to_ini, self.ini)):
                if pipe.pending:
                    data = pipe.take()
                    if receiver.connected:
                        receiver.data_received(data)
                    moved = True
            for pipe, receiver in ((self.to_acc, self.acc), (self.to_ini, self.ini)):
                # the writer of `pipe` closed: the receiver sees end of stream
                if pipe.closed and not pipe.pending and receiver.connected:
                    receiver.connection_lost("connection closed by counterparty")
                    moved = True
            if not moved:
                return
        raise AssertionError("sessions kept talking for too long")

    def drop(self, reason: str = "network failure") -> None:
        """The connection fails: bytes in flight are lost, both sides see it close."""
        self.to_acc.pending.clear()
        self.to_ini.pending.clear()
        self.ini.connection_lost(reason)
        self.acc.connection_lost(reason)

    def logon(self) -> None:
        self.connect()
        self.pump()
        assert self.ini.logged_on, self.ini.disconnect_reason
        assert self.acc.logged_on, self.acc.disconnect_reason

    def tick(self, seconds: float) -> None:
        """Let ``seconds`` pass on the clock, then tick both sessions."""
        self.clock.advance(seconds)
        self.ini.tick()
        self.acc.tick()

    def close(self) -> None:
        for session in (self.ini, self.acc):
            session.disconnect("test over")
        for store in self.stores:
            store.close()


def frame(
    msg_type: str,
    *body: tuple[int, object],
    seq: int,
    sender: str = INI,
    target: str = ACC,
    sending_ns: int = T0,
    orig_sending_ns: int | None = None,
) -> bytes:
    """Wire bytes of a hand-made message (PossDupFlag=Y when ``orig_sending_ns`` is given)."""
    fields: list[tuple[int, str]] = [
        (35, msg_type),
        (49, sender),
        (56, target),
        (34, str(seq)),
    ]
    if orig_sending_ns is not None:
        fields.append((43, "Y"))
    fields.append((52, format_utc_timestamp(sending_ns)))
    if orig_sending_ns is not None:
        fields.append((122, format_utc_timestamp(orig_sending_ns)))
    fields += [(tag, str(value)) for tag, value in body]
    return encode("FIX.4.4", fields)
