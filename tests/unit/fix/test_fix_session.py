"""The FIX session state machine: two sessions wired back to back in memory, a fake clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bastion.fix.codec import (
    COMPID_PROBLEM,
    INCORRECT_DATA_FORMAT,
    INVALID_MSG_TYPE,
    SENDING_TIME_ACCURACY,
    VALUE_INCORRECT,
    FixMessage,
    encode,
)
from bastion.fix.rejects import BusinessReject, RejectMessage
from bastion.fix.schedule import SessionSchedule
from bastion.fix.session import SessionState
from kit.fix_pair import (
    ACC,
    INI,
    PASSWORD,
    T0,
    TRANSACT_TIME,
    FakeClock,
    Pair,
    Pipe,
    execution_report,
    frame,
    new_order,
    order_body,
    parse_all,
    settings,
)

S = 1_000_000_000


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """A logged-on initiator/acceptor pair (CLIENT -> VENUE), heartbeat 30 s."""
    p = Pair(tmp_path)
    p.logon()
    yield p
    p.close()


def order(coid: str) -> FixMessage:
    return new_order(coid)


def report(exec_id: str) -> FixMessage:
    return execution_report(exec_id)


def sent(pipe: Pipe) -> list[FixMessage]:
    """The messages waiting in ``pipe`` (taken out: they will not be delivered)."""
    return parse_all(pipe.take())


def types(messages: list[FixMessage]) -> list[str]:
    return [m.msg_type for m in messages]


# -- logon ---------------------------------------------------------------------------------
def test_when_credentials_right_then_both_sides_log_on(pair: Pair) -> None:
    """The acceptor checks 553/554 through ``authenticate`` and answers with its own Logon."""
    assert pair.ini.state is SessionState.ACTIVE and pair.acc.state is SessionState.ACTIVE
    assert (pair.ini_app.logons, pair.acc_app.logons) == (1, 1)
    (logon,) = pair.to_acc.messages()
    assert logon.msg_type == "A"
    assert (logon.get(553), logon.get(554), logon.get(108), logon.get(98)) == (
        "trader",
        PASSWORD,
        "30",
        "0",
    )
    (answer,) = pair.to_ini.messages()
    assert answer.msg_type == "A" and 554 not in answer and answer.get(108) == "30"
    assert pair.ini.store.next_sender_seq == pair.acc.store.next_target_seq == 2


def test_when_logon_fields_set_then_initiator_logon_carries_them_after_credentials(
    tmp_path: Path,
) -> None:
    """``logon_fields`` (e.g. 8013=Y) follow 553/554 on the initiator's Logon only."""
    p = Pair(
        tmp_path,
        ini_settings=settings(
            INI, ACC, username="trader", password=PASSWORD, logon_fields=((8013, "Y"),)
        ),
        acc_settings=settings(ACC, INI, logon_fields=((8013, "Y"),)),
    )
    p.logon()
    (logon,) = p.to_acc.messages()
    assert [t for t, _ in logon.fields][-3:] == [553, 554, 8013]
    assert logon.get(8013) == "Y"
    (answer,) = p.to_ini.messages()
    assert 8013 not in answer  # the acceptor's answer is a plain Logon
    p.close()


def test_when_password_wrong_then_logout_with_text_and_disconnect(tmp_path: Path) -> None:
    """A refused Logon is answered by a Logout naming why, then the connection drops."""
    p = Pair(
        tmp_path,
        ini_settings=settings(INI, ACC, username="trader", password="guess"),
    )
    p.connect()
    p.pump()
    (logout,) = p.to_ini.messages()
    assert logout.msg_type == "5"
    assert logout.get(58) == "invalid username or password"
    assert p.acc.counters["logons_refused"] == 1
    assert not p.acc.connected and not p.ini.connected
    assert p.acc.disconnect_reason == "logon refused: invalid username or password"
    assert "invalid username or password" in p.ini.disconnect_reason
    assert (p.ini_app.logons, p.acc_app.logons) == (0, 0)
    p.close()


def test_when_first_message_is_not_logon_then_acceptor_disconnects(tmp_path: Path) -> None:
    """An acceptor drops a connection whose first message is not a Logon, without a Logout."""
    p = Pair(tmp_path)
    p.acc.connection_made(p.to_ini.write, p.to_ini.close, initiator=False)
    p.acc.data_received(frame("D", *order_body("x"), seq=1))
    assert not p.acc.connected
    assert "not a Logon" in p.acc.disconnect_reason
    assert p.to_ini.wire == []
    p.close()


def test_when_no_logon_within_timeout_then_disconnect(tmp_path: Path) -> None:
    """A connection that never logs on is dropped after ``logon_timeout_s``."""
    p = Pair(tmp_path)
    p.connect()  # the Logon is never delivered
    p.clock.advance(9.9)
    p.acc.tick()
    assert p.acc.connected
    p.clock.advance(0.2)
    p.acc.tick()
    assert not p.acc.connected and p.acc.disconnect_reason == "no Logon within 10 s"
    p.close()


