"""FIX tag=value codec: encoding, framing, CheckSum/BodyLength validation, resync, redaction."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.fix.codec import (
    DATA_AFTER_LENGTH,
    INVALID_TAG_NUMBER,
    TAG_WITHOUT_VALUE,
    VALUE_INCORRECT,
    FixMessage,
    FixParser,
    Garbled,
    checksum,
    encode,
    redact,
    redact_fields,
)

SOH = b"\x01"
PROPERTY = settings(max_examples=150, derandomize=True, database=None, deadline=None)

HEARTBEAT_FIELDS = [(35, "0"), (49, "A"), (56, "B"), (34, "1"), (52, "20240102-14:30:00.000")]


def wire(text: str) -> bytes:
    """``|``-separated text as FIX wire bytes."""
    return text.replace("|", "\x01").encode("latin-1")


def parse(data: bytes, begin_string: str = "FIX.4.4") -> list[FixMessage | Garbled]:
    parser = FixParser(begin_string)
    parser.feed(data)
    return list(parser.messages())


def independent_checksum(data: bytes) -> int:
    """CheckSum (10) as the spec words it: each byte added up, modulo 256."""
    total = 0
    for byte in data:
        total = (total + byte) % 256
    return total


def verifies(raw: bytes) -> bool:
    """Does ``raw`` end in a trailer whose CheckSum and BodyLength match its bytes?"""
    first = raw.index(SOH)
    second = raw.index(SOH, first + 1)
    trailer = len(raw) - 7
    return (
        raw[first + 1 : first + 3] == b"9="
        and int(raw[first + 3 : second]) == trailer - (second + 1)
        and raw[trailer - 1 : trailer + 3] == b"\x0110="
        and raw.endswith(SOH)
        and int(raw[trailer + 3 : trailer + 6]) == independent_checksum(raw[:trailer])
    )


# -- encoding ---------------------------------------------------------------------------------
def test_when_encoded_then_body_length_and_checksum_are_exact() -> None:
    """BodyLength counts the body bytes; CheckSum is the byte sum mod 256 in three digits."""
    raw = encode("FIX.4.4", HEARTBEAT_FIELDS)
    body = wire("35=0|49=A|56=B|34=1|52=20240102-14:30:00.000|")
    assert len(body) == 45
    head = wire("8=FIX.4.4|9=45|")
    expected_sum = independent_checksum(head + body)
    assert expected_sum == 59
    assert raw == head + body + wire("10=059|")
    assert checksum(head + body) == expected_sum


def test_when_published_fix_message_parsed_then_its_checksum_verifies() -> None:
    """A FIX 4.2 Logon with a published CheckSum (062) parses with that BeginString."""
    raw = wire(
        "8=FIX.4.2|9=65|35=A|49=SERVER|56=CLIENT|34=177|52=20090107-18:15:16|98=0|108=30|10=062|"
    )
    (msg,) = parse(raw, "FIX.4.2")
    assert isinstance(msg, FixMessage) and msg.defect is None
    assert msg.msg_type == "A" and msg.get(34) == "177" and msg.get(108) == "30"
    assert msg.raw == raw


def test_when_encoded_then_parsed_back_identically() -> None:
    """encode -> parse keeps every field in order, repeated tags included."""
    fields = [(35, "W"), (55, "XYZ"), (268, "2"), (269, "0"), (270, "1.5"), (269, "1")]
    fields += [(270, "1.6"), (58, "a=b c")]
    (msg,) = parse(encode("FIX.4.4", fields))
    assert isinstance(msg, FixMessage)
    assert msg.fields == fields
    assert msg.get_all(269) == ["0", "1"] and msg.get(270) == "1.5"
    assert msg.defect is None


def test_when_fix_message_edited_then_set_remove_append_behave() -> None:
    """``set`` replaces the first occurrence or appends; ``remove`` drops every one."""
    msg = FixMessage.of("D", (11, "a"), (44, 1), (44, 2))
    msg.set(44, "9")
    msg.set(59, 3)
    assert msg.fields == [(35, "D"), (11, "a"), (44, "9"), (44, "2"), (59, "3")]
    msg.remove(44)
    msg.append(38, 10)
    assert msg.fields == [(35, "D"), (11, "a"), (59, "3"), (38, "10")]
    assert 38 in msg and 44 not in msg
    assert msg.copy() == msg and msg.copy() is not msg


# -- framing errors and resync ------------------------------------------------------------------
def test_when_checksum_wrong_then_garbled_names_checksum_and_next_message_parsed() -> None:
    """A bad CheckSum yields a Garbled naming tag 10; the following message still parses."""
    good = encode("FIX.4.4", HEARTBEAT_FIELDS)
    bad = good[:-4] + b"123" + SOH
    out = parse(bad + good)
    assert len(out) == 2
    garbled, msg = out
    assert isinstance(garbled, Garbled)
    assert "CheckSum (10)" in garbled.reason and "123" in garbled.reason and "059" in garbled.reason
    assert garbled.raw == bad
    assert isinstance(msg, FixMessage) and msg.fields == HEARTBEAT_FIELDS


def test_when_body_length_too_small_then_garbled_and_resync() -> None:
    """A BodyLength that misses the trailer is reported and skipped to the next BeginString."""
    good = encode("FIX.4.4", HEARTBEAT_FIELDS)
    bad = good.replace(b"9=45", b"9=40")
    out = parse(bad + good)
    assert [type(x) for x in out] == [Garbled, FixMessage]
    assert isinstance(out[0], Garbled)
    assert out[0].reason == "BodyLength (9) 40 is wrong"
    assert out[0].raw == bad


def test_when_body_length_too_large_then_found_out_when_bytes_arrive() -> None:
    """A too-large BodyLength is reported once its bytes arrive; the next message survives."""
    good = encode("FIX.4.4", HEARTBEAT_FIELDS)
    bad = good.replace(b"9=45", b"9=60")
    parser = FixParser()
    parser.feed(bad)
    assert list(parser.messages()) == []
    parser.feed(good)
    out = list(parser.messages())
    assert [type(x) for x in out] == [Garbled, FixMessage]
    assert isinstance(out[0], Garbled) and out[0].reason == "BodyLength (9) 60 is wrong"


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda raw: raw.replace(b"9=45", b"9=4x"), "BodyLength (9) is not a number"),
        (lambda raw: raw.replace(b"9=45", b"9=99999999"), "BodyLength (9) is not a number"),
        (lambda raw: raw.replace(b"9=45", b"9=2000000"), "is too large"),
        (lambda raw: raw.replace(b"9=45\x01", b""), "BodyLength (9) is not the second field"),
        (lambda raw: raw.replace(b"FIX.4.4", b"FIX.4.2"), "unexpected BeginString"),
    ],
)
def test_when_header_malformed_then_garbled_with_reason_and_resync(
    mangle: object, reason: str
) -> None:
    """Each header fault is named, and the parser picks up the next message."""
    good = encode("FIX.4.4", HEARTBEAT_FIELDS)
    bad = mangle(good)  # type: ignore[operator]
    out = parse(bad + good)
    assert [type(x) for x in out] == [Garbled, FixMessage]
    assert isinstance(out[0], Garbled) and reason in out[0].reason


def test_when_junk_before_begin_string_then_garbled_and_message_parsed() -> None:
    """Bytes before ``8=FIX`` are one Garbled record; the message after them parses."""
    good = encode("FIX.4.4", HEARTBEAT_FIELDS)
    out = parse(b"hello\x01world 8=FI" + good)
    assert len(out) == 2
    assert isinstance(out[0], Garbled)
    assert out[0].reason == "data before BeginString" and out[0].raw == b"hello\x01world 8=FI"
    assert out[1] == FixMessage(HEARTBEAT_FIELDS)


def test_when_junk_ends_with_partial_begin_string_then_it_is_kept() -> None:
    """A trailing ``8=FI`` may be the start of the next message, so it waits in the buffer."""
    parser = FixParser()
    good = encode("FIX.4.4", HEARTBEAT_FIELDS)
    parser.feed(b"junk" + good[:4])
    (junk,) = list(parser.messages())
    assert isinstance(junk, Garbled) and junk.raw == b"junk"
    assert parser.buffered == 4
    parser.feed(good[4:])
    assert list(parser.messages()) == [FixMessage(HEARTBEAT_FIELDS)]
    assert parser.buffered == 0


def test_when_fed_byte_by_byte_then_same_messages() -> None:
    """Feeding one byte at a time yields exactly what one big feed yields."""
    data = b"".join(
        encode("FIX.4.4", [(35, "D"), (34, str(n)), (11, f"order-{n}"), (58, "x" * n)])
        for n in range(1, 6)
    )
    whole = parse(data)
    parser = FixParser()
    pieces: list[FixMessage | Garbled] = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        pieces.extend(parser.messages())
    assert pieces == whole
    assert [m.get(11) for m in pieces if isinstance(m, FixMessage)] == [
        f"order-{n}" for n in range(1, 6)
    ]
    assert parser.buffered == 0


# -- defects ------------------------------------------------------------------------------------
def framed(body: bytes) -> bytes:
    """A correctly framed message around ``body`` (which may hold malformed fields)."""
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    return head + body + b"10=%03d\x01" % independent_checksum(head + body)


@pytest.mark.parametrize(
    ("body", "reason", "ref_tag", "text"),
    [
        (b"35=D\x01novalue\x0111=a\x01", INVALID_TAG_NUMBER, None, "malformed field 'novalue'"),
        (b"35=D\x01abc=1\x0111=a\x01", INVALID_TAG_NUMBER, None, "malformed field 'abc=1'"),
        (b"35=D\x01-5=1\x01", INVALID_TAG_NUMBER, -5, "Invalid tag number (-5)"),
        (b"35=D\x010=1\x01", INVALID_TAG_NUMBER, 0, "Invalid tag number (0)"),
        (b"35=D\x01--5=1\x01", INVALID_TAG_NUMBER, None, "malformed field '--5=1'"),
        (b"35=D\x0111=\x0155=X\x01", TAG_WITHOUT_VALUE, 11, "tag 11 has no value"),
    ],
)
def test_when_field_malformed_then_message_with_defect(
    body: bytes, reason: int, ref_tag: int | None, text: str
) -> None:
    """A well-framed message with a bad field is a FixMessage whose ``defect`` says why."""
    (msg,) = parse(framed(body))
    assert isinstance(msg, FixMessage)
    assert msg.defect is not None
    assert (msg.defect.reason, msg.defect.ref_tag, msg.defect.text) == (reason, ref_tag, text)


@pytest.mark.parametrize("body", [b"11=a\x0135=D\x01", b""])
def test_when_msg_type_not_third_field_then_garbled_and_next_message_parsed(body: bytes) -> None:
    """A frame whose third field is not MsgType is garbled (no sequence number is read from
    it); the message after it is parsed."""
    good = framed(b"35=0\x0134=2\x01")
    garbled, msg = parse(framed(body) + good)
    assert isinstance(garbled, Garbled) and "MsgType (35)" in garbled.reason
    assert isinstance(msg, FixMessage) and msg.msg_type == "0"


def test_when_several_defects_then_first_one_reported_and_good_fields_kept() -> None:
    """The first problem is the one reported; well-formed fields are still parsed."""
    (msg,) = parse(framed(b"35=D\x01junk\x0111=\x0155=XYZ\x01"))
    assert isinstance(msg, FixMessage) and msg.defect is not None
    assert msg.defect.reason == INVALID_TAG_NUMBER
    assert msg.fields == [(35, "D"), (11, ""), (55, "XYZ")]


# -- data fields, read by their length ------------------------------------------------------------
def _with_data(length_tag: int, data: str, length: int | None = None) -> list[tuple[int, str]]:
    """A Heartbeat carrying ``data`` in the DATA field of ``length_tag``, then Text (58)."""
    size = len(data) if length is None else length
    data_fields = [(length_tag, str(size)), (DATA_AFTER_LENGTH[length_tag], data)]
    return [*HEARTBEAT_FIELDS, *data_fields, (58, "after")]


def test_data_fields_pair_with_their_length_fields() -> None:
    """Each DATA field of the dictionary is read by its LENGTH partner: the field just
    before it, and SignatureLength (93) for Signature (89)."""
    assert DATA_AFTER_LENGTH[95] == 96 and DATA_AFTER_LENGTH[93] == 89
    assert DATA_AFTER_LENGTH[212] == 213 and DATA_AFTER_LENGTH[354] == 355
    assert len(DATA_AFTER_LENGTH) == 16


@pytest.mark.parametrize("length_tag", sorted(DATA_AFTER_LENGTH))
def test_when_data_field_holds_soh_and_equals_then_read_whole_by_its_length(
    length_tag: int,
) -> None:
    """RawData, XmlData, EncodedText, Signature...: SOH and '=' inside the value are data,
    not field boundaries; the fields after it are read as usual."""
    fields = _with_data(length_tag, "a\x01b=c\x0110=000\x01")
    (msg,) = parse(encode("FIX.4.4", fields))
    assert isinstance(msg, FixMessage) and msg.defect is None
    assert msg.fields == fields


@pytest.mark.parametrize("wrong", [-1, 1, 40])
def test_when_data_length_wrong_then_defect_373_5_on_the_length_field(wrong: int) -> None:
    """A length that does not end the data at an SOH: the frame is sound (BodyLength and
    CheckSum right), so a defect to reject (373=5 on the length tag), not a garbled frame;
    the header is still read."""
    data = "x\x01y=z"
    (msg,) = parse(encode("FIX.4.4", _with_data(95, data, len(data) + wrong)))
    assert isinstance(msg, FixMessage)
    assert msg.defect is not None
    assert (msg.defect.reason, msg.defect.ref_tag) == (VALUE_INCORRECT, 95)
    assert (msg.get(34), msg.msg_type) == ("1", "0")


def test_when_data_without_its_length_field_then_read_to_the_next_soh() -> None:
    """A DATA field not preceded by its length is read like any other field."""
    fields = [*HEARTBEAT_FIELDS, (96, "plain"), (58, "after")]
    (msg,) = parse(encode("FIX.4.4", fields))
    assert isinstance(msg, FixMessage) and msg.fields == fields and msg.defect is None


def test_when_raw_data_holds_soh_then_redaction_hides_all_of_it() -> None:
    """RawData (96) is a credential: redacted by its length, no piece after an SOH leaks."""
    raw = encode("FIX.4.4", [(35, "A"), (95, "13"), (96, "key\x01secret=99"), (58, "hi")])
    text = redact(raw)
    assert "secret" not in text and "96=***" in text and "58=hi" in text


_DATA = st.binary(min_size=1, max_size=60).map(lambda b: b.decode("latin-1"))


@PROPERTY
@given(
    data=st.lists(st.tuples(st.sampled_from(sorted(DATA_AFTER_LENGTH)), _DATA), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=6),
)
def test_when_data_fields_hold_any_bytes_then_parsed_back_identically(
    data: list[tuple[int, str]], cuts: list[int]
) -> None:
    """Data fields with any bytes (SOH, '=', '10=', '8=FIX' included), in messages cut
    anywhere: every message parses back field for field, without a defect."""
    body = [f for length_tag, value in data for f in _with_data(length_tag, value)[5:7]]
    messages = [[*HEARTBEAT_FIELDS, *body], HEARTBEAT_FIELDS]
    stream = b"".join(encode("FIX.4.4", m) for m in messages)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    parser = FixParser()
    out: list[FixMessage | Garbled] = []
    for start, end in itertools.pairwise(bounds):
        parser.feed(stream[start:end])
        out.extend(parser.messages())
    assert [(m.fields, m.defect) for m in out if isinstance(m, FixMessage)] == [
        (m, None) for m in messages
    ]
    assert len(out) == 2


# -- redaction ----------------------------------------------------------------------------------
def test_when_redacted_then_passwords_hidden() -> None:
    """Password (554) and NewPassword (925) never show in redacted text or reprs."""
    fields = [(35, "A"), (553, "user"), (554, "pw-old-123"), (925, "pw-new-456"), (58, "hi")]
    raw = encode("FIX.4.4", fields)
    text = redact(raw)
    assert "554=***" in text and "925=***" in text and "553=user" in text and "58=hi" in text
    assert "pw-old-123" not in text and "pw-new-456" not in text
    assert "pw-" not in redact_fields(fields)
    msg = FixMessage(fields)
    assert "pw-" not in repr(msg) and "pw-" not in str(msg)
    garbled = Garbled("CheckSum (10) is 000", raw)
    assert "pw-" not in repr(garbled) and "pw-" not in str(garbled)


# -- properties ---------------------------------------------------------------------------------
_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), min_size=1, max_size=20
)
_FIELDS = st.lists(
    st.tuples(st.integers(min_value=1, max_value=99_999), _VALUES), min_size=0, max_size=8
)
_MESSAGES = st.lists(
    st.tuples(st.text(alphabet="0123456789ADGHWXZj", min_size=1, max_size=2), _FIELDS),
    min_size=1,
    max_size=6,
).map(lambda ms: [[(35, t), *fields] for t, fields in ms])


@PROPERTY
@given(messages=_MESSAGES, cuts=st.lists(st.integers(min_value=0, max_value=2_000), max_size=12))
def test_when_valid_messages_split_anywhere_then_parsed_back_identically(
    messages: list[list[tuple[int, str]]], cuts: list[int]
) -> None:
    """Valid messages, cut into arbitrary chunks, parse back field for field, in order."""
    data = b"".join(encode("FIX.4.4", m) for m in messages)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    parser = FixParser()
    out: list[FixMessage | Garbled] = []
    for start, end in itertools.pairwise(bounds):
        parser.feed(data[start:end])
        out.extend(parser.messages())
    assert all(isinstance(m, FixMessage) and m.defect is None for m in out)
    assert [m.fields for m in out if isinstance(m, FixMessage)] == messages
    assert parser.buffered == 0


def _recovered(data: bytes, tail: list[bytes]) -> list[FixMessage | Garbled]:
    """Parse ``data`` then ``tail``, checking on the way that every FixMessage frame verifies
    and that no byte vanishes: what was yielded plus what is buffered is what was fed."""
    parser = FixParser()
    parser.feed(data)
    out = list(parser.messages())
    for chunk in tail:
        parser.feed(chunk)
        out.extend(parser.messages())
    for item in out:
        if isinstance(item, FixMessage):
            assert item.raw is not None and verifies(item.raw), item.raw
        else:
            assert isinstance(item, Garbled) and item.raw, item
    fed = data + b"".join(tail)
    consumed = b"".join(item.raw or b"" for item in out)
    assert consumed == fed[: len(fed) - parser.buffered]
    return out


_TAIL = [encode("FIX.4.4", [(35, "0"), (34, str(n)), (112, f"tail-{n}")]) for n in range(3)]


@PROPERTY
@given(junk=st.binary(max_size=300))
def test_when_arbitrary_bytes_then_parser_never_raises_and_messages_after_recovered(
    junk: bytes,
) -> None:
    """Random bytes never raise; junk without 8=FIX never costs the messages after it."""
    out = _recovered(junk, _TAIL)
    if b"8=FIX" not in junk:
        got = [m.get(112) for m in out if isinstance(m, FixMessage)]
        assert got == ["tail-0", "tail-1", "tail-2"]


_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("truncate"), st.integers(min_value=0), st.just(0)),
)


def _mutate(raw: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(raw)
    for kind, where, value in mutations:
        if not data:
            break
        i = where % len(data)
        if kind == "flip":
            data[i] ^= value
        elif kind == "insert":
            data.insert(i, value)
        elif kind == "delete":
            del data[i]
        else:
            del data[i:]
    return bytes(data)


@PROPERTY
@given(
    messages=_MESSAGES,
    mutations=st.lists(_MUTATION, min_size=1, max_size=4),
    prefix=st.binary(max_size=20),
)
def test_when_valid_messages_mutated_then_parser_never_raises_nor_yields_bad_frames(
    messages: list[list[tuple[int, str]]], mutations: list[tuple[str, int, int]], prefix: bytes
) -> None:
    """Mutated input never raises, yields only verifying frames, and accounts for every byte."""
    data = prefix + _mutate(b"".join(encode("FIX.4.4", m) for m in messages), mutations)
    _recovered(data, _TAIL)


def test_when_truncated_frame_followed_by_valid_message_then_valid_message_recovered() -> None:
    """A truncated frame does not take the valid message after it down with it."""
    long = encode("FIX.4.4", [(35, "D"), (34, "7"), (58, "x" * 80)])
    short = encode("FIX.4.4", [(35, "0"), (34, "8")])
    cut = long[: len(long) - len(short)]  # the claimed trailer lands on short's trailer
    after = encode("FIX.4.4", [(35, "0"), (34, "9")])
    out = parse(cut + short + after)
    got = [m.get(34) for m in out if isinstance(m, FixMessage)]
    assert got == ["8", "9"]
