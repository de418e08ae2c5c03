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

``FixSession`` is built of parts, each in a module of its own:
``bastion.fix._session_core`` (the settings, the lifecycle states, the
``Application``; the session's state, connection lifecycle and output),
``bastion.fix._sequencing`` (gaps, resend requests both ways, SequenceReset) and
``bastion.fix._logons`` (Logon in both roles); here, what happens to each inbound
message, and the timers. Beside it: ``bastion.fix.rejects`` (the header and Logon
checks, the Reject bodies), ``bastion.fix.resend`` (what answers a ResendRequest),
``bastion.fix.heartbeats`` (Heartbeat and TestRequest timing), ``bastion.fix.gate``
(output held until committed) and ``bastion.fix.timestamps`` (UTCTimestamp text).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Self

import structlog

from bastion.fix._logons import Logons
from bastion.fix._session_core import Application, SessionSettings, SessionState
from bastion.fix.codec import INVALID_MSG_TYPE, OTHER, Defect, FixMessage, Garbled, redact
from bastion.fix.rejects import FIX44_MSG_TYPES, BusinessReject, RejectMessage, header_problem

__all__ = ["Application", "FixSession", "SessionSettings", "SessionState"]

log = structlog.get_logger("bastion.fix")


class FixSession(Logons):
    """One FIX session's protocol state machine."""

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

    def _deliver(self: Self, msg: FixMessage) -> None:
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
