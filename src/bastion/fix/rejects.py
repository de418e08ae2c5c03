"""What a FIX session refuses, and how it says so: the checks of an inbound message's
standard header (CompIDs, SendingTime, PossDupFlag with OrigSendingTime) and of an
acceptor's Logon, and the bodies of the Reject (35=3) and BusinessMessageReject (35=j)
that answer a message. Pure functions of the message, what the session expects and the
time: ``bastion.fix.session`` acts on what they find.

A handler of the application raises ``RejectMessage`` or ``BusinessReject`` to have
the session answer a message with one of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.fix.codec import (
    COMPID_PROBLEM,
    INCORRECT_DATA_FORMAT,
    REQUIRED_TAG_MISSING,
    SENDING_TIME_ACCURACY,
    FixMessage,
)
from bastion.fix.timestamps import parse_utc_timestamp

_FIX44_MSG_TYPES_TEXT = (
    "0 1 2 3 4 5 6 7 8 9 A B C D E F G H J K L M N P Q R S T V W X Y Z "
    "a b c d e f g h i j k l m n o p q r s t u v w x y z "
    "AA AB AC AD AE AF AG AH AI AJ AK AL AM AN AO AP AQ AR AS AT AU AV AW AX AY AZ "
    "BA BB BC BD BE BF BG BH"
)
FIX44_MSG_TYPES = frozenset(_FIX44_MSG_TYPES_TEXT.split())
_ROUTING_REVERSED = {115: 128, 116: 129, 144: 145, 128: 115, 129: 116, 145: 144}
"""OnBehalfOf (115, 116, 144) and DeliverTo (128, 129, 145): a reply swaps them."""


class RejectMessage(Exception):
    """Raised by a handler: answer the message with a session-level Reject (35=3)."""

    def __init__(self, reason: int, ref_tag: int | None, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.ref_tag = ref_tag
        self.text = text


class BusinessReject(Exception):
    """Raised by a handler: answer with a BusinessMessageReject (35=j).

    ``reason`` is BusinessRejectReason (380): 0 other, 1 unknown ID, 2 unknown
    security, 3 unsupported message type, 4 application not available,
    5 conditionally required field missing.
    """

    def __init__(self, reason: int, text: str, ref_id: str | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.ref_id = ref_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """What a session expects of the counterparty's header: its CompID as SenderCompID
    (49), ours as TargetCompID (56), and the SendingTime (52) skew allowed."""

    their_comp_id: str
    our_comp_id: str
    max_sending_time_skew_s: float


@dataclass(frozen=True, slots=True)
class HeaderProblem:
    """Why a message's standard header is refused: the Reject's reason, tag and text;
    ``fatal``: the Logout's text when the session must end after the Reject."""

    reason: int
    ref_tag: int
    text: str
    fatal: str | None = None


def header_problem(msg: FixMessage, expected: Expected, now_ns: int) -> HeaderProblem | None:
    """The problem of ``msg``'s header (FIX 4.4 test cases 2f, 2g, 2k, 2o, 14b), or
    ``None``. A message that claims PossDupFlag is not held to the SendingTime skew, but
    must carry an OrigSendingTime (122) no later than its SendingTime."""
    for tag in (49, 56):
        if tag not in msg:
            return HeaderProblem(REQUIRED_TAG_MISSING, tag, "Required tag missing")
    if msg.get(49) != expected.their_comp_id or msg.get(56) != expected.our_comp_id:
        tag = 49 if msg.get(49) != expected.their_comp_id else 56
        return HeaderProblem(COMPID_PROBLEM, tag, "CompID problem", fatal="CompID problem")
    sending_time = msg.get(52)
    if sending_time is None:
        return HeaderProblem(REQUIRED_TAG_MISSING, 52, "Required tag missing")
    sent_ns = parse_utc_timestamp(sending_time)
    if sent_ns is None:
        return HeaderProblem(INCORRECT_DATA_FORMAT, 52, "Incorrect data format for value")
    poss_dup = msg.get(43) == "Y"
    if not poss_dup and abs(now_ns - sent_ns) > expected.max_sending_time_skew_s * 1e9:
        text = "SendingTime accuracy problem"
        return HeaderProblem(SENDING_TIME_ACCURACY, 52, text, fatal=text)
    if poss_dup and msg.msg_type != "4":
        orig = msg.get(122)
        if orig is None:
            return HeaderProblem(REQUIRED_TAG_MISSING, 122, "Required tag missing")
        orig_ns = parse_utc_timestamp(orig)
        if orig_ns is None or orig_ns > sent_ns:
            return HeaderProblem(
                SENDING_TIME_ACCURACY,
                122,
                "SendingTime accuracy problem",
                fatal="OrigSendingTime later than SendingTime",
            )
    return None


def logon_problem(msg: FixMessage, expected: Expected, now_ns: int) -> str | None:
    """Why an acceptor refuses the Logon ``msg`` before its credentials are looked at
    (its dictionary defects checked already), or ``None``."""
    if msg.get(49) != expected.their_comp_id or msg.get(56) != expected.our_comp_id:
        return "CompID problem"
    seq_text = msg.get(34)
    if seq_text is None or not seq_text.isdigit() or int(seq_text) <= 0:
        return "MsgSeqNum (34) missing or not a number"
    sent_ns = parse_utc_timestamp(msg.get(52) or "")
    if sent_ns is None:
        return "SendingTime (52) missing or malformed"
    if abs(now_ns - sent_ns) > expected.max_sending_time_skew_s * 1e9:
        return "SendingTime accuracy problem"
    heartbeat = msg.get(108)
    if heartbeat is None or not heartbeat.isdigit() or int(heartbeat) <= 0:
        return "HeartBtInt (108) missing or invalid"
    if msg.get(98) not in ("0", None):
        return "EncryptMethod (98) not supported"
    return None


def reject_body(
    msg: FixMessage, reason: int, ref_tag: int | None, text: str
) -> list[tuple[int, str]]:
    """The body of the Reject of ``msg``: its routing reversed, RefSeqNum, RefTagID,
    RefMsgType, SessionRejectReason and the text."""
    body = [(_ROUTING_REVERSED[t], v) for t, v in msg.fields if t in _ROUTING_REVERSED]
    ref_seq = msg.get(34)
    body.append((45, ref_seq if ref_seq and ref_seq.isdigit() else "0"))
    if ref_tag is not None:
        body.append((371, str(ref_tag)))
    if msg.get(35):
        body.append((372, msg.get(35) or ""))
    body += [(373, str(reason)), (58, text)]
    return body


def business_reject_body(
    msg: FixMessage, reason: int, text: str, ref_id: str | None
) -> list[tuple[int, str]]:
    """The body of the BusinessMessageReject of ``msg``."""
    body = [(45, msg.get(34) or "0"), (372, msg.get(35) or "")]
    if ref_id is not None:
        body.append((379, ref_id))
    body += [(380, str(reason)), (58, text)]
    return body
