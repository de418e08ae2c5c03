"""FIX 4.4 session-layer conformance, tried as a broker's certification team would.

Each test is a case of the FIX specification's session test cases (Volume 2, "Session
Protocol"), named by its number as QuickFIX's acceptance suite numbers them (14a-14j are
the invalid-field cases); cases without a number are the issue's own. A hand-written
counterparty (``RawCounterparty``) sends exactly the bytes a case calls for over TCP to
``bastion venue sim`` (its server, in this process, on a free port) and checks what
comes back: a Reject (35=3) with RefSeqNum, RefTagID and SessionRejectReason whose
sequence number is consumed, a Logout, or a closed connection.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bastion.fix.codec import (
    GROUP_FIELDS_OUT_OF_ORDER,
    INCORRECT_DATA_FORMAT,
    INCORRECT_NUM_IN_GROUP_COUNT,
    INVALID_TAG_NUMBER,
    REQUIRED_TAG_MISSING,
    TAG_APPEARS_MORE_THAN_ONCE,
    TAG_NOT_DEFINED_FOR_MSG_TYPE,
    TAG_OUT_OF_ORDER,
    TAG_WITHOUT_VALUE,
    VALUE_INCORRECT,
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


async def rejected(
    client: RawCounterparty, body: list[tuple[int, object]], reason: int, ref_tag: int
) -> FixMessage:
    """Send a NewOrderSingle with ``body``: a Reject with ``reason`` and ``ref_tag`` comes
    back, no ExecutionReport, and the session stays in step."""
    await logon(client)
    seq = client.next_seq
    client.send("D", *body)
    reject = await client.expect("3")
    assert (reject.get(45), reject.get(371), reject.get(372), reject.get(373)) == (
        str(seq),
        str(ref_tag),
        "D",
        str(reason),
    ), reject.get(58)
    await still_in_step(client)
    return reject


# -- 14: invalid fields ------------------------------------------------------------------------
@pytest.mark.parametrize("tag", [999, 5000, 0, -1])
def test_14a_undefined_tag_is_rejected(tmp_path: Path, tag: int) -> None:
    """A tag the dictionary does not define (and 0, -1): Reject 373=0, Invalid tag number."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await rejected(client, [*ORDER, (tag, "x")], INVALID_TAG_NUMBER, tag)

    server = run(tmp_path, case)
    assert server.counters["orders_received"] == 0


def test_14b_required_tag_missing_is_rejected(tmp_path: Path) -> None:
    """A NewOrderSingle without Side (54): Reject 373=1."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await rejected(client, [f for f in ORDER if f[0] != 54], REQUIRED_TAG_MISSING, 54)

    run(tmp_path, case)


def test_14b_missing_target_comp_id_is_rejected_as_required_tag_missing(tmp_path: Path) -> None:
    """No TargetCompID (56): Reject 373=1 naming 56, not a CompID problem, no Logout."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        fields = [(35, "D"), (49, "NODE"), (34, "2")]
        fields += [(52, format_utc_timestamp(time.time_ns())), *ORDER]
        client.send_raw(encode("FIX.4.4", [(t, str(v)) for t, v in fields]))
        client.next_seq = 3
        reject = await client.expect("3")
        assert (reject.get(45), reject.get(371), reject.get(373)) == ("2", "56", "1")
        await still_in_step(client)

    run(tmp_path, case)


def test_14c_tag_not_defined_for_message_type_is_rejected(tmp_path: Path) -> None:
    """TestReqID (112) on a NewOrderSingle: Reject 373=2."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await rejected(client, [*ORDER, (112, "x")], TAG_NOT_DEFINED_FOR_MSG_TYPE, 112)

    run(tmp_path, case)


def test_14d_tag_without_value_is_rejected(tmp_path: Path) -> None:
    """Text (58) with an empty value: Reject 373=4."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await rejected(client, [*ORDER, (58, "")], TAG_WITHOUT_VALUE, 58)

    run(tmp_path, case)