def test_when_logout_requested_then_counterparty_confirms_and_both_disconnect(
    pair: Pair,
) -> None:
    """``logout`` sends 35=5, the counterparty answers 35=5, and both sides close."""
    pair.ini.logout("bye")
    assert pair.ini.state is SessionState.LOGGING_OUT
    pair.pump()
    assert not pair.ini.connected and not pair.acc.connected
    assert pair.ini.disconnect_reason == "logout confirmed"
    assert pair.acc.disconnect_reason == "logout by counterparty: bye"
    assert pair.ini_app.logouts == ["logout confirmed"]
    assert pair.acc_app.logouts == ["logout by counterparty: bye"]


def test_when_logout_not_confirmed_then_disconnect_after_timeout(pair: Pair) -> None:
    """A Logout that is never answered ends the connection after ``logout_timeout_s``."""
    pair.ini.logout()
    pair.clock.advance(2.5)
    pair.ini.tick()
    assert not pair.ini.connected
    assert pair.ini.disconnect_reason == "logout not confirmed in time"


# -- heartbeats ----------------------------------------------------------------------------
def test_when_silent_for_heartbeat_interval_then_heartbeat_sent(pair: Pair) -> None:
    """After HeartBtInt seconds without sending, a session sends a Heartbeat (35=0)."""
    pair.tick(29.9)
    assert pair.to_acc.pending == [] and pair.to_ini.pending == []
    pair.tick(0.1)
    assert types(sent(pair.to_acc)) == ["0"]
    assert types(sent(pair.to_ini)) == ["0"]


def test_when_inbound_silent_then_test_request_and_heartbeat_timeout(pair: Pair) -> None:
    """1.2 x HeartBtInt of silence sends a TestRequest; one more HeartBtInt unanswered drops it."""
    pair.clock.advance(35.9)
    pair.ini.tick()
    assert "1" not in types(sent(pair.to_acc))
    pair.clock.advance(0.1)
    pair.ini.tick()
    (test_request,) = sent(pair.to_acc)
    assert test_request.msg_type == "1" and test_request.get(112) == "TEST-1"
    assert pair.ini.counters["test_requests_sent"] == 1
    pair.clock.advance(29.9)
    pair.ini.tick()
    assert pair.ini.logged_on
    pair.clock.advance(0.1)
    pair.ini.tick()
    assert not pair.ini.connected
    assert pair.ini.disconnect_reason == "heartbeat timeout: no answer to TestRequest"
    assert pair.ini.counters["heartbeat_timeouts"] == 1
    assert pair.ini_app.logouts == ["heartbeat timeout: no answer to TestRequest"]


def test_when_test_request_answered_then_session_stays_up(pair: Pair) -> None:
    """The counterparty answers a TestRequest with a Heartbeat echoing TestReqID (112)."""
    pair.clock.advance(36)
    pair.ini.tick()
    pair.pump()
    heartbeat = pair.to_ini.messages()[-1]
    assert heartbeat.msg_type == "0" and heartbeat.get(112) == "TEST-1"
    pair.clock.advance(30)
    pair.ini.tick()
    assert pair.ini.logged_on and pair.ini.counters["heartbeat_timeouts"] == 0


@pytest.mark.parametrize("test_req_id", ["WRONG", None])
def test_when_heartbeat_lacks_the_test_req_id_then_test_request_still_times_out(
    pair: Pair, test_req_id: str | None
) -> None:
    """A Heartbeat with another TestReqID, or none, does not answer the TestRequest: it is
    counted, and the session drops when the grace period ends."""
    pair.clock.advance(36)
    pair.ini.tick()
    assert types(sent(pair.to_acc)) == ["1"]
    body = [] if test_req_id is None else [(112, test_req_id)]
    pair.ini.data_received(
        frame("0", *body, seq=2, sender=ACC, target=INI, sending_ns=pair.clock.ns)
    )
    assert pair.ini.counters["heartbeats_not_answering"] == 1
    pair.clock.advance(30)
    pair.ini.tick()
    assert not pair.ini.connected
    assert pair.ini.counters["heartbeat_timeouts"] == 1


def test_when_application_message_arrives_then_test_request_still_awaits_its_heartbeat(
    pair: Pair,
) -> None:
    """Only the Heartbeat with the TestReqID answers a TestRequest (it may come after
    other messages): an ExecutionReport in between does not."""
    pair.clock.advance(36)
    pair.ini.tick()
    sent(pair.to_acc)
    pair.acc.send(report("E1"))
    pair.pump()
    pair.clock.advance(30)
    pair.ini.tick()
    assert not pair.ini.connected and pair.ini.counters["heartbeat_timeouts"] == 1


# -- sequence numbers, gaps and resends ------------------------------------------------------
def test_when_inbound_gap_then_resend_request_and_messages_delivered_in_order(
    pair: Pair,
) -> None:
    """A lost message triggers ResendRequest(7=expected, 16=0); queued messages follow in order."""
    for n in range(1, 5):
        pair.acc.send(report(f"E{n}"))
    del pair.to_ini.pending[1]  # E2 (seq 3) is lost
    pair.ini.data_received(pair.to_ini.take())
    assert [m.get(17) for m in pair.ini_app.messages] == ["E1"]
    (resend_request,) = sent(pair.to_acc)
    assert resend_request.msg_type == "2"
    assert (resend_request.get(7), resend_request.get(16)) == ("3", "0")
    assert pair.ini.counters["gaps_detected"] == 1
    pair.acc.data_received(resend_request.raw or b"")
    pair.pump()
    assert [m.get(17) for m in pair.ini_app.messages] == ["E1", "E2", "E3", "E4"]
    assert pair.ini.store.next_target_seq == pair.acc.store.next_sender_seq
    assert pair.ini.counters["poss_dup_ignored"] == 2  # E3 and E4 came again as resends


