"""Answering a ResendRequest (35=2): which of the stored messages go out again, as
copies with PossDupFlag=Y and OrigSendingTime, and which numbers are covered by a
SequenceReset-GapFill instead (admin messages, anything not stored, and application
messages below the session's resend floor). Also the sequence-number fields of
ResendRequest and SequenceReset, read as the session must answer them. Pure functions:
``bastion.fix.session`` writes what they return.
"""

from __future__ import annotations

from collections.abc import Iterator

from bastion.fix.codec import (
    REQUIRED_TAG_MISSING,
    VALUE_INCORRECT,
    Defect,
    FixMessage,
    FixParser,
    encode,
)
from bastion.fix.store import SqliteSessionStore

GapFill = tuple[int, int]
"""A SequenceReset-GapFill to send: its MsgSeqNum and NewSeqNo."""


def seq_number(msg: FixMessage, tag: int, name: str) -> int | Defect:
    """The number in ``tag`` (BeginSeqNo 7, EndSeqNo 16, NewSeqNo 36) of ``msg``, or the
    defect to reject it with (missing: 373=1; not a number: 373=5)."""
    text = msg.get(tag)
    if text is None or not text.isdigit():
        reason = REQUIRED_TAG_MISSING if text is None else VALUE_INCORRECT
        return Defect(reason, tag, f"{name} ({tag}) missing or invalid")
    return int(text)


def replay(
    store: SqliteSessionStore,
    begin: int,
    end: int,
    *,
    floor: int,
    resent_below_floor: frozenset[str],
) -> Iterator[bytes | GapFill]:
    """What answers a ResendRequest for ``begin`` to ``end`` (both sent already), in
    order: stored messages to resend (their bytes as first sent) and gap fills between.
    Below ``floor`` only the MsgTypes of ``resent_below_floor`` are resent."""
    gap_start: int | None = begin
    lowest = begin if resent_below_floor else max(begin, floor)
    for seq, raw in store.sent_messages(lowest, end):
        if seq < floor and msg_type_of(raw) not in resent_below_floor:
            continue
        if gap_start is not None and gap_start < seq:
            yield (gap_start, seq)
        gap_start = None
        yield raw
        gap_start = seq + 1
    if gap_start is not None and gap_start <= end:
        yield (gap_start, end + 1)


def poss_dup_copy(raw: bytes, begin_string: str, now: str) -> bytes:
    """``raw`` sent again: PossDupFlag=Y, SendingTime ``now``, OrigSendingTime its first
    SendingTime."""
    parser = FixParser(begin_string)
    parser.feed(raw)
    original = next(iter(parser.messages()))
    assert isinstance(original, FixMessage)
    fields = [(t, v) for t, v in original.fields if t not in (43, 122, 52)]
    orig_time = original.get(52) or now
    at = next(i for i, (t, _) in enumerate(fields) if t == 34) + 1
    fields[at:at] = [(43, "Y"), (52, now), (122, orig_time)]
    return encode(begin_string, fields)


def gap_fill_fields(
    sender: str, target: str, seq: int, new_seq: int, now: str
) -> list[tuple[int, str]]:
    """A SequenceReset-GapFill at ``seq`` moving the counterparty on to ``new_seq``."""
    return [
        (35, "4"),
        (49, sender),
        (56, target),
        (34, str(seq)),
        (43, "Y"),
        (52, now),
        (122, now),
        (123, "Y"),
        (36, str(new_seq)),
    ]


def msg_type_of(raw: bytes) -> str:
    """MsgType of an encoded message (35 is its third field)."""
    start = raw.find(b"\x0135=") + 4
    return raw[start : raw.find(b"\x01", start)].decode("ascii")
