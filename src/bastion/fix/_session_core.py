"""What a FIX session stands on: its settings and lifecycle states, the ``Application``
it calls back into, and ``SessionCore``: one session's state, its connection lifecycle
(connection made and lost, a Logout either way, disconnect) and its output, through
which every message leaves numbered, stored and held by the output gate.

``FixSession`` (``bastion.fix.session``) is built on it, and these names are imported
from there.
"""

from __future__ import annotations

import contextlib
import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, Self, TypeVar

import structlog

from bastion.clock import Clock
from bastion.fix.codec import FixMessage, FixParser, encode, redact
from bastion.fix.gate import Closer, OutputGate, Writer
from bastion.fix.heartbeats import Liveness
from bastion.fix.rejects import Expected, business_reject_body, reject_body
from bastion.fix.schedule import SessionSchedule
from bastion.fix.store import SqliteSessionStore
from bastion.fix.timestamps import format_utc_timestamp
from bastion.fix.validation import ValidationConfig

log = structlog.get_logger("bastion.fix")

ADMIN_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})


class SessionState(enum.Enum):
    DISCONNECTED = "disconnected"
    AWAITING_LOGON = "awaiting_logon"
    ACTIVE = "active"
    LOGGING_OUT = "logging_out"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    """One session's identity and timing. ``password`` never appears in ``repr``."""

    sender_comp_id: str
    target_comp_id: str
    begin_string: str = "FIX.4.4"
    heartbeat_s: int = 30
    reset_on_logon: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    max_sending_time_skew_s: float = 120.0
    logon_timeout_s: float = 10.0
    logout_timeout_s: float = 2.0
    schedule: SessionSchedule | None = None
    logon_fields: tuple[tuple[int, str], ...] = ()
    """Extra tags on the initiator's Logon, after 553/554 (e.g. 8013=Y, cancel on disconnect)."""
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    """How inbound messages are checked against the FIX 4.4 data dictionary."""
    reset_on_logout: bool = False
    """Sequence numbers back to 1 once a Logout has been exchanged."""
    reset_on_disconnect: bool = False
    """Sequence numbers back to 1 whenever the connection drops."""

    @property
    def key(self) -> str:
        return f"{self.begin_string}:{self.sender_comp_id}->{self.target_comp_id}"


_Session = TypeVar("_Session", contravariant=True)


class Application(Protocol[_Session]):
    """What a session calls back into. Generic only so that the parts ``FixSession`` is
    built of can hand it ``self`` (the methods that do type ``self`` as ``Self``): an
    application is always handed the ``FixSession``."""

    def on_logon(self, session: _Session) -> None: ...

    def on_logout(self, session: _Session, reason: str) -> None: ...

    def on_message(self, session: _Session, message: FixMessage) -> None: ...

    def authenticate(self, session: _Session, logon: FixMessage) -> str | None:
        """Acceptor side: ``None`` accepts the Logon, a string refuses it with that text."""
        ...