def test_when_resend_requested_then_app_messages_resent_and_admin_gap_filled(
    pair: Pair,
) -> None:
    """Resends carry 43=Y and 122 = first SendingTime; admin messages become one GapFill."""
    pair.clock.advance(1)
    pair.ini.send(order("O2"))  # seq 2
    first_time = pair.to_acc.messages()[-1].get(52)
    pair.clock.advance(30)
    pair.ini.tick()  # heartbeat, seq 3
    pair.clock.advance(1)
    pair.ini.send(order("O4"))  # seq 4
    pair.to_acc.pending.clear()  # all lost
    pair.clock.advance(1)
    pair.ini.data_received(
        frame("2", (7, 2), (16, 0), seq=2, sender=ACC, target=INI, sending_ns=pair.clock.ns)
    )
    answer = sent(pair.to_acc)
    assert types(answer) == ["D", "4", "D"]
    resent, gap_fill, resent2 = answer
    assert resent.get(34) == "2" and resent.get(11) == "O2"
    assert resent.get(43) == "Y"
    assert resent.get(122) == first_time
    assert resent.get(52) != first_time
    assert [t for t, _ in resent.fields[:7]] == [35, 49, 56, 34, 43, 52, 122]
    assert (gap_fill.get(34), gap_fill.get(123), gap_fill.get(36), gap_fill.get(43)) == (
        "3",
        "Y",
        "4",
        "Y",
    )
    assert resent2.get(34) == "4" and resent2.get(11) == "O4"
    assert pair.ini.counters["messages_resent"] == 2
    assert pair.ini.counters["gap_fills_sent"] == 1


def test_when_resend_range_ends_with_admin_messages_then_trailing_gap_fill(
    pair: Pair,
) -> None:
    """Admin messages at the end of the range are gap-filled up to the last sent number + 1."""
    pair.ini.send(order("O2"))  # seq 2
    pair.tick(30)  # heartbeats, seq 3
    pair.tick(30)  # seq 4
    pair.to_acc.pending.clear()
    pair.ini.data_received(
        frame("2", (7, 1), (16, 99), seq=2, sender=ACC, target=INI, sending_ns=pair.clock.ns)
    )
    answer = sent(pair.to_acc)
    assert types(answer) == ["4", "D", "4"]
    assert (answer[0].get(34), answer[0].get(36)) == ("1", "2")  # the Logon
    assert (answer[2].get(34), answer[2].get(36)) == ("3", "5")


def test_when_poss_dup_below_expected_then_ignored(pair: Pair) -> None:
    """A PossDup message with a sequence number already seen is dropped silently."""
    pair.ini.send(order("O2"))
    pair.pump()
    assert len(pair.acc_app.messages) == 1
    pair.acc.data_received(
        frame("D", *order_body("O2"), seq=2, sending_ns=T0 + S, orig_sending_ns=T0)
    )
    assert len(pair.acc_app.messages) == 1
    assert pair.acc.counters["poss_dup_ignored"] == 1
    assert pair.acc.logged_on and pair.to_ini.pending == []


def test_when_seq_too_low_without_poss_dup_then_logout_and_disconnect(pair: Pair) -> None:
    """MsgSeqNum below the expected one, without PossDupFlag, is fatal: Logout, then drop."""
    pair.ini.send(order("O2"))
    pair.pump()
    pair.acc.data_received(frame("D", *order_body("again"), seq=2))
    (logout,) = sent(pair.to_ini)
    assert logout.msg_type == "5"
    assert logout.get(58) == "MsgSeqNum too low, expecting 3 but received 2"
    assert not pair.acc.connected
    assert pair.acc.disconnect_reason.startswith("MsgSeqNum too low")
    assert len(pair.acc_app.messages) == 1


def test_when_sequence_reset_then_next_expected_is_new_seq_no(pair: Pair) -> None:
    """SequenceReset-Reset (no 123=Y) sets the next expected number whatever 34 says."""
    pair.acc.data_received(frame("4", (36, 10), seq=999))
    assert pair.acc.store.next_target_seq == 10
    assert pair.acc.counters["sequence_resets_received"] == 1
    pair.acc.data_received(frame("D", *order_body("O10"), seq=10))
    assert [m.get(11) for m in pair.acc_app.messages] == ["O10"]
    assert pair.to_ini.pending == []  # no ResendRequest


def test_when_sequence_reset_goes_backwards_then_reject(pair: Pair) -> None:
    """A SequenceReset-Reset to a number below the expected one is rejected (373=5)."""
    pair.acc.data_received(frame("4", (36, 1), seq=2))
    (reject,) = sent(pair.to_ini)
    assert reject.msg_type == "3"
    assert (reject.get(373), reject.get(371)) == (str(VALUE_INCORRECT), "36")
    assert pair.acc.store.next_target_seq == 2


