"""FIX 4.4 session test cases the node's initiator must honour, over TCP.

A hand-written acceptor (``RawCounterparty.listen``) plays the venue and sends exactly
the bytes a case calls for; the node's FIX venue adapter (``FixVenueAdapter``: its
``FixSession`` and ``FixInitiator``, as a node runs them) connects to it and logs on.
Each test is named after its case in the FIX specification's session test cases
(Volume 2), as QuickFIX's acceptance suite numbers them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bastion.clock import LiveClock
from bastion.fix.codec import INVALID_TAG_NUMBER, FixMessage, encode
from bastion.fix.session import SessionSettings
from bastion.fix.timestamps import format_utc_timestamp
from bastion.venues.fix.adapter import FixVenueAdapter
from kit.fix_tcp import RawCounterparty

PASSWORD = "initiator-pw-3e8a"
REPORT = [  # an ExecutionReport (New) of an order the node does not know
    (37, "V-1"),
    (17, "E-1"),
    (150, "0"),
    (39, "0"),
    (55, "XYZ"),
    (54, "1"),
    (151, "5"),
    (14, "0"),
    (6, "0"),
]

Case = Callable[[RawCounterparty, FixVenueAdapter], Awaitable[None]]


def run(tmp_path: Path, case: Case, *, heartbeat_s: int = 30) -> FixVenueAdapter:
    """``case`` with the node's FIX adapter connected to a raw acceptor and logged on."""

    async def main() -> FixVenueAdapter:
        venue = RawCounterparty("SIM", "NODE")
        port = await venue.listen()
        adapter = FixVenueAdapter(
            name="SIM",
            epoch=1,
            settings=SessionSettings(
                sender_comp_id="NODE",
                target_comp_id="SIM",
                heartbeat_s=heartbeat_s,
                username="trader",
                password=PASSWORD,
            ),
            store_path=tmp_path / "node.sqlite",
            host="127.0.0.1",
            port=port,
            clock=LiveClock(),
            instruments={},
            backoff_initial_s=0.05,
            backoff_max_s=0.2,
            subscribe_market_data=False,
        )
        adapter.bind(lambda event: None)
        await adapter.connect()
        try:
            await venue.accept()
            logon = await venue.expect("A")
            assert (logon.get(553), logon.get(554)) == ("trader", PASSWORD)
            venue.send("A", (98, "0"), (108, logon.get(108)))
            assert await adapter.wait_logged_on(10)
            await case(venue, adapter)
        finally:
            await adapter.initiator.stop()
            await venue.stop()
            adapter.store.close()
        return adapter

    return asyncio.run(asyncio.wait_for(main(), 60))


async def still_in_step(venue: RawCounterparty) -> FixMessage:
    """The node answers a TestRequest with the next MsgSeqNum: nothing was skipped."""
    venue.send("1", (112, "STEP"))
    heartbeat = await venue.expect("0")
    assert heartbeat.get(112) == "STEP"
    return heartbeat


def test_6_test_request_is_answered_with_its_test_req_id(tmp_path: Path) -> None:
    """A TestRequest from the venue: the node's Heartbeat carries its TestReqID (112)."""

    async def case(venue: RawCounterparty, adapter: FixVenueAdapter) -> None:
        venue.send("1", (112, "PING-7"))
        heartbeat = await venue.expect("0")
        assert heartbeat.get(112) == "PING-7"

    run(tmp_path, case)


def test_6_heartbeat_without_the_test_req_id_does_not_answer_the_node(tmp_path: Path) -> None:
    """The node's TestRequest after silence is answered by a Heartbeat with another
    TestReqID: the node counts it, and drops the session when the grace period ends."""

    async def case(venue: RawCounterparty, adapter: FixVenueAdapter) -> None:
        test_request = await venue.expect("1", timeout_s=5)
        assert test_request.get(112)
        venue.send("0", (112, "NOT-" + (test_request.get(112) or "")))
        await venue.closed(timeout_s=5)

    adapter = run(tmp_path, case, heartbeat_s=1)
    assert adapter.session.counters["heartbeats_not_answering"] == 1
    assert adapter.session.counters["heartbeat_timeouts"] == 1
    assert adapter.session.counters["test_requests_sent"] == 1  # dropped after the first