@pytest.mark.parametrize(("tag", "value"), [(21, "4"), (167, "BOO")])
def test_14e_value_out_of_enumeration_is_rejected(tmp_path: Path, tag: int, value: str) -> None:
    """HandlInst 21=4, SecurityType 167=BOO: Reject 373=5."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        body = [(t, value if t == tag else v) for t, v in ORDER]
        if tag not in dict(ORDER):
            body.append((tag, value))
        await rejected(client, body, VALUE_INCORRECT, tag)

    run(tmp_path, case)


@pytest.mark.parametrize(("tag", "value"), [(38, "+200.00"), (38, "+5"), (126, "2024-01-02")])
def test_14f_incorrect_data_format_is_rejected(tmp_path: Path, tag: int, value: str) -> None:
    """OrderQty 38=+200.00 or +5, ExpireTime 126 not a UTCTimestamp: Reject 373=6, and no
    ExecutionReport."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        body = [(t, value if t == tag else v) for t, v in ORDER]
        if tag not in dict(ORDER):
            body.append((tag, value))
        await rejected(client, body, INCORRECT_DATA_FORMAT, tag)

    server = run(tmp_path, case)
    assert server.counters["orders_received"] == 0


def test_data_field_with_soh_inside_is_read_by_its_length(tmp_path: Path) -> None:
    """XmlData (213) holding SOH and '=', read by XmlDataLen (212): the order is taken."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        xml = "<a b='1'>\x0154=2\x01</a>"
        client.send("D", (212, len(xml)), (213, xml), *ORDER)
        report = await client.expect("8")
        assert (report.get(11), report.get(150), report.get(54)) == ("C1", "0", "1")
        await still_in_step(client)

    run(tmp_path, case)


def test_data_field_with_wrong_length_is_rejected(tmp_path: Path) -> None:
    """XmlDataLen (212) one byte short of XmlData: Reject 373=5 naming 212, its number
    used; no order."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        xml = "<a>\x01</a>"
        await rejected(client, [(212, len(xml) - 1), (213, xml), *ORDER], VALUE_INCORRECT, 212)

    server = run(tmp_path, case)
    assert server.counters["orders_received"] == 0


def test_14g_header_field_after_body_is_rejected(tmp_path: Path) -> None:
    """SenderSubID (50), a header field, after the body: Reject 373=14."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await rejected(client, [*ORDER, (50, "desk")], TAG_OUT_OF_ORDER, 50)

    run(tmp_path, case)


def test_14h_repeated_tag_is_rejected(tmp_path: Path) -> None:
    """Side (54) twice: Reject 373=13, and no ExecutionReport."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await rejected(client, [*ORDER, (54, "2")], TAG_APPEARS_MORE_THAN_ONCE, 54)

    server = run(tmp_path, case)
    assert server.counters["orders_received"] == 0


def test_14j_repeating_group_out_of_order_is_rejected(tmp_path: Path) -> None:
    """A NoPartyIDs entry that does not start with its delimiter PartyID (448): 373=15."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        body = [*ORDER, (453, "1"), (447, "D"), (448, "P1"), (452, "1")]
        await rejected(client, body, GROUP_FIELDS_OUT_OF_ORDER, 447)

    run(tmp_path, case)


def test_14i_num_in_group_count_mismatch_is_rejected(tmp_path: Path) -> None:
    """NoPartyIDs=2 with one entry: Reject 373=16 naming 453."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        body = [*ORDER, (453, "2"), (448, "P1"), (447, "D"), (452, "1")]
        await rejected(client, body, INCORRECT_NUM_IN_GROUP_COUNT, 453)

    run(tmp_path, case)


def test_reject_reverses_routing_tags(tmp_path: Path) -> None:
    """A rejected message sent OnBehalfOf (115, 116, 144) is answered DeliverTo (128, 129,
    145) them."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        fields = [(35, "D"), (49, "NODE"), (56, "SIM"), (34, "2"), (115, "FIRM"), (116, "DESK")]
        fields += [(144, "LDN"), (52, format_utc_timestamp(time.time_ns()))]
        fields += [*ORDER, (54, "2")]
        client.send_raw(encode("FIX.4.4", [(t, str(v)) for t, v in fields]))
        client.next_seq = 3
        reject = await client.expect("3")
        assert (reject.get(128), reject.get(129), reject.get(145)) == ("FIRM", "DESK", "LDN")
        assert reject.get(115) is None

    run(tmp_path, case)


# -- garbled messages, BeginString --------------------------------------------------------------
def test_2t_msg_type_not_third_field_is_garbled_and_consumes_no_sequence_number(
    tmp_path: Path,
) -> None:
    """MsgType (35) after SenderCompID: ignored as garbled; the next message with the same
    MsgSeqNum is processed, not 'too low'."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        fields = [(49, "NODE"), (35, "1"), (56, "SIM"), (34, "2")]
        fields += [(52, format_utc_timestamp(time.time_ns())), (112, "LOST")]
        client.send_raw(encode("FIX.4.4", fields))
        client.next_seq = 2
        await still_in_step(client)

    server = run(tmp_path, case)
    assert server.apps["acct"].session is not None
    assert server.apps["acct"].session.counters["garbled"] == 1


