"""The FIX 4.4 session layer, for either side of a connection.

A ``FixSession`` owns one session's protocol state: logon and logout, heartbeats
and TestRequest, sequence numbers (persisted in a ``SqliteSessionStore``), gap
detection with ResendRequest, answering ResendRequest (application messages
resent with PossDupFlag=Y and OrigSendingTime, admin messages replaced by a
SequenceReset-GapFill), SequenceReset, session-level Reject (35=3) and
BusinessMessageReject (35=j). It does no I/O of its own: a driver
(``bastion.fix.transport``) hands it a ``write``/``close`` pair on connect, feeds
it bytes and calls ``tick`` periodically. That keeps every rule testable
without sockets and lets the same code be initiator and acceptor.

Inbound messages that are garbled (bad BeginString, BodyLength or CheckSum)
are ignored and counted, as the specification says; a gap they leave is
recovered through ResendRequest. Well-framed but invalid messages get a
Reject naming the reason and tag; the ones the specification makes fatal
(CompID problem, SendingTime accuracy, MsgSeqNum too low without PossDup)
end the session with a Logout.

Application messages reach ``Application.on_message`` exactly once per
sequence number and in order; the handler may raise ``RejectMessage`` or
``BusinessReject`` to answer with a Reject or a BusinessMessageReject.

Beside it: ``bastion.fix.rejects`` (the header and Logon checks, the Reject bodies),
``bastion.fix.resend`` (what answers a ResendRequest), ``bastion.fix.heartbeats``
(Heartbeat and TestRequest timing), ``bastion.fix.gate`` (output
held until committed) and ``bastion.fix.timestamps`` (UTCTimestamp text).
"""

from __future__ import annotations

import contextlib
import enum
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from bastion.clock import Clock
from bastion.fix.codec import (
    INVALID_MSG_TYPE,
    OTHER,
    VALUE_INCORRECT,
    Defect,
    FixMessage,
    FixParser,
    Garbled,
    encode,
    redact,
)
from bastion.fix.gate import Closer, OutputGate, Writer
from bastion.fix.heartbeats import Liveness
from bastion.fix.rejects import (
    FIX44_MSG_TYPES,
    BusinessReject,
    Expected,
    RejectMessage,
    business_reject_body,
    header_problem,
    logon_problem,
    reject_body,
)
from bastion.fix.resend import gap_fill_fields, poss_dup_copy, replay, seq_number
from bastion.fix.schedule import SessionSchedule
from bastion.fix.store import SqliteSessionStore
from bastion.fix.timestamps import format_utc_timestamp
from bastion.fix.validation import ValidationConfig

log = structlog.get_logger("bastion.fix")

ADMIN_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})
RESEND_RETRIES = 2
"""A ResendRequest that brings nothing is repeated this many times, then the session drops."""


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


class Application(Protocol):
    """What a session calls back into."""

    def on_logon(self, session: FixSession) -> None: ...

    def on_logout(self, session: FixSession, reason: str) -> None: ...

    def on_message(self, session: FixSession, message: FixMessage) -> None: ...

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        """Acceptor side: ``None`` accepts the Logon, a string refuses it with that text."""
        ...