def test_when_gap_fill_then_skipped_numbers_are_not_requested(pair: Pair) -> None:
    """A SequenceReset-GapFill at the expected number moves the expected number to 36."""
    pair.acc.data_received(frame("4", (123, "Y"), (36, 5), seq=2, orig_sending_ns=T0))
    pair.acc.data_received(frame("D", *order_body("O5"), seq=5))
    assert pair.acc.store.next_target_seq == 6
    assert [m.get(11) for m in pair.acc_app.messages] == ["O5"]
    assert pair.acc.counters["gap_fills_received"] == 1


# -- rejects ----------------------------------------------------------------------------------
def test_when_comp_id_wrong_then_reject_373_9_then_logout(pair: Pair) -> None:
    """A message from an unexpected SenderCompID gets Reject 373=9, then Logout and a drop."""
    pair.acc.data_received(frame("D", *order_body("x"), seq=2, sender="INTRUDER"))
    reject, logout = sent(pair.to_ini)
    assert reject.msg_type == "3"
    assert (reject.get(373), reject.get(371), reject.get(45)) == (str(COMPID_PROBLEM), "49", "2")
    assert logout.msg_type == "5" and logout.get(58) == "CompID problem"
    assert not pair.acc.connected
    assert pair.acc_app.messages == []


def test_when_target_comp_id_wrong_then_reject_names_tag_56(pair: Pair) -> None:
    """A wrong TargetCompID is the same CompID problem, naming tag 56."""
    pair.acc.data_received(frame("D", *order_body("x"), seq=2, target="SOMEONE"))
    reject, logout = sent(pair.to_ini)
    assert (reject.get(373), reject.get(371)) == (str(COMPID_PROBLEM), "56")
    assert logout.msg_type == "5"


def test_when_sending_time_off_then_reject_373_10_then_logout(pair: Pair) -> None:
    """SendingTime more than ``max_sending_time_skew_s`` away is Reject 373=10 + Logout."""
    pair.acc.data_received(frame("D", *order_body("x"), seq=2, sending_ns=T0 - 121 * S))
    reject, logout = sent(pair.to_ini)
    assert reject.msg_type == "3"
    assert (reject.get(373), reject.get(371)) == (str(SENDING_TIME_ACCURACY), "52")
    assert logout.msg_type == "5" and logout.get(58) == "SendingTime accuracy problem"
    assert not pair.acc.connected


def test_when_sending_time_within_skew_then_accepted(pair: Pair) -> None:
    """SendingTime 119 s off is within the default 120 s."""
    pair.acc.data_received(frame("D", *order_body("x"), seq=2, sending_ns=T0 + 119 * S))
    assert [m.get(11) for m in pair.acc_app.messages] == ["x"]


def test_when_sending_time_malformed_then_reject_and_seq_consumed(pair: Pair) -> None:
    """A SendingTime that is not a UTCTimestamp is rejected (373=6) and uses its number."""
    pair.acc.data_received(
        encode("FIX.4.4", [(35, "D"), (49, INI), (56, ACC), (34, "2"), (52, "yesterday")])
    )
    (reject,) = sent(pair.to_ini)
    assert (reject.get(373), reject.get(371)) == (str(INCORRECT_DATA_FORMAT), "52")
    assert pair.acc.store.next_target_seq == 3 and pair.acc.logged_on
    assert pair.acc_app.messages == []


def test_when_msg_type_unknown_then_reject_373_11(pair: Pair) -> None:
    """MsgType ZZ is not FIX 4.4: Reject 373=11 naming 35; the session carries on."""
    pair.acc.data_received(frame("ZZ", (58, "what"), seq=2))
    (reject,) = sent(pair.to_ini)
    assert reject.msg_type == "3"
    assert (reject.get(45), reject.get(371), reject.get(372), reject.get(373)) == (
        "2",
        "35",
        "ZZ",
        str(INVALID_MSG_TYPE),
    )
    assert pair.acc.logged_on and pair.acc.store.next_target_seq == 3
    assert pair.acc_app.messages == []


def test_when_handler_raises_reject_message_then_reject_with_tag_and_reason(pair: Pair) -> None:
    """``RejectMessage`` from the application becomes a Reject carrying 371 and 373."""

    def handler(message: FixMessage) -> None:
        raise RejectMessage(VALUE_INCORRECT, 54, "bad side")

    pair.acc_app.handler = handler
    pair.ini.send(order("O2"))
    pair.pump()
    reject = pair.to_ini.messages()[-1]
    assert reject.msg_type == "3"
    assert (reject.get(45), reject.get(371), reject.get(372), reject.get(373), reject.get(58)) == (
        "2",
        "54",
        "D",
        "5",
        "bad side",
    )
    assert pair.ini_app.messages[-1].msg_type == "3"  # a Reject reaches the application
    assert pair.acc.store.next_target_seq == 3


