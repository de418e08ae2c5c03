"""FIX 4.4 session test cases against ``bastion venue sim`` over TCP, numbered as
QuickFIX's acceptance suite (``test/definitions/server/fix44``) numbers them: logon (1b,
1c), the standard header (2f, 2g, 2r), heartbeats and TestRequest (4, 6; the
counterparty logs on with a HeartBtInt of 1 s, so the venue's timers run in a test's
time), a Reject received (7), field order (15), PossResend (19), simultaneous
ResendRequests (20) and a NumInGroup of 0 (21).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bastion.fix.codec import (
    INVALID_TAG_NUMBER,
    REQUIRED_TAG_MISSING,
    SENDING_TIME_ACCURACY,
    FixMessage,
    encode,
)
from bastion.fix.timestamps import format_utc_timestamp
from bastion.venue_server.server import VenueSimServer
from kit.fix_conformance import LOGON, ORDER, PASSWORD, logon, run, still_in_step
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


def _order(cl_ord_id: str) -> list[tuple[int, object]]:
    return [(11, cl_ord_id), *(f for f in ORDER if f[0] != 11)]


def _in(seconds: float) -> str:
    return format_utc_timestamp(time.time_ns() + int(seconds * 1e9))


# -- 1: logon ------------------------------------------------------------------------------------
def test_1b_second_logon_without_epoch_is_closed_without_a_message(tmp_path: Path) -> None:
    """A second connection logs on to the session already logged on, without a
    FencingEpoch (8014): it is closed without a message (any message would carry a
    sequence number of the live session), and the first one goes on in step."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        second = RawCounterparty("NODE", "SIM")
        await second.connect(server.port)
        second.send("A", *LOGON, seq=client.next_seq)
        assert await second.closed() == []
        await second.close()
        await still_in_step(client)

    server = run(tmp_path, case)
    assert server.acceptor.counters["takeovers"] == 0


def test_1b_second_logon_with_equal_epoch_takes_the_session_over(tmp_path: Path) -> None:
    """With fencing (docs/ha.md), a second Logon carrying an epoch as new as the live
    one's is a standby taking over: it gets the session, which goes on at the next
    sequence numbers, and the first connection is dropped without a message."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client, (8014, "3"))
        second = RawCounterparty("NODE", "SIM")
        await second.connect(server.port)
        second.send("A", *LOGON, (8014, "3"), seq=client.next_seq)
        await second.expect("A")
        assert await client.closed() == []
        await still_in_step(second)
        await second.close()

    server = run(tmp_path, case)
    assert server.acceptor.counters["takeovers"] == 1


@pytest.mark.parametrize("wrong", ["sender_comp_id", "target_comp_id", "password"])
def test_1c_logon_with_wrong_comp_id_or_password_is_refused_using_no_sequence_number(
    tmp_path: Path, wrong: str
) -> None:
    """A Logon naming no session of the venue (a wrong SenderCompID or TargetCompID) is
    closed without a message; one with a wrong password gets a Logout saying why. No
    sequence number is used either way: the account then logs on at 1."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        sender, target = "NODE", "SIM"
        if wrong == "sender_comp_id":
            sender = "INTRUDER"
        elif wrong == "target_comp_id":
            target = "ELSEWHERE"
        bad = RawCounterparty(sender, target)
        await bad.connect(server.port)
        password = "not-the-password" if wrong == "password" else PASSWORD
        bad.send("A", *(f for f in LOGON if f[0] != 554), (554, password))
        after = await bad.closed()
        await bad.close()
        if wrong == "password":
            assert [m.msg_type for m in after] == ["5"], after
        else:
            assert after == []
        answer = await logon(client)
        assert answer.get(34) == "1"
        await still_in_step(client)

    run(tmp_path, case)