def test_2i_begin_string_changed_after_logon_gets_logout_and_disconnect(tmp_path: Path) -> None:
    """A message with BeginString FIX.4.2 on a FIX.4.4 session: Logout, then the
    connection is closed."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        client.begin_string = "FIX.4.2"
        client.send("1", (112, "OLD"))
        after = await client.closed()
        assert [m.msg_type for m in after] == ["5"]
        assert "BeginString" in (after[0].get(58) or "")

    run(tmp_path, case)


@pytest.mark.parametrize("damage", ["body_length", "begin_string"])
def test_1d_invalid_logon_closes_the_connection_at_once(tmp_path: Path, damage: str) -> None:
    """A Logon with a wrong BodyLength or BeginString: the connection is closed at once,
    not after the 10 s first-message timeout."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        raw = client.message("A", *LOGON)
        if damage == "body_length":
            head, _, rest = raw.partition(b"\x019=")
            length, _, tail = rest.partition(b"\x01")
            raw = head + b"\x019=" + str(int(length) - 5).encode() + b"\x01" + tail
        else:
            raw = raw.replace(b"8=FIX.4.4", b"8=FIX.4.2", 1)
        started = time.monotonic()
        client.send_raw(raw)
        await client.closed(timeout_s=5)
        assert time.monotonic() - started < 3

    run(tmp_path, case)


# -- sequence numbers at logon ------------------------------------------------------------------
def test_logon_with_reset_during_session_resets_both_sides(tmp_path: Path) -> None:
    """A Logon with ResetSeqNumFlag=Y while logged on: the venue answers with its own Logon
    141=Y at MsgSeqNum 1, and both sides go on from 2."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        await still_in_step(client)
        client.send("A", *LOGON, (141, "Y"), seq=1)
        answer = await client.expect("A")
        assert (answer.get(141), answer.get(34)) == ("Y", "1")
        client.send("1", (112, "AFTER"))
        heartbeat = await client.expect("0")
        assert (heartbeat.get(112), heartbeat.get(34)) == ("AFTER", "2")

    run(tmp_path, case)


def test_logon_with_seq_too_low_gets_only_a_logout(tmp_path: Path) -> None:
    """A Logon whose MsgSeqNum is below the expected one is answered by a Logout alone."""

    async def first(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        await still_in_step(client)
        client.send("5")
        await client.expect("5")

    run(tmp_path, first)

    async def again(client: RawCounterparty, server: VenueSimServer) -> None:
        client.send("A", *LOGON, seq=1)
        after = await client.closed()
        assert [m.msg_type for m in after] == ["5"], after
        assert "too low" in (after[0].get(58) or "")

    run(tmp_path, again)


@pytest.mark.parametrize("option", ["reset_on_logout", "reset_on_disconnect", "reset_on_logon"])
def test_reset_options_start_the_next_logon_at_one(tmp_path: Path, option: str) -> None:
    """With the simulator's reset option, the next connection logs on at MsgSeqNum 1."""

    async def first(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        await still_in_step(client)
        client.send("5")
        await client.expect("5")

    run(tmp_path, first, extra=f"{option} = true\n")

    async def again(client: RawCounterparty, server: VenueSimServer) -> None:
        answer = await logon(client)
        assert answer.get(34) == "1"
        await still_in_step(client)

    run(tmp_path, again, extra=f"{option} = true\n")


# -- the simulator as a reflector ---------------------------------------------------------------
def test_echo_mode_sends_application_messages_back(tmp_path: Path) -> None:
    """In echo mode a NewOrderSingle comes back as it went, in the venue's header."""

    async def case(client: RawCounterparty, server: VenueSimServer) -> None:
        await logon(client)
        client.send("D", *ORDER)
        echo = await client.expect("D")
        assert [(t, v) for t, v in echo.fields if t not in (35, 49, 56, 34, 52)] == ORDER
        assert (echo.get(49), echo.get(56)) == ("SIM", "NODE")

    server = run(tmp_path, case, extra='mode = "echo"\n')
    assert server.counters["orders_received"] == 0