def test_when_handler_raises_business_reject_then_35_j(pair: Pair) -> None:
    """``BusinessReject`` becomes a BusinessMessageReject with 380, 379 and the text."""

    def handler(message: FixMessage) -> None:
        raise BusinessReject(1, "unknown order", ref_id="O2")

    pair.acc_app.handler = handler
    pair.ini.send(order("O2"))
    pair.pump()
    reject = pair.to_ini.messages()[-1]
    assert reject.msg_type == "j"
    assert (reject.get(45), reject.get(372), reject.get(379), reject.get(380)) == (
        "2",
        "D",
        "O2",
        "1",
    )
    assert reject.get(58) == "unknown order"
    assert pair.acc.counters["business_rejects_sent"] == 1


def test_when_handler_fails_then_business_reject_and_session_survives(pair: Pair) -> None:
    """A handler bug answers 35=j (380=0) and the next message is still processed."""
    calls = []

    def handler(message: FixMessage) -> None:
        calls.append(message.get(11))
        if message.get(11) == "boom":
            raise KeyError("bug")

    pair.acc_app.handler = handler
    pair.ini.send(order("boom"))
    pair.ini.send(order("fine"))
    pair.pump()
    assert calls == ["boom", "fine"]
    assert [m.get(11) for m in pair.acc_app.messages] == ["fine"]
    business_reject = next(m for m in pair.to_ini.messages() if m.msg_type == "j")
    assert (business_reject.get(380), business_reject.get(45)) == ("0", "2")
    assert pair.acc.counters["handler_errors"] == 1
    assert pair.acc.logged_on and pair.ini.logged_on


def test_when_message_malformed_then_reject_with_defect_reason(pair: Pair) -> None:
    """A well-framed message with a field without a value is answered by Reject 373=4."""
    pair.acc.data_received(
        encode(
            "FIX.4.4",
            [(35, "D"), (49, INI), (56, ACC), (34, "2"), (52, "20240102-14:30:00.000"), (11, "")],
        )
    )
    (reject,) = sent(pair.to_ini)
    assert (reject.get(373), reject.get(371)) == ("4", "11")
    assert pair.acc.store.next_target_seq == 3
    assert pair.acc_app.messages == []


def test_when_garbled_bytes_arrive_then_counted_and_ignored(pair: Pair) -> None:
    """Junk and a frame with a bad CheckSum are counted; the session goes on."""
    good = frame("D", *order_body("O2"), seq=2)
    bad = frame("D", *order_body("O3"), seq=3)
    bad = bad[:-4] + (b"000" if bad[-4:-1] != b"000" else b"001") + b"\x01"
    pair.acc.data_received(b"noise\x01noise" + bad + good)
    assert pair.acc.counters["garbled"] == 2
    assert [m.get(11) for m in pair.acc_app.messages] == ["O2"]
    assert pair.acc.logged_on


def test_when_logout_arrives_across_a_gap_then_still_honoured(pair: Pair) -> None:
    """A Logout with a sequence number above the expected one is answered and ends the session."""
    pair.acc.data_received(frame("5", (58, "closing"), seq=7))
    (answer,) = sent(pair.to_ini)
    assert answer.msg_type == "5"
    assert not pair.acc.connected
    assert pair.acc.disconnect_reason == "logout by counterparty: closing"


def test_when_logon_arrives_while_logged_on_then_reject(pair: Pair) -> None:
    """A second Logon on a logged-on session is rejected (373=99) and uses its number."""
    pair.acc.data_received(frame("A", (98, 0), (108, 30), seq=2))
    (reject,) = sent(pair.to_ini)
    assert (reject.msg_type, reject.get(373), reject.get(372)) == ("3", "99", "A")
    assert pair.acc.logged_on and pair.acc.store.next_target_seq == 3


def test_when_logon_heartbeat_invalid_then_logout(tmp_path: Path) -> None:
    """A Logon without a positive HeartBtInt (108) is answered by Logout and dropped."""
    p = Pair(tmp_path)
    p.acc.connection_made(p.to_ini.write, p.to_ini.close, initiator=False)
    p.acc.data_received(frame("A", (98, 0), (108, 0), (553, "trader"), (554, PASSWORD), seq=1))
    (logout,) = sent(p.to_ini)
    assert logout.msg_type == "5" and logout.get(58) == "HeartBtInt (108) missing or invalid"
    assert not p.acc.connected
    p.close()


def test_when_initiator_asks_other_heartbeat_then_acceptor_adopts_it(tmp_path: Path) -> None:
    """The acceptor uses the initiator's HeartBtInt and says so in its Logon answer."""
    p = Pair(
        tmp_path,
        ini_settings=settings(INI, ACC, heartbeat_s=10, username="trader", password=PASSWORD),
    )
    p.logon()
    assert p.to_ini.messages()[0].get(108) == "10"
    assert p.acc.heartbeat_s == 10
    p.tick(10)
    assert types(sent(p.to_ini)) == ["0"]
    p.close()


