"""What a FIX session counts for monitoring: drops, the round trip of a TestRequest to
its Heartbeat (on silence, or probed on a busy session), the last message received."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.fix.heartbeats import PROBE_PREFIX
from kit.fix_pair import Pair, execution_report, parse_all


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """A logged-on initiator/acceptor pair, heartbeat 30 s."""
    p = Pair(tmp_path)
    p.logon()
    yield p
    p.close()


def test_when_silence_test_request_answered_then_round_trip_is_its_time(pair: Pair) -> None:
    """The TestRequest that silence triggers is timed to the Heartbeat that echoes it."""
    assert pair.ini.heartbeat_rtt_s is None
    pair.clock.advance(36)
    pair.ini.tick()
    pair.clock.advance(0.25)
    pair.pump()
    assert pair.ini.heartbeat_rtt_s == pytest.approx(0.25)
    assert pair.ini.counters["round_trips_measured"] == 1


def test_when_probe_interval_set_then_busy_session_is_probed_and_timed(pair: Pair) -> None:
    """With ``rtt_probe_s`` a TestRequest goes out every interval even though the
    counterparty keeps talking; a Heartbeat without our TestReqID times nothing."""
    pair.ini.rtt_probe_s = 5.0
    pair.clock.advance(4.9)
    pair.acc.send(execution_report("E1"))  # the venue is busy
    pair.pump()
    pair.ini.tick()
    assert not [m for m in parse_all(b"".join(pair.to_acc.pending)) if m.msg_type == "1"]
    pair.clock.advance(0.1)
    pair.ini.tick()
    (probe,) = [m for m in parse_all(b"".join(pair.to_acc.pending)) if m.msg_type == "1"]
    assert (probe.get(112) or "").startswith(PROBE_PREFIX)
    pair.clock.advance(0.01)
    pair.pump()
    assert pair.ini.heartbeat_rtt_s == pytest.approx(0.01)
    assert pair.ini.counters["rtt_probes_sent"] == 1
    assert pair.ini.logged_on


def test_when_logged_on_session_drops_then_disconnect_counted_once(pair: Pair) -> None:
    """A drop of a logged-on session counts; a connection refused before logon does not."""
    pair.ini.disconnect("line drop")
    pair.pump()
    assert pair.ini.counters["disconnects"] == 1
    pair.connect()
    pair.ini.disconnect("dropped before the logon")
    assert pair.ini.counters["disconnects"] == 1


def test_when_bytes_arrive_then_last_received_is_the_clock_then(pair: Pair) -> None:
    """``last_received_s`` moves with what arrives, on the session's monotonic clock."""
    pair.clock.advance(3)
    pair.acc.send(execution_report("E2"))
    pair.pump()
    assert pair.ini.last_received_s == pair.clock.monotonic_s()