def test_6_heartbeat_with_the_test_req_id_keeps_the_node_logged_on(tmp_path: Path) -> None:
    """The same, answered with the TestReqID: the session stays up past the grace period."""

    async def case(venue: RawCounterparty, adapter: FixVenueAdapter) -> None:
        test_request = await venue.expect("1", timeout_s=5)
        venue.send("0", (112, test_request.get(112)))
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # the node's own Heartbeats meanwhile
            msg = await venue.receive(timeout_s=2)
            assert msg is not None and msg.msg_type in ("0", "1"), msg
            if msg.msg_type == "1":
                venue.send("0", (112, msg.get(112)))
        assert adapter.session.logged_on
        assert adapter.session.counters["heartbeat_timeouts"] == 0

    run(tmp_path, case, heartbeat_s=1)


def test_logon_with_reset_during_session_resets_the_node_too(tmp_path: Path) -> None:
    """The venue sends Logon 141=Y at MsgSeqNum 1 mid-session: the node answers with its
    own Logon 141=Y at 1, and both sides go on from 2."""

    async def case(venue: RawCounterparty, adapter: FixVenueAdapter) -> None:
        await still_in_step(venue)
        venue.send("A", (98, "0"), (108, "30"), (141, "Y"), seq=1)
        answer = await venue.expect("A")
        assert (answer.get(141), answer.get(34)) == ("Y", "1")
        heartbeat = await still_in_step(venue)
        assert heartbeat.get(34) == "2"

    adapter = run(tmp_path, case)
    assert adapter.session.counters["sequence_resets_received"] == 1


def _garbled(venue: RawCounterparty, damage: str) -> bytes:
    """A TestRequest (112=LOST) with the venue's next MsgSeqNum, garbled by ``damage``;
    the number is not used (the next message carries it again)."""
    seq = venue.next_seq
    raw = venue.message("1", (112, "LOST"))
    venue.next_seq = seq
    if damage == "checksum":
        head, _, checksum = raw.rpartition(b"10=")
        return head + b"10=%03d\x01" % ((int(checksum[:3]) + 1) % 256)
    if damage == "body_length":
        head, _, rest = raw.partition(b"\x019=")
        length, _, tail = rest.partition(b"\x01")
        return head + b"\x019=" + str(int(length) + 3).encode() + b"\x01" + tail
    fields = [(49, "SIM"), (35, "1"), (56, "NODE"), (34, str(seq))]
    fields += [(52, format_utc_timestamp(time.time_ns())), (112, "LOST")]
    return encode("FIX.4.4", fields)  # MsgType (35) not the third field


@pytest.mark.parametrize("damage", ["checksum", "body_length", "msg_type_not_third"])
def test_3_garbled_message_is_ignored_without_using_a_sequence_number(
    tmp_path: Path, damage: str
) -> None:
    """A garbled message (3b CheckSum, 2m BodyLength, 2t MsgType not third): the node
    ignores it, asks for no resend, and processes the next message with the same MsgSeqNum."""

    async def case(venue: RawCounterparty, adapter: FixVenueAdapter) -> None:
        venue.send_raw(_garbled(venue, damage))
        heartbeat = await still_in_step(venue)
        assert heartbeat.get(112) == "STEP"
        assert adapter.session.counters["resend_requests_sent"] == 0

    adapter = run(tmp_path, case)
    assert adapter.session.counters["garbled"] == 1


def test_2i_begin_string_changed_gets_logout_and_disconnect_from_the_node(tmp_path: Path) -> None:
    """The venue sends a FIX.4.2 message on the FIX.4.4 session: the node sends a Logout
    naming BeginString, then closes the connection."""

    async def case(venue: RawCounterparty, adapter: FixVenueAdapter) -> None:
        venue.begin_string = "FIX.4.2"
        venue.send("1", (112, "OLD"))
        after = await venue.closed()
        assert [m.msg_type for m in after] == ["5"], after
        assert "BeginString" in (after[0].get(58) or "")

    adapter = run(tmp_path, case)
    assert adapter.session.counters["fatal_errors"] == 1


def test_14a_undefined_tag_gets_reject_373_0_from_the_node(tmp_path: Path) -> None:
    """An ExecutionReport with tag 999, which FIX 4.4 does not define: the node answers
    with Reject 373=0 naming it, uses the sequence number, and applies nothing."""

    async def case(venue: RawCounterparty, adapter: FixVenueAdapter) -> None:
        seq = venue.next_seq
        venue.send("8", *REPORT, (999, "x"))
        reject = await venue.expect("3")
        assert (reject.get(45), reject.get(371), reject.get(372), reject.get(373)) == (
            str(seq),
            "999",
            "8",
            str(INVALID_TAG_NUMBER),
        )
        await still_in_step(venue)

    adapter = run(tmp_path, case)
    assert adapter.session.counters["rejects_sent"] == 1