def test_when_batch_processed_then_unit_of_work_entered_once(pair: Pair) -> None:
    """Every message of one read is processed inside a single ``unit_of_work``."""
    entered = []

    @contextmanager
    def unit_of_work() -> Iterator[None]:
        entered.append(len(pair.acc_app.messages))
        yield

    pair.acc.unit_of_work = unit_of_work
    for n in range(3):
        pair.ini.send(order(f"O{n}"))
    pair.acc.data_received(pair.to_acc.take())
    assert entered == [0]
    assert len(pair.acc_app.messages) == 3


def test_when_unit_of_work_fails_to_commit_then_batch_output_not_written(pair: Pair) -> None:
    """If the batch cannot be committed, none of the answers it produced reach the wire."""

    @contextmanager
    def failing_commit() -> Iterator[None]:
        yield
        raise OSError("disk full at commit")

    pair.acc.unit_of_work = failing_commit
    pair.acc_app.handler = lambda message: pair.acc.send(report("E-for-" + str(message.get(11))))
    pair.ini.send(order("O2"))
    with pytest.raises(OSError, match="disk full"):
        pair.acc.data_received(pair.to_acc.take())
    assert sent(pair.to_ini) == []


# -- schedules ---------------------------------------------------------------------------------
def test_when_schedule_ends_then_session_logs_out(tmp_path: Path) -> None:
    """At the end of the daily window an active session sends Logout("end of session")."""
    schedule = SessionSchedule.parse("08:00", "17:00")
    p = Pair(
        tmp_path,
        ini_settings=settings(INI, ACC, username="trader", password=PASSWORD, schedule=schedule),
        acc_settings=settings(ACC, INI, schedule=schedule),
    )
    p.logon()  # 14:30 UTC
    p.clock.advance(2.5 * 3600 - 1)
    p.ini.tick()
    assert p.ini.logged_on
    p.pump()
    p.clock.advance(1)
    p.ini.tick()
    assert p.ini.state is SessionState.LOGGING_OUT
    p.pump()
    assert not p.ini.connected and not p.acc.connected
    assert p.acc.disconnect_reason == "logout by counterparty: end of session"
    p.close()


def test_when_new_schedule_period_then_sequence_numbers_restart(tmp_path: Path) -> None:
    """The first connection in a new daily period starts both sides at sequence number 1."""
    schedule = SessionSchedule.parse("08:00", "17:00")
    p = Pair(
        tmp_path,
        ini_settings=settings(INI, ACC, username="trader", password=PASSWORD, schedule=schedule),
        acc_settings=settings(ACC, INI, schedule=schedule),
    )
    p.logon()
    p.ini.send(order("O2"))
    p.pump()
    p.drop()
    p.clock.advance(18 * 3600)  # 08:30 the next day
    p.logon()
    assert p.to_acc.messages()[0].get(34) == "1"
    assert p.to_ini.messages()[0].get(34) == "1"
    assert p.ini.counters["resend_requests_sent"] == 0
    assert p.acc.counters["resend_requests_sent"] == 0
    p.close()


# -- persistence and reconnects ----------------------------------------------------------------
def test_when_process_restarts_then_sequence_numbers_resume(tmp_path: Path) -> None:
    """A new FixSession on the same store file continues the numbering: no resend needed."""
    p = Pair(tmp_path)
    p.logon()
    p.ini.send(order("O2"))
    p.acc.send(report("E2"))
    p.pump()
    p.drop()
    p.new_session("ini")
    p.new_session("acc")
    assert p.ini.store.next_sender_seq == 3 and p.ini.store.next_target_seq == 3
    p.logon()
    (logon,) = p.to_acc.messages()
    assert logon.get(34) == "3"
    assert p.ini.counters["resend_requests_sent"] == 0
    assert p.acc.counters["resend_requests_sent"] == 0
    p.ini.send(order("O4"))
    p.pump()
    assert [m.get(11) for m in p.acc_app.messages] == ["O2", "O4"]
    p.close()


def test_when_sent_while_disconnected_then_delivered_by_resend_after_reconnect(
    pair: Pair,
) -> None:
    """Messages sent while down are stored, then delivered once and in order by the resend."""
    pair.drop()
    assert pair.ini.send(order("O2")) == 2
    assert pair.ini.send(order("O3")) == 3
    pair.acc.send(report("E2"))
    pair.logon()
    pair.pump()
    assert [m.get(11) for m in pair.acc_app.messages] == ["O2", "O3"]
    assert all(m.get(43) == "Y" for m in pair.acc_app.messages)
    assert [m.get(17) for m in pair.ini_app.messages] == ["E2"]
    assert pair.ini.store.next_target_seq == pair.acc.store.next_sender_seq
    assert pair.acc.store.next_target_seq == pair.ini.store.next_sender_seq


def test_when_gap_fill_before_logon_and_order_lost_in_a_drop_then_gap_filled_not_resent(
    tmp_path: Path,
) -> None:
    """With ``gap_fill_before_logon`` (the node's side), an order whose bytes died with the
    connection is answered with a GapFill on the next logon, a minute later: never sent late.
    Messages stored while down are gap-filled the same way."""
    p = Pair(tmp_path)
    p.ini.gap_fill_before_logon = True
    p.logon()
    p.ini.send(order("O-lost"))
    p.drop()  # bytes in flight lost: the venue never saw the order
    p.ini.send(order("O-down"))
    p.tick(60)
    p.logon()
    p.pump()
    assert [m for m in p.acc_app.messages if m.msg_type == "D"] == []
    assert p.ini.counters["messages_resent"] == 0
    assert p.ini.counters["gap_fills_sent"] >= 1
    assert p.acc.store.next_target_seq == p.ini.store.next_sender_seq
    p.ini.send(order("O-new"))
    p.pump()
    assert [m.get(11) for m in p.acc_app.messages] == ["O-new"]
    p.close()


