"""FIX 4.4 session test cases against ``bastion venue sim`` over TCP: heartbeats and
TestRequest (4, 6), numbered as QuickFIX's acceptance suite numbers them. A hand-written
counterparty logs on with a HeartBtInt of 1 s, so the venue's timers run in a test's time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bastion.venue_server.server import VenueSimServer
from kit.fix_conformance import PASSWORD, logon, run, still_in_step
from kit.fix_tcp import RawCounterparty


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_FIX_PASSWORD", PASSWORD)


def _session_counters(server: VenueSimServer) -> dict[str, int]:
    session = server.apps["acct"].session
    assert session is not None
    return dict(session.counters)


def test_4a_heartbeat_sent_when_idle(tmp_path: Path) -> None:
    """Nothing sent for HeartBtInt: the venue sends a Heartbeat (no TestReqID)."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client, (108, "1"))
        heartbeat = await client.receive(timeout_s=3)
        assert heartbeat is not None and heartbeat.msg_type == "0"
        assert heartbeat.get(112) is None

    run(tmp_path, case)


def test_4b_test_request_is_answered_with_its_test_req_id(tmp_path: Path) -> None:
    """A TestRequest: the Heartbeat that answers it carries its TestReqID."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        client.send("1", (112, "PING-4B"))
        heartbeat = await client.expect("0")
        assert heartbeat.get(112) == "PING-4B"

    run(tmp_path, case)


def test_6_heartbeat_with_wrong_test_req_id_does_not_answer_the_test_request(
    tmp_path: Path,
) -> None:
    """The venue's TestRequest after silence is answered with another TestReqID: it is
    counted, and the venue disconnects when the grace period ends."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client, (108, "1"))
        test_request = await client.expect("1", timeout_s=5)
        client.send("0", (112, "NOT-" + (test_request.get(112) or "")))
        started = time.monotonic()
        await client.closed(timeout_s=5)
        assert time.monotonic() - started < 3

    server = run(tmp_path, case)
    counters = _session_counters(server)
    assert counters["heartbeats_not_answering"] == 1
    assert counters["heartbeat_timeouts"] == 1
    assert counters["test_requests_sent"] == 1


def test_6_heartbeat_with_its_test_req_id_keeps_the_session(tmp_path: Path) -> None:
    """The same TestRequest answered with its TestReqID: the session outlives the grace
    period and stays in step."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client, (108, "1"))
        test_request = await client.expect("1", timeout_s=5)
        client.send("0", (112, test_request.get(112)))
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            msg = await client.receive(timeout_s=2)
            assert msg is not None and msg.msg_type in ("0", "1"), msg
            if msg.msg_type == "1":
                client.send("0", (112, msg.get(112)))
        await still_in_step(client)

    server = run(tmp_path, case)
    assert _session_counters(server).get("heartbeat_timeouts", 0) == 0