# -- 2: the standard header ----------------------------------------------------------------------
@pytest.mark.parametrize("seq", ["too_low", "expected"])
def test_2f_poss_dup_with_orig_sending_time_after_sending_time_gets_reject_and_logout(
    tmp_path: Path, seq: str
) -> None:
    """PossDupFlag=Y with an OrigSendingTime later than SendingTime: Reject 373=10 (ref
    122), then Logout and disconnect. A message at the expected number has used it: the
    next logon goes on from the number after it, with no ResendRequest."""
    number = 0

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        nonlocal number
        await logon(client)
        client.send("D", *_order("C1"))
        await client.expect("8")
        number = 2 if seq == "too_low" else client.next_seq
        client.send("D", (43, "Y"), (122, _in(10)), *_order("C1"), seq=number)
        reject = await client.expect("3")
        assert (reject.get(45), reject.get(371), reject.get(372), reject.get(373)) == (
            str(number),
            "122",
            "D",
            str(SENDING_TIME_ACCURACY),
        )
        after = await client.closed()
        assert [m.msg_type for m in after] == ["5"], after

    run(tmp_path, case)
    if seq == "too_low":
        return

    async def again(client: RawCounterparty, server: VenueSimServer) -> None:
        client.send("A", *LOGON, seq=number + 1)
        await client.expect("A")
        await still_in_step(client)  # a ResendRequest first would fail this

    run(tmp_path, again)


@pytest.mark.parametrize("seq", ["too_low", "expected"])
def test_2g_poss_dup_without_orig_sending_time_gets_reject_373_1(tmp_path: Path, seq: str) -> None:
    """PossDupFlag=Y without OrigSendingTime (122): Reject 373=1 naming 122; its sequence
    number is used, and the session stays in step."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        client.send("D", *_order("C1"))
        await client.expect("8")
        number = 2 if seq == "too_low" else client.next_seq
        client.send("D", (43, "Y"), *_order("C1"), seq=number)
        reject = await client.expect("3")
        assert (reject.get(45), reject.get(371), reject.get(373)) == (
            str(number),
            "122",
            str(REQUIRED_TAG_MISSING),
        )
        await still_in_step(client)

    server = run(tmp_path, case)
    assert server.counters["orders_received"] == 1


def test_2r_message_type_not_supported_gets_business_message_reject(tmp_path: Path) -> None:
    """A valid ExecutionReport sent to the venue, which does not take one:
    BusinessMessageReject 380=3 naming its MsgSeqNum and MsgType; the session stays in
    step."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        report = [(37, "id"), (17, "id"), (150, "0"), (39, "0"), (55, "XYZ.SIM"), (54, "1")]
        report += [(151, "100"), (14, "0"), (6, "0")]
        seq = client.send("8", *report)
        reject = await client.expect("j")
        assert (reject.get(45), reject.get(372), reject.get(380)) == (str(seq), "8", "3")
        await still_in_step(client)

    run(tmp_path, case)


def test_2b_messages_after_a_gap_are_queued_and_processed_in_order(tmp_path: Path) -> None:
    """Two orders with MsgSeqNum too high: one ResendRequest from the expected number,
    nothing booked; once the missing message comes (resent, PossDup), the three are
    processed in sequence order."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        client.send("D", *_order("C3"), seq=3)
        client.send("D", *_order("C4"), seq=4)
        resend = await client.expect("2")
        assert (resend.get(7), resend.get(16)) == ("2", "0")
        assert server.counters["orders_received"] == 0
        client.send("D", (43, "Y"), (122, _in(0)), *_order("C2"), seq=2)
        reports = [await client.expect("8") for _ in range(3)]
        assert [m.get(11) for m in reports] == ["C2", "C3", "C4"]
        client.next_seq = 5
        await still_in_step(client)

    run(tmp_path, case)


@pytest.mark.parametrize(
    ("defect", "reason", "ref_tag"),
    [
        ("undefined_tag", INVALID_TAG_NUMBER, 9999),
        ("poss_dup_without_122", REQUIRED_TAG_MISSING, 122),
    ],
)
def test_defective_message_with_seq_too_high_is_asked_for_then_rejected_in_turn(
    tmp_path: Path, defect: str, reason: int, ref_tag: int
) -> None:
    """An invalid message (by the dictionary, or by its header) whose MsgSeqNum is too
    high shows a gap first: a ResendRequest from the expected number, no Reject yet;
    once the gap is filled it is rejected in its turn (RefSeqNum its number, which is
    used), and the session is in step."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        if defect == "undefined_tag":
            bad = client.send("D", *ORDER, (9999, "x"), seq=5)
        else:
            bad = client.send("D", (43, "Y"), *ORDER, seq=5)
        resend = await client.expect("2")
        assert (resend.get(7), resend.get(16)) == ("2", "0")
        client.send("4", (43, "Y"), (122, _in(0)), (123, "Y"), (36, bad), seq=2)
        reject = await client.expect("3")
        assert (reject.get(45), reject.get(371), reject.get(373)) == (
            str(bad),
            str(ref_tag),
            str(reason),
        )
        client.next_seq = bad + 1
        await still_in_step(client)

    server = run(tmp_path, case)
    assert server.counters["orders_received"] == 0