class FixSession:
    """One FIX session's protocol state machine."""

    def __init__(
        self,
        settings: SessionSettings,
        store: SqliteSessionStore,
        app: Application,
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

    def connection_lost(self, reason: str = "connection closed") -> None:
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

    # -- inbound ----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        """Process every complete message in ``data`` as one batch.

        State changes of the whole read (sequence numbers, messages sent, and whatever
        ``unit_of_work`` covers, such as a venue's ledger) are committed once, and only
        then is the output of the batch written to the socket, in one write.
        """
        self._liveness.last_received = self.last_received_s = self._monotonic()
        self._parser.feed(data)
        with self.batch():
            self._process_buffered()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Commit everything done inside at once, then write its output (see ``OutputGate``)."""
        # the unit of work commits first: if the store's commit then fails, the inbound
        # messages are asked for again and answered from what the unit of work kept
        with self.gate.hold(), self.store.batch(), contextlib.ExitStack() as stack:
            if self.unit_of_work is not None:
                stack.enter_context(self.unit_of_work())
            yield

    def _process_buffered(self) -> None:
        for item in self._parser.messages():
            if self.state is SessionState.DISCONNECTED:
                return
            if isinstance(item, Garbled):
                self.counters["garbled"] += 1
                log.warning(
                    "fix_garbled",
                    session=self.settings.key,
                    reason=item.reason,
                    raw=redact(item.raw),
                )
                if item.begin_string is not None and self.state is not SessionState.AWAITING_LOGON:
                    self._fatal(f"BeginString changed to {item.begin_string!r}")
                elif self.state is SessionState.AWAITING_LOGON and not self.initiator:
                    self.disconnect(f"invalid Logon: {item.reason}")
                continue
            self.counters["received"] += 1
            if self.message_log:
                log.debug("fix_in", session=self.settings.key, msg=redact(item.raw or b""))
            self._on_message(item)

    def _on_message(self, msg: FixMessage) -> None:
        msg_type = msg.msg_type
        seq_text = msg.get(34)
        if seq_text is None or not seq_text.isdigit():
            self._fatal("MsgSeqNum (34) missing or not a number", logout=self.logged_on)
            return
        seq = int(seq_text)
        if self.state is SessionState.AWAITING_LOGON and not self.initiator and msg_type == "A":
            # authenticated before anything is touched: a refused Logon uses no sequence
            # number and stores nothing, however many arrive
            refusal = self.screen_logon(msg)
            if refusal is not None:
                self._write_raw(self.refusal_logout(refusal))
                self.disconnect(f"logon refused: {refusal}")
                return
            self._on_logon(msg, seq)
            return
        if self.state is SessionState.AWAITING_LOGON and msg_type != "A":
            if msg_type == "5":
                self.counters["logout_before_logon"] += 1
                self.disconnect(f"logon refused by counterparty: {msg.get(58) or 'no reason'}")
            else:
                self._fatal(f"first message was MsgType {msg_type!r}, not a Logon", logout=False)
            return
        defect = msg.defect
        if defect is None and self._validator is not None:
            defect = self._validator.check(msg.fields)
        if defect is not None:  # too low: ignored or fatal as any other, below
            expected = self.store.next_target_seq
            if seq == expected:
                self._reject(msg, defect.reason, defect.ref_tag, defect.text)
                self._consume(seq)
                return
            if seq > expected:
                # messages were missed: asked for first, and this one is rejected in its
                # turn, as it would be had they arrived (its number then used in order)
                if self._header_ok(msg, seq):
                    msg.defect = defect
                    self._on_seq_too_high(msg, seq, expected)
                return
        if not self._header_ok(msg, seq):
            return
        if msg_type == "A" and self.state is SessionState.AWAITING_LOGON:
            self._on_logon(msg, seq)
            return
        if msg_type == "A" and msg.get(141) == "Y" and self.state is SessionState.ACTIVE:
            self._on_reset_logon(msg, seq)
            return
        if msg_type == "4" and msg.get(123) != "Y":
            self._on_sequence_reset(msg, seq)
            return
        expected = self.store.next_target_seq
        if seq > expected:
            self._on_seq_too_high(msg, seq, expected)
            return
        if seq < expected:
            if msg.get(43) == "Y":
                self.counters["poss_dup_ignored"] += 1
                return
            self._fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}")
            return
        self._process(msg, seq)
        self._drain_queue()

    def _header_ok(self, msg: FixMessage, seq: int) -> bool:
        """Reject a message whose standard header is wrong (its number used), and end the
        session after the Reject where the specification says so. One whose MsgSeqNum is
        too high is queued across the gap and rejected in its turn, unless it is fatal."""
        problem = header_problem(msg, self._expected, self._now_ns())
        if problem is None:
            return True
        expected = self.store.next_target_seq
        if problem.fatal is None and seq > expected:  # a gap first: rejected in its turn
            msg.defect = Defect(problem.reason, problem.ref_tag, problem.text)
            self._on_seq_too_high(msg, seq, expected)
            return False
        self._reject(msg, problem.reason, problem.ref_tag, problem.text)
        if problem.fatal is None:
            self._consume(seq)
        else:
            self._consume(seq, drain=False)
            self._fatal(problem.fatal)
        return False

    def _consume(self, seq: int, *, drain: bool = True) -> None:
        """An answered (rejected) message still uses its sequence number, also one whose
        Reject is followed by a Logout (``drain=False``: nothing queued is processed)."""
        if seq == self.store.next_target_seq:
            self.store.set_next_target_seq(seq + 1)
            if drain:
                self._drain_queue()

    def _on_seq_too_high(self, msg: FixMessage, seq: int, expected: int) -> None:
        msg_type = msg.msg_type
        self.counters["gaps_detected"] += 1 if self._resend_pending_to is None else 0
        if msg_type == "5":
            # a Logout is honoured even across a gap
            self._on_logout(msg)
            return
        if msg_type == "2":
            self._on_resend_request(msg)  # answer theirs before waiting for ours
            self._queue[seq] = None
        else:
            self._queue[seq] = msg
        self._request_resend(expected, seq)

    def _request_resend(self, begin: int, seen: int) -> None:
        if self._resend_pending_to is not None and begin <= self._resend_pending_to:
            self._resend_pending_to = max(self._resend_pending_to, seen)
            return
        self._resend_pending_to = seen
        self._resend_asked_at = self._monotonic()
        self._resend_asked_from = begin
        self._resend_retries = 0
        self.counters["resend_requests_sent"] += 1
        log.warning("fix_gap", session=self.settings.key, expected=begin, received=seen)
        self._send_admin("2", [(7, str(begin)), (16, "0")])

    def _drain_queue(self) -> None:
        queue = self._queue
        while queue and self.state is not SessionState.DISCONNECTED:
            expected = self.store.next_target_seq
            if expected not in queue:
                if min(queue) < expected:  # filled by a GapFill past them
                    for seq in [s for s in queue if s < expected]:
                        del queue[seq]
                    continue
                break
            msg = queue.pop(expected)
            if msg is None:
                self.store.set_next_target_seq(expected + 1)
            elif msg.defect is not None:  # queued across a gap: rejected in its turn
                defect = msg.defect
                self._reject(msg, defect.reason, defect.ref_tag, defect.text)
                self.store.set_next_target_seq(expected + 1)
            else:
                self._process(msg, expected)
        if (
            self._resend_pending_to is not None
            and self.store.next_target_seq > self._resend_pending_to
        ):
            self._resend_pending_to = None
            log.info("fix_gap_filled", session=self.settings.key, next=self.store.next_target_seq)

    def _process(self, msg: FixMessage, seq: int) -> None:
        msg_type = msg.msg_type
        if msg_type == "0":
            self._on_heartbeat(msg)
        elif msg_type == "1":
            self._send_admin("0", [(112, msg.get(112) or "")])
        elif msg_type == "2":
            self._on_resend_request(msg)
        elif msg_type == "3":
            self.counters["rejects_received"] += 1
            log.warning(
                "fix_reject_received",
                session=self.settings.key,
                ref_seq=msg.get(45),
                ref_tag=msg.get(371),
                reason=msg.get(373),
                text=msg.get(58),
            )
            self._deliver(msg)
        elif msg_type == "4":
            self._on_gap_fill(msg, seq)
            return
        elif msg_type == "5":
            self.store.set_next_target_seq(seq + 1)
            self._on_logout(msg)
            return
        elif msg_type == "A":
            self._reject(msg, OTHER, None, "Logon received while logged on")
        elif msg_type not in FIX44_MSG_TYPES:
            self.counters["invalid_msg_type"] += 1
            self._reject(msg, INVALID_MSG_TYPE, 35, "Invalid MsgType")
        else:
            self._deliver(msg)
        if self.state is not SessionState.DISCONNECTED:
            self.store.set_next_target_seq(seq + 1)

    def _deliver(self, msg: FixMessage) -> None:
        try:
            self.app.on_message(self, msg)
        except RejectMessage as reject:
            self._reject(msg, reject.reason, reject.ref_tag, reject.text)
        except BusinessReject as reject:
            self._business_reject(msg, reject.reason, reject.text, reject.ref_id)
        except Exception as error:
            self.counters["handler_errors"] += 1
            log.exception("fix_handler_failed", session=self.settings.key, error=repr(error))
            self._business_reject(msg, 0, "message could not be processed", None)

    # -- admin messages ---------------------------------------------------------------
    def _on_heartbeat(self, msg: FixMessage) -> None:
        """A Heartbeat: the answer to the outstanding TestRequest only if it carries its
        TestReqID (FIX 4.4 test case 6); any answer to one of ours gives the round trip.

        One without the right TestReqID leaves the TestRequest outstanding, so a
        counterparty that does not answer it is still disconnected when the grace period
        ends (``tick``); such a Heartbeat is counted (``heartbeats_not_answering``)."""
        test_id = msg.get(112) or ""
        still_awaited, round_trip_s = self._liveness.heartbeat(test_id, self._monotonic())
        if still_awaited is not None:
            self.counters["heartbeats_not_answering"] += 1
            log.warning(
                "fix_heartbeat_not_answering_test_request",
                session=self.settings.key,
                expected=still_awaited,
                received=test_id or None,
            )
        if round_trip_s is not None:
            self.heartbeat_rtt_s = round_trip_s
            self.counters["round_trips_measured"] += 1

    def _on_logon(self, msg: FixMessage, seq: int) -> None:
        heartbeat = msg.get(108)
        if heartbeat is None or not heartbeat.isdigit() or int(heartbeat) <= 0:
            self._fatal("HeartBtInt (108) missing or invalid", logout=True)
            return
        if msg.get(98) not in ("0", None):
            self._fatal("EncryptMethod (98) not supported", logout=True)
            return
        reset = msg.get(141) == "Y"
        if not self.initiator:  # screened by ``screen_logon`` already
            if reset or self.settings.reset_on_logon:
                self.store.reset(self._now_ns())
            elif seq < self.store.next_target_seq:  # answered by a Logout alone
                expected = self.store.next_target_seq
                self._fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}")
                return
            self.heartbeat_s = int(heartbeat)
            self._send_logon(reset=reset or self.settings.reset_on_logon)
        elif reset and not self._reset_requested:
            self.store.set_next_target_seq(1)
        self._reset_requested = False
        self.state = SessionState.ACTIVE
        self.counters["logons"] += 1
        if self.gap_fill_before_logon:
            self.resend_floor = self.store.next_sender_seq
        expected = self.store.next_target_seq
        log.info("fix_logged_on", session=self.settings.key, heartbeat_s=self.heartbeat_s)
        if seq < expected:
            self._fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}")
            return
        if seq > expected:
            self._queue[seq] = None
            self._request_resend(expected, seq)
        else:
            self.store.set_next_target_seq(seq + 1)
        self.app.on_logon(self)

    def _on_reset_logon(self, msg: FixMessage, seq: int) -> None:
        """A Logon with ResetSeqNumFlag (141=Y) during the session: both sides start again
        at 1. The one that asked gets our Logon with 141=Y; the answer to ours ends it."""
        self.counters["sequence_resets_received"] += 1
        log.warning("fix_logon_reset", session=self.settings.key, asked_by_us=self._reset_requested)
        if self._reset_requested:
            self._reset_requested = False
        else:
            self.store.reset(self._now_ns())
            self._send_logon(reset=True)
        self._queue.clear()
        self._resend_pending_to = None
        self.store.set_next_target_seq(seq + 1)

    def screen_logon(self, msg: FixMessage) -> str | None:
        """Why an acceptor refuses the Logon ``msg``, or ``None`` to accept it.

        Checks it is a well-formed Logon for this session (CompIDs, MsgSeqNum,
        SendingTime, HeartBtInt, EncryptMethod), then the application's credentials.
        Changes no sequence number and stores nothing, so a flood of bad Logons cannot
        move the real counterparty's session; a refusal is counted and logged."""
        refusal = self._logon_problem(msg) or self.app.authenticate(self, msg)
        if refusal is not None:
            self.counters["logons_refused"] += 1
            log.warning("fix_logon_refused", session=self.settings.key, reason=refusal)
        return refusal

    def _logon_problem(self, msg: FixMessage) -> str | None:
        if msg.msg_type != "A":
            return "first message is not a Logon"
        defect = msg.defect
        if defect is None and self._validator is not None:
            defect = self._validator.check(msg.fields)
        if defect is not None:
            return f"malformed Logon: {defect.text}"
        return logon_problem(msg, self._expected, self._now_ns())

    def refusal_logout(self, text: str) -> bytes:
        """The Logout that answers a refused Logon, outside the session: it carries the
        next outbound MsgSeqNum without using it, and is not stored."""
        fields = [
            (35, "5"),
            (49, self.settings.sender_comp_id),
            (56, self.settings.target_comp_id),
            (34, str(self.store.next_sender_seq)),
            (52, format_utc_timestamp(self._now_ns())),
            (58, text),
        ]
        return encode(self.settings.begin_string, fields)

    def _on_logout(self, msg: FixMessage) -> None:
        text = msg.get(58) or ""
        self._logged_out = True
        if self.state is SessionState.LOGGING_OUT:
            self.disconnect("logout confirmed")
            return
        self._send_admin("5", [])
        self.disconnect(f"logout by counterparty: {text}" if text else "logout by counterparty")

    def _on_resend_request(self, msg: FixMessage) -> None:
        begin = seq_number(msg, 7, "BeginSeqNo")
        end = seq_number(msg, 16, "EndSeqNo") if isinstance(begin, int) else begin
        if isinstance(begin, Defect) or isinstance(end, Defect):
            defect = begin if isinstance(begin, Defect) else end
            assert isinstance(defect, Defect)
            self._reject(msg, defect.reason, defect.ref_tag, defect.text)
            return
        self.counters["resend_requests_received"] += 1
        last_sent = self.store.next_sender_seq - 1
        if end == 0 or end > last_sent:
            end = last_sent
        begin = max(begin, 1)
        if begin > end:
            return
        log.info("fix_resending", session=self.settings.key, begin=begin, end=end)
        steps = replay(
            self.store,
            begin,
            end,
            floor=self.resend_floor,
            resent_below_floor=self.resent_below_floor,
        )
        settings = self.settings
        for step in steps:
            now = format_utc_timestamp(self._now_ns())
            if isinstance(step, bytes):
                self.counters["messages_resent"] += 1
                self._write_raw(poss_dup_copy(step, settings.begin_string, now))
            else:
                self.counters["gap_fills_sent"] += 1
                sender, target = settings.sender_comp_id, settings.target_comp_id
                fields = gap_fill_fields(sender, target, *step, now)
                self._write_raw(encode(settings.begin_string, fields))

    def _on_gap_fill(self, msg: FixMessage, seq: int) -> None:
        new_seq = seq_number(msg, 36, "NewSeqNo")
        if isinstance(new_seq, Defect):
            self._reject(msg, new_seq.reason, new_seq.ref_tag, new_seq.text)
            self.store.set_next_target_seq(seq + 1)
            return
        if new_seq <= seq:
            self._reject(msg, VALUE_INCORRECT, 36, "NewSeqNo must be above MsgSeqNum")
            self.store.set_next_target_seq(seq + 1)
            return
        self.counters["gap_fills_received"] += 1
        self.store.set_next_target_seq(new_seq)

    def _on_sequence_reset(self, msg: FixMessage, seq: int) -> None:
        """SequenceReset-Reset: the next expected number is NewSeqNo, whatever MsgSeqNum says."""
        new_seq = seq_number(msg, 36, "NewSeqNo")
        expected = self.store.next_target_seq
        if isinstance(new_seq, Defect):
            self._reject(msg, new_seq.reason, new_seq.ref_tag, new_seq.text)
            return
        if new_seq < expected:
            self._reject(msg, VALUE_INCORRECT, 36, f"NewSeqNo {new_seq} below expected {expected}")
            return
        self.counters["sequence_resets_received"] += 1
        log.warning("fix_sequence_reset", session=self.settings.key, new_seq=new_seq)
        self.store.set_next_target_seq(new_seq)
        self._drain_queue()

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

    # -- timers -----------------------------------------------------------------------
    def tick(self) -> None:
        """Heartbeats, TestRequest, logon/logout timeouts, session end. Call about every 100 ms."""
        state = self.state
        if state is SessionState.DISCONNECTED:
            return
        now = self._monotonic()
        if state is SessionState.AWAITING_LOGON:
            if now - self._connected_at > self.settings.logon_timeout_s:
                self.disconnect(f"no Logon within {self.settings.logon_timeout_s:g} s")
            return
        if state is SessionState.LOGGING_OUT:
            if self._logout_deadline is not None and now > self._logout_deadline:
                self.disconnect("logout not confirmed in time")
            return
        schedule = self.settings.schedule
        if schedule is not None and not schedule.is_open(self._now_ns()):
            self.logout("end of session")
            return
        heartbeat = self.heartbeat_s
        if self._resend_pending_to is not None and not self._resend_progressing(now):
            return
        live = self._liveness
        if live.timed_out(now, heartbeat):
            self.counters["heartbeat_timeouts"] += 1
            self.disconnect("heartbeat timeout: no answer to TestRequest")
            return
        test_id = live.silence_test(now, heartbeat)
        if test_id is not None:
            self.counters["test_requests_sent"] += 1
            self._send_admin("1", [(112, test_id)])
        probe_id = live.probe(now, self.rtt_probe_s)
        if probe_id is not None:
            self.counters["rtt_probes_sent"] += 1
            self._send_admin("1", [(112, probe_id)])
        if live.heartbeat_due(now, heartbeat):
            self._send_admin("0", [])

    def _resend_progressing(self, now: float) -> bool:
        """A ResendRequest unanswered for two heartbeats is asked again, up to
        ``RESEND_RETRIES`` times; then the session is dropped (a reconnect asks anew)."""
        expected = self.store.next_target_seq
        if expected != self._resend_asked_from:  # the gap is being filled
            self._resend_asked_from = expected
            self._resend_asked_at = now
            return True
        if now - self._resend_asked_at < 2 * self.heartbeat_s:
            return True
        if self._resend_retries >= RESEND_RETRIES:
            self.counters["resend_timeouts"] += 1
            self.disconnect(f"gap from {expected} not filled after {RESEND_RETRIES + 1} requests")
            return False
        self._resend_retries += 1
        self._resend_asked_at = now
        self.counters["resend_requests_sent"] += 1
        log.warning("fix_resend_repeated", session=self.settings.key, expected=expected)
        self._send_admin("2", [(7, str(expected)), (16, "0")])
        return True

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