def test_when_type_resent_below_floor_then_only_it_goes_out_again_after_a_drop(
    tmp_path: Path,
) -> None:
    """``resent_below_floor`` lets chosen types (the node's cancels) through the floor:
    they are resent with PossDup, the rest of the range is gap-filled around them."""
    p = Pair(tmp_path)
    p.ini.gap_fill_before_logon = True
    p.ini.resent_below_floor = frozenset({"F"})
    p.logon()
    p.ini.send(order("O2"))
    p.ini.send(FixMessage.of("F", (41, "O1"), (11, "O1/1"), (54, "1"), (60, TRANSACT_TIME)))
    p.ini.send(order("O4"))
    p.drop()
    p.logon()
    p.pump()
    assert [(m.msg_type, m.get(11), m.get(43)) for m in p.acc_app.messages] == [("F", "O1/1", "Y")]
    assert p.acc.store.next_target_seq == p.ini.store.next_sender_seq
    p.close()


def test_when_gap_fill_before_logon_then_messages_of_the_current_logon_still_resent(
    tmp_path: Path,
) -> None:
    """The floor moves only at a logon: a message lost in flight on a live connection is
    resent (PossDup) when the counterparty notices the gap."""
    p = Pair(tmp_path)
    p.ini.gap_fill_before_logon = True
    p.logon()
    p.ini.send(order("O2"))
    p.to_acc.pending.clear()  # lost in flight, the connection stays up
    p.ini.send(order("O3"))
    p.pump()
    assert [(m.get(11), m.get(43)) for m in p.acc_app.messages] == [("O2", "Y"), ("O3", None)]
    p.close()


def test_when_reset_on_logon_then_both_sides_restart_at_one(tmp_path: Path) -> None:
    """141=Y on the Logon resets both sides' numbers to 1 at every logon."""
    p = Pair(
        tmp_path,
        ini_settings=settings(INI, ACC, username="trader", password=PASSWORD, reset_on_logon=True),
    )
    p.logon()
    for n in range(3):
        p.ini.send(order(f"O{n}"))
        p.acc.send(report(f"E{n}"))
    p.pump()
    assert p.ini.store.next_sender_seq == 5
    p.drop()
    p.logon()
    logon = p.to_acc.messages()[0]
    answer = p.to_ini.messages()[0]
    assert (logon.get(34), logon.get(141)) == ("1", "Y")
    assert (answer.get(34), answer.get(141)) == ("1", "Y")
    for store in (p.ini.store, p.acc.store):
        assert (store.next_sender_seq, store.next_target_seq) == (2, 2)
    assert p.ini.store.sent_messages(1, 100) == []
    p.close()


# -- secrets -----------------------------------------------------------------------------------
@contextmanager
def all_logs() -> Iterator[list[dict[str, object]]]:
    """Every structlog event, debug included, whatever level an earlier test configured."""
    old = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs  # type: ignore[misc]
    finally:
        structlog.configure(wrapper_class=old)


def test_when_session_runs_then_password_never_logged_or_repr(tmp_path: Path) -> None:
    """The password is on the wire only in the initiator's Logon; never in logs or reprs."""
    with all_logs() as logs:
        p = Pair(tmp_path)
        p.ini.message_log = p.acc.message_log = True
        p.connect()
        p.to_acc.pending.insert(0, b"junk")  # a garbled frame is logged too
        p.pump()
        p.ini.send(order("O2"))
        p.pump()
        p.drop()
        p.new_session("ini").message_log = True
        p.logon()  # logon again: the password goes out once more, plus a resend
        p.ini.data_received(
            frame("2", (7, 1), (16, 0), seq=99, sender=ACC, target=INI, sending_ns=p.clock.ns)
        )
        p.pump()
        p.ini.logout("done")
        p.pump()
        texts = [repr(p.ini.settings), repr(p.to_acc.messages()), str(p.ini.settings)]
        p.close()
    assert logs, "no log captured"
    assert any(e["event"] == "fix_out" for e in logs)
    assert any(e["event"] == "fix_in" and "554=***" in str(e["msg"]) for e in logs)
    assert PASSWORD not in repr(logs)
    assert all(PASSWORD not in text for text in texts)
    assert len(p.history) == 2
    wire_to_acc = b"".join(b"".join(to_acc.wire) for to_acc, _ in p.history)
    messages = parse_all(wire_to_acc)
    logons = [m for m in messages if m.msg_type == "A"]
    assert len(logons) == 2 and all(m.get(554) == PASSWORD for m in logons)
    assert all(554 not in m for m in messages if m.msg_type != "A")
    assert any(m.get(43) == "Y" for m in messages)  # a resend happened, without the Logon
    assert wire_to_acc.count(PASSWORD.encode()) == 2
    assert all(PASSWORD.encode() not in b"".join(to_ini.wire) for _, to_ini in p.history)


