"""Logon handling of a FIX session, in either role: the acceptor screening a Logon
before it touches anything (and the Logout that answers a refused one), the Logon that
starts the session, and a Logon with ResetSeqNumFlag during it. A part of
``FixSession`` (``bastion.fix.session``); the Logon's checks are in
``bastion.fix.rejects``.
"""

from __future__ import annotations

from typing import Self

import structlog

from bastion.fix._sequencing import Sequencing
from bastion.fix._session_core import SessionState
from bastion.fix.codec import FixMessage, encode
from bastion.fix.rejects import logon_problem
from bastion.fix.timestamps import format_utc_timestamp

log = structlog.get_logger("bastion.fix")


class Logons(Sequencing):
    """Logon, in both roles."""

    def _on_logon(self: Self, msg: FixMessage, seq: int) -> None:
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

    def screen_logon(self: Self, msg: FixMessage) -> str | None:
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