# -- 7, 15: a Reject received, fields in another order -------------------------------------------
def test_7_reject_received_is_counted_and_uses_its_sequence_number(tmp_path: Path) -> None:
    """A Reject from the counterparty is logged and counted, and its sequence number used:
    the next message is in step."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        client.send("3", (45, "1"))
        await still_in_step(client)

    server = run(tmp_path, case)
    assert _session_counters(server)["rejects_received"] == 1


def test_15_header_and_body_fields_in_another_order_are_accepted(tmp_path: Path) -> None:
    """A NewOrderSingle whose header fields after MsgType and whose body fields come in
    another order than the specification lists them: processed as any other."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        header = [(52, format_utc_timestamp(time.time_ns())), (34, "2"), (56, "SIM"), (49, "NODE")]
        client.send_raw(encode("FIX.4.4", [(35, "D"), *header, *reversed(ORDER)]))
        client.next_seq = 3
        report = await client.expect("8")
        assert (report.get(11), report.get(150)) == ("C1", "0")
        await still_in_step(client)

    run(tmp_path, case)


# -- 19: PossResend --------------------------------------------------------------------------------
def test_19a_poss_resend_of_an_order_already_received_is_answered_with_its_status(
    tmp_path: Path,
) -> None:
    """A NewOrderSingle with PossResend=Y (97) whose ClOrdID the venue has: answered with
    the order's status (ExecType I), never booked twice nor rejected as a duplicate."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        client.send("D", *_order("C19"))
        assert (await client.expect("8")).get(150) == "0"
        client.send("D", (97, "Y"), *_order("C19"))
        status = await client.expect("8")
        assert (status.get(11), status.get(150)) == ("C19", "I")
        await still_in_step(client)
        assert len(server.ledger.open_orders()) == 1

    run(tmp_path, case)


def test_19b_poss_resend_of_an_order_not_received_is_processed(tmp_path: Path) -> None:
    """A NewOrderSingle with PossResend=Y whose ClOrdID is new: processed normally."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        client.send("D", (97, "Y"), *_order("C19B"))
        report = await client.expect("8")
        assert (report.get(11), report.get(150)) == ("C19B", "0")
        await still_in_step(client)

    run(tmp_path, case)


# -- 20, 21: simultaneous ResendRequests, NumInGroup 0 ---------------------------------------------
def test_20_simultaneous_resend_requests_each_answered_before_its_own_gap_fills(
    tmp_path: Path,
) -> None:
    """Both sides miss messages at once: the venue asks for 4 onwards; the counterparty's
    own ResendRequest (2 to 3), arriving while the venue's gap is open, is answered at
    once with the two ExecutionReports PossDup; the gap then filled, both are in step."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        for cl_ord_id in ("C2", "C3"):
            client.send("D", *_order(cl_ord_id))
            await client.expect("8")
        client.send("0", seq=7)
        resend = await client.expect("2")
        assert (resend.get(7), resend.get(16)) == ("4", "0")
        client.send("2", (7, 2), (16, 3), seq=8)
        resent = [await client.expect("8"), await client.expect("8")]
        assert [(m.get(34), m.get(43), m.get(11)) for m in resent] == [
            ("2", "Y", "C2"),
            ("3", "Y", "C3"),
        ]
        for number in (4, 5, 6):
            client.send("0", (43, "Y"), (122, _in(0)), seq=number)
        client.next_seq = 9
        await still_in_step(client)

    server = run(tmp_path, case)
    assert server.counters["orders_received"] == 2


def test_21_repeating_group_with_num_in_group_zero_is_processed(tmp_path: Path) -> None:
    """NoPartyIDs (453) = 0, a repeating group with no entries: the order is processed."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        client.send("D", *ORDER, (453, "0"))
        report: FixMessage = await client.expect("8")
        assert (report.get(11), report.get(150)) == ("C1", "0")
        await still_in_step(client)

    run(tmp_path, case)
