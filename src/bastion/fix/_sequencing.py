"""Sequence handling of a FIX session: an inbound MsgSeqNum above the expected one
(the message queued, the gap asked for with a ResendRequest, asked again while nothing
comes, the queue drained in order as the gap fills), a message's number used when it
is rejected, the counterparty's ResendRequest answered (``bastion.fix.resend`` says
with what), and SequenceReset in both its modes. A part of ``FixSession``
(``bastion.fix.session``), which processes each message in its turn.
"""

from __future__ import annotations

import structlog

from bastion.fix._session_core import SessionCore, SessionState
from bastion.fix.codec import VALUE_INCORRECT, Defect, FixMessage, encode
from bastion.fix.resend import gap_fill_fields, poss_dup_copy, replay, seq_number
from bastion.fix.timestamps import format_utc_timestamp

log = structlog.get_logger("bastion.fix")

RESEND_RETRIES = 2
"""A ResendRequest that brings nothing is repeated this many times, then the session drops."""


class Sequencing(SessionCore):
    """Inbound sequence numbers: gaps, resend requests both ways, SequenceReset."""

    def _process(self, msg: FixMessage, seq: int) -> None:
        """Handle ``msg``, the one expected now (``FixSession``)."""
        raise NotImplementedError

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