class SessionCore:
    """One FIX session's state, connection lifecycle and output.

    The bottom layer of ``FixSession``: ``Sequencing`` (``bastion.fix._sequencing``) is
    built on it, ``Logons`` (``bastion.fix._logons``) on that, and ``FixSession`` on
    ``Logons``; each calls only into the layers below it, except for ``_process``,
    which ``Sequencing`` declares and ``FixSession`` provides."""

    def __init__(
        self,
        settings: SessionSettings,
        store: SqliteSessionStore,
        app: Application[Self],
        *,
        clock: Clock,
        gate: OutputGate | None = None,
        gap_fill_before_logon: bool = False,
        resent_below_floor: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.gate = gate or OutputGate()
        self.store = store
        self.app = app
        self._now_ns = clock.timestamp_ns  # SendingTime
        self._monotonic = clock.monotonic_s  # heartbeats, timeouts
        self.state = SessionState.DISCONNECTED
        self.initiator = True
        self.heartbeat_s = settings.heartbeat_s
        self.counters: Counter[str] = Counter()
        self.disconnect_reason = ""
        self._parser = FixParser(settings.begin_string)
        self._validator = settings.validation.validator()
        self._expected = Expected(
            their_comp_id=settings.target_comp_id,
            our_comp_id=settings.sender_comp_id,
            max_sending_time_skew_s=settings.max_sending_time_skew_s,
        )
        self._logged_out = False  # a Logout was exchanged on this connection
        self._write: Writer | None = None
        self._close: Closer | None = None
        self._queue: dict[int, FixMessage | None] = {}
        self._resend_pending_to: int | None = None
        self._resend_asked_at = 0.0
        self._resend_asked_from = 0
        self._resend_retries = 0
        self._connected_at = 0.0
        self._liveness = Liveness()
        self.rtt_probe_s: float | None = None
        """Send a TestRequest this often while logged on, to measure the round trip
        (``heartbeat_rtt_s``) even when the counterparty is never silent; None: only the
        TestRequests that silence triggers are measured."""
        self.heartbeat_rtt_s: float | None = None
        """The last round trip measured: a TestRequest sent to its Heartbeat received."""
        self.last_received_s: float | None = None
        """When bytes last arrived (the clock's monotonic seconds); None: never."""
        self._logout_deadline: float | None = None
        self._reset_requested = False
        self.unit_of_work: Callable[[], contextlib.AbstractContextManager[object]] | None = None
        """Entered around each batch of inbound messages (e.g. a ledger transaction)."""
        self.message_log = False
        """Log every message in and out (credentials redacted) at debug level."""
        self.resend_floor = 0
        """Stored application messages below this MsgSeqNum are answered with a GapFill
        instead of being resent (a restarted node never sends an old order late)."""
        self.gap_fill_before_logon = gap_fill_before_logon
        """Raise ``resend_floor`` to the next outbound MsgSeqNum at every logon: what was
        sent before it (lost in a dropped connection, or stored while down) is gap-filled,
        never resent, so an order cannot reach the counterparty late."""
        self.resent_below_floor = resent_below_floor
        """Application MsgTypes resent even below ``resend_floor`` (the node's cancels:
        one that arrives late does no harm, one that never arrives leaves an order working)."""

    # -- properties --------------------------------------------------------------------
    @property
    def logged_on(self) -> bool:
        return self.state is SessionState.ACTIVE

    @property
    def connected(self) -> bool:
        return self.state is not SessionState.DISCONNECTED

    # -- connection lifecycle (called by the transport driver) -------------------------
    def connection_made(self, write: Writer, close: Closer, *, initiator: bool) -> None:
        now = self._monotonic()
        self._parser = FixParser(self.settings.begin_string)
        self._write = write
        self._close = close
        self.initiator = initiator
        self.state = SessionState.AWAITING_LOGON
        self.disconnect_reason = ""
        self._connected_at = now
        self._liveness.restart(now)
        self._logout_deadline = None
        self._logged_out = False
        self._queue.clear()
        self._resend_pending_to = None
        self.heartbeat_s = self.settings.heartbeat_s
        self._new_period_reset()
        if initiator:
            self._reset_requested = self.settings.reset_on_logon
            if self._reset_requested:
                self.store.reset(self._now_ns())
            self._send_logon(reset=self._reset_requested)

    def connection_lost(self: Self, reason: str = "connection closed") -> None:
        if self.state is SessionState.DISCONNECTED:
            return
        was_logged_on = self.state in (SessionState.ACTIVE, SessionState.LOGGING_OUT)
        self.state = SessionState.DISCONNECTED
        self.disconnect_reason = self.disconnect_reason or reason
        write = self._write
        close, self._close, self._write = self._close, None, None
        if write is not None and self.gate.pending:  # a Logout or Reject of this batch first
            self.gate.flush(only=write)
        self._queue.clear()
        self._resend_pending_to = None
        settings = self.settings
        if settings.reset_on_disconnect or (settings.reset_on_logout and self._logged_out):
            self.store.reset(self._now_ns())
        if close is not None:
            close()
        log.info("fix_disconnected", session=self.settings.key, reason=self.disconnect_reason)
        if was_logged_on:
            self.counters["disconnects"] += 1
            self.app.on_logout(self, self.disconnect_reason)

    def disconnect(self, reason: str) -> None:
        """Drop the connection now."""
        if self.state is SessionState.DISCONNECTED:
            return
        self.disconnect_reason = reason
        self.connection_lost(reason)

    def logout(self, text: str = "") -> None:
        """Start an orderly logout; the connection closes when it is confirmed (or times out)."""
        if self.state is SessionState.ACTIVE:
            self._send_admin("5", [(58, text)] if text else [])
            self.state = SessionState.LOGGING_OUT
            self._logout_deadline = self._monotonic() + self.settings.logout_timeout_s
        elif self.state is not SessionState.DISCONNECTED:
            self.disconnect(text or "logout")

    def _on_logout(self, msg: FixMessage) -> None:
        text = msg.get(58) or ""
        self._logged_out = True
        if self.state is SessionState.LOGGING_OUT:
            self.disconnect("logout confirmed")
            return
        self._send_admin("5", [])
        self.disconnect(f"logout by counterparty: {text}" if text else "logout by counterparty")

    def _new_period_reset(self) -> None:
        """A scheduled session starts each period with sequence numbers at 1."""
        schedule = self.settings.schedule
        if schedule is None:
            return
        now = self._now_ns()
        start = schedule.period_start_ns(now)
        if start is not None and self.store.creation_ns < start:
            log.info("fix_new_session_period", session=self.settings.key)
            self.store.reset(now)

    # -- outbound ---------------------------------------------------------------------
    def send(self, message: FixMessage) -> int:
        """Send an application message; returns its MsgSeqNum.

        It is stored first: while the session is not logged on it is only stored,
        and reaches the counterparty through its ResendRequest after logon (unless
        that logon resets sequence numbers, which starts a new session without it, or
        the session gap-fills what was sent before each logon: ``gap_fill_before_logon``).
        """
        msg_type = message.msg_type
        body = [(t, v) for t, v in message.fields if t != 35]
        return self._send(msg_type, body, store=True, force=False)

    def _send_admin(
        self, msg_type: str, body: list[tuple[int, str]], *, force: bool = False
    ) -> int:
        return self._send(msg_type, body, store=False, force=force)

    def _send(self, msg_type: str, body: list[tuple[int, str]], *, store: bool, force: bool) -> int:
        seq = self.store.next_sender_seq
        fields = [
            (35, msg_type),
            (49, self.settings.sender_comp_id),
            (56, self.settings.target_comp_id),
            (34, str(seq)),
            (52, format_utc_timestamp(self._now_ns())),
            *body,
        ]
        raw = encode(self.settings.begin_string, fields)
        self.store.store_sent(seq, raw if store else None)
        admin = msg_type in ADMIN_TYPES
        if self.state is SessionState.ACTIVE or (admin and self._write is not None) or force:
            self._write_raw(raw)
        return seq

    def _write_raw(self, raw: bytes) -> None:
        write = self._write
        if write is None:
            return
        self._liveness.last_sent = self._monotonic()
        self.counters["sent"] += 1
        if self.message_log:
            log.debug("fix_out", session=self.settings.key, msg=redact(raw))
        if self.gate.depth:
            self.gate.pending.append((write, raw))  # written once the batch is committed
        else:
            write(raw)

    def _send_logon(self, *, reset: bool) -> None:
        body = [(98, "0"), (108, str(self.heartbeat_s))]
        if reset:
            body.append((141, "Y"))
        if self.initiator:
            if self.settings.username is not None:
                body.append((553, self.settings.username))
            if self.settings.password is not None:
                body.append((554, self.settings.password))
            body += self.settings.logon_fields
        self._send_admin("A", body)

    def _log_answer(
        self, event: str, msg: FixMessage, reason: int, text: str, **more: object
    ) -> None:
        self.counters[f"{event}s_sent"] += 1
        log.warning(
            f"fix_{event}_sent",
            session=self.settings.key,
            ref_seq=msg.get(34),
            msg_type=msg.get(35),
            reason=reason,
            text=text,
            **more,
        )

    def _reject(self, msg: FixMessage, reason: int, ref_tag: int | None, text: str) -> None:
        self._log_answer("reject", msg, reason, text, ref_tag=ref_tag)
        if self._write is not None:
            self._send_admin("3", reject_body(msg, reason, ref_tag, text), force=True)

    def _business_reject(self, msg: FixMessage, reason: int, text: str, ref_id: str | None) -> None:
        self._log_answer("business_reject", msg, reason, text)
        body = business_reject_body(msg, reason, text, ref_id)
        self._send("j", body, store=True, force=False)

    def _fatal(self, text: str, *, logout: bool = True) -> None:
        """A protocol violation that ends the session: Logout with the reason, then drop."""
        self.counters["fatal_errors"] += 1
        log.error("fix_session_error", session=self.settings.key, error=text)
        if logout and self._write is not None:
            self._send_admin("5", [(58, text)], force=True)
        self.disconnect(text)
