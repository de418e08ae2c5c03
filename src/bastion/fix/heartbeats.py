"""Heartbeats and TestRequests of one connection (FIX 4.4 test cases 4 and 6): when the
session must send a Heartbeat or a TestRequest, whether the counterparty has answered
the outstanding TestRequest, and the round trips the answers measure. Times are the
clock's monotonic seconds, handed in: ``bastion.fix.session`` sends and counts."""

from __future__ import annotations

TEST_REQUEST_FACTOR = 1.2
"""Silence longer than HeartBtInt times this triggers a TestRequest."""
PROBE_PREFIX = "RTT-"
"""TestReqID (112) of the TestRequests that only measure the round trip (``rtt_probe_s``)."""
_TESTS_REMEMBERED = 8  # TestRequests awaiting their Heartbeat, at most (oldest forgotten)


class Liveness:
    """The heartbeat state of one connection. ``awaiting_id`` is the TestReqID of the
    TestRequest that silence triggered, while it waits for its Heartbeat (since
    ``awaiting_since``); only a Heartbeat carrying it answers it."""

    def __init__(self) -> None:
        self.last_sent = 0.0
        self.last_received = 0.0
        self.awaiting_since: float | None = None
        self.awaiting_id = ""
        self._count = 0  # TestRequests sent, for their TestReqIDs
        self._sent: dict[str, float] = {}  # TestReqID -> when sent, until answered
        self._probe_at = 0.0

    def restart(self, now: float) -> None:
        """A new connection: nothing outstanding, everything just sent and received."""
        self.last_sent = self.last_received = self._probe_at = now
        self.awaiting_since = None
        self.awaiting_id = ""
        self._sent.clear()

    def heartbeat(self, test_id: str, now: float) -> tuple[str | None, float | None]:
        """A Heartbeat with TestReqID ``test_id`` (empty: none) came: the TestReqID still
        awaited if it does not answer the outstanding TestRequest (else ``None``), and
        the round trip it measures if it answers any TestRequest of ours."""
        still_awaited = None
        if self.awaiting_since is not None:
            if test_id == self.awaiting_id:
                self.awaiting_since = None
            else:
                still_awaited = self.awaiting_id
        sent_at = self._sent.pop(test_id, None) if test_id else None
        return still_awaited, None if sent_at is None else now - sent_at

    def timed_out(self, now: float, heartbeat_s: float) -> bool:
        """The outstanding TestRequest has gone unanswered for HeartBtInt."""
        since = self.awaiting_since
        return since is not None and now - since >= heartbeat_s

    def silence_test(self, now: float, heartbeat_s: float) -> str | None:
        """The TestReqID of a TestRequest to send now because nothing came for longer
        than HeartBtInt (times ``TEST_REQUEST_FACTOR``), none being outstanding."""
        if self.awaiting_since is not None:
            return None
        if now - self.last_received < heartbeat_s * TEST_REQUEST_FACTOR:
            return None
        self._count += 1
        self.awaiting_since = now
        self.awaiting_id = f"TEST-{self._count}"
        return self._sending(self.awaiting_id, now)

    def probe(self, now: float, every_s: float | None) -> str | None:
        """The TestReqID of a TestRequest to send now only to measure the round trip."""
        if every_s is None or now - self._probe_at < every_s:
            return None
        self._probe_at = now
        self._count += 1
        return self._sending(f"{PROBE_PREFIX}{self._count}", now)

    def heartbeat_due(self, now: float, heartbeat_s: float) -> bool:
        """Nothing was sent for HeartBtInt."""
        return now - self.last_sent >= heartbeat_s

    def _sending(self, test_id: str, now: float) -> str:
        sent = self._sent
        if len(sent) >= _TESTS_REMEMBERED:  # never answered: forget the oldest
            del sent[next(iter(sent))]
        sent[test_id] = now
        return test_id