# -- property: exactly once, in order, across drops and reconnects ------------------------------
_SEND = st.tuples(st.just("send"), st.sampled_from(["ini", "acc"]))
_PUMP = st.tuples(st.just("pump"), st.just(""))
_OPS = st.lists(
    st.one_of(
        _SEND,
        _SEND,
        _SEND,
        _PUMP,
        _PUMP,
        st.tuples(st.just("lose_one"), st.sampled_from(["ini", "acc"])),
        st.tuples(st.just("corrupt"), st.sampled_from(["ini", "acc"])),
        st.tuples(st.just("cut"), st.integers(min_value=0, max_value=400).map(str)),
        st.tuples(st.just("reconnect"), st.just("")),
        st.tuples(st.just("tick"), st.sampled_from(["5", "31", "40"])),
        st.tuples(st.just("restart"), st.sampled_from(["ini", "acc"])),
    ),
    min_size=10,
    max_size=40,
)


@hsettings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=_OPS)
def test_when_data_lost_and_reconnected_then_every_app_message_delivered_once_in_order(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str]]
) -> None:
    """Whatever is lost, cut or restarted, each app message arrives once and in order."""
    p = Pair(tmp_path_factory.mktemp("prop"), clock=FakeClock())
    p.connect()
    sent_by: dict[str, list[str]] = {"ini": [], "acc": []}
    try:
        for op, arg in ops:
            if op == "send":
                session = p.ini if arg == "ini" else p.acc
                ident = f"{arg}-{len(sent_by[arg])}"
                sent_by[arg].append(ident)
                session.send(order(ident) if arg == "ini" else report(ident))
            elif op == "pump":
                p.pump()
            elif op == "lose_one":
                pipe = p.to_acc if arg == "ini" else p.to_ini
                if pipe.pending:
                    del pipe.pending[len(pipe.pending) // 2]
            elif op == "corrupt":
                # a bit flips in flight: that frame fails its CheckSum
                pipe = p.to_acc if arg == "ini" else p.to_ini
                if pipe.pending:
                    chunk = bytearray(pipe.pending[-1])
                    chunk[len(chunk) // 2] ^= 0x20
                    pipe.pending[-1] = bytes(chunk)
            elif op == "cut":
                # part of the bytes in flight arrive, then the connection fails
                for pipe, receiver in ((p.to_acc, p.acc), (p.to_ini, p.ini)):
                    data = pipe.take()[: int(arg)]
                    if data and receiver.connected:
                        receiver.data_received(data)
                p.drop()
            elif op == "reconnect":
                p.drop()
                p.connect()
            elif op == "tick":
                p.tick(float(arg))
            elif op == "restart":
                p.drop()
                p.new_session(arg)
            # never a duplicate, never out of order, even before the final recovery
            got_by_acc = [m.get(11) for m in p.acc_app.messages if m.msg_type == "D"]
            got_by_ini = [m.get(17) for m in p.ini_app.messages if m.msg_type == "8"]
            assert got_by_acc == sent_by["ini"][: len(got_by_acc)]
            assert got_by_ini == sent_by["acc"][: len(got_by_ini)]
        p.pump()
        p.drop()
        p.logon()
        p.pump()
        got_by_acc = [m.get(11) for m in p.acc_app.messages if m.msg_type == "D"]
        got_by_ini = [m.get(17) for m in p.ini_app.messages if m.msg_type == "8"]
        assert got_by_acc == sent_by["ini"]
        assert got_by_ini == sent_by["acc"]
        assert p.ini.store.next_target_seq == p.acc.store.next_sender_seq
        assert p.acc.store.next_target_seq == p.ini.store.next_sender_seq
    finally:
        p.close()


def test_when_resend_request_goes_unanswered_then_repeated_then_disconnect(pair: Pair) -> None:
    """An ignored ResendRequest is asked again every two heartbeats, then the session drops."""
    for n in range(1, 4):
        pair.acc.send(report(f"E{n}"))
    del pair.to_ini.pending[0]  # E1 is lost
    pair.ini.data_received(pair.to_ini.take())
    asked = [m for m in sent(pair.to_acc) if m.msg_type == "2"]

    def two_heartbeats_later() -> None:
        for _ in range(2):  # the venue keeps the line alive, but never fills the gap
            pair.clock.advance(pair.ini.heartbeat_s)
            pair.acc.tick()
            pair.ini.data_received(pair.to_ini.take())
            pair.ini.tick()

    for _ in range(2):
        two_heartbeats_later()
        asked += [m for m in sent(pair.to_acc) if m.msg_type == "2"]
        assert pair.ini.logged_on
    assert [(m.get(7), m.get(16)) for m in asked] == [("2", "0")] * 3
    two_heartbeats_later()
    assert not pair.ini.connected
    assert pair.ini.counters["resend_timeouts"] == 1
    assert "not filled" in pair.ini.disconnect_reason
    assert pair.ini_app.messages == []  # nothing out of order was delivered
