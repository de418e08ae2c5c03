"""FIX tag=value encoding: messages, framing, checksums and redaction.

A ``FixMessage`` is an ordered list of ``(tag, value)`` fields, values as ``str``
(FIX is ASCII). ``encode`` adds BeginString, BodyLength and CheckSum. The
``FixParser`` frames a byte stream: it checks BeginString, BodyLength, CheckSum, and
that MsgType is the third field, and yields either a message or a ``Garbled`` record
naming what was wrong, then resynchronises on the next ``8=FIX``; a garbled frame
never stops the stream. A frame that is well framed but whose fields are malformed (a
tag that is not a number or not above 0, a field without ``=`` or without a value) is
returned as a message with ``defect`` set, so the session can answer it with a Reject.

A field of the dictionary's ``DATA`` type (RawData 96, Signature 89, XmlData 213,
EncodedText 355, ...) is read by the length its ``LENGTH`` partner, the field just
before it, gives: its value may hold SOH and ``=``. A length that does not end at an
SOH is a defect (373=5 on the length field): the frame is sound, its fields are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from bastion.fix.dictionary44 import FIELDS

SOH = b"\x01"
MAX_BODY_LENGTH = 1 << 20
"""A BodyLength above this is treated as garbage, not buffered for."""

SECRET_TAGS = frozenset({554, 925, 95, 96})
"""Password (554), NewPassword (925), RawDataLength/RawData (95/96): never logged."""


def _data_after_length() -> dict[int, int]:
    """LENGTH tag -> the DATA tag whose length it gives: the LENGTH field named after the
    DATA field (``RawData`` and ``RawDataLength``, ``XmlData`` and ``XmlDataLen``)."""
    by_name = {name: tag for tag, (name, kind, _) in FIELDS.items() if kind == "LENGTH"}
    pairs: dict[int, int] = {}
    for tag, (name, kind, _) in FIELDS.items():
        if kind == "DATA":
            length = by_name.get(name + "Length") or by_name.get(name + "Len") or tag - 1
            pairs[length] = tag
    return pairs


DATA_AFTER_LENGTH = _data_after_length()
"""RawDataLength (95) -> RawData (96), SignatureLength (93) -> Signature (89), ..."""

# SessionRejectReason (373) codes used by the session layer and the handlers
INVALID_TAG_NUMBER = 0
REQUIRED_TAG_MISSING = 1
TAG_NOT_DEFINED_FOR_MSG_TYPE = 2
UNDEFINED_TAG = 3
TAG_WITHOUT_VALUE = 4
VALUE_INCORRECT = 5
INCORRECT_DATA_FORMAT = 6
COMPID_PROBLEM = 9
SENDING_TIME_ACCURACY = 10
INVALID_MSG_TYPE = 11
TAG_APPEARS_MORE_THAN_ONCE = 13
TAG_OUT_OF_ORDER = 14
GROUP_FIELDS_OUT_OF_ORDER = 15
INCORRECT_NUM_IN_GROUP_COUNT = 16
OTHER = 99


@dataclass(frozen=True, slots=True)
class Defect:
    """Why a well-framed message cannot be processed: a SessionRejectReason."""

    reason: int
    ref_tag: int | None
    text: str


class FixMessage:
    """One FIX message: ordered fields, repeated tags allowed (repeating groups)."""

    __slots__ = ("defect", "fields", "raw")

    def __init__(
        self,
        fields: Iterable[tuple[int, str]] = (),
        *,
        raw: bytes | None = None,
        defect: Defect | None = None,
    ) -> None:
        self.fields: list[tuple[int, str]] = list(fields)
        self.raw = raw
        self.defect = defect

    @classmethod
    def of(cls, msg_type: str, *fields: tuple[int, object]) -> FixMessage:
        """A message of ``msg_type`` with ``fields`` (values converted by ``field_text``)."""
        return cls([(35, msg_type), *((tag, field_text(value)) for tag, value in fields)])

    @property
    def msg_type(self) -> str:
        return self.get(35) or ""

    def get(self, tag: int, default: str | None = None) -> str | None:
        for t, value in self.fields:
            if t == tag:
                return value
        return default

    def get_all(self, tag: int) -> list[str]:
        return [value for t, value in self.fields if t == tag]

    def __contains__(self, tag: object) -> bool:
        return any(t == tag for t, _ in self.fields)

    def set(self, tag: int, value: object) -> None:
        """Replace the first ``tag`` field, or append it."""
        text = field_text(value)
        for i, (t, _) in enumerate(self.fields):
            if t == tag:
                self.fields[i] = (tag, text)
                return
        self.fields.append((tag, text))

    def remove(self, tag: int) -> None:
        self.fields = [(t, v) for t, v in self.fields if t != tag]

    def append(self, tag: int, value: object) -> None:
        self.fields.append((tag, field_text(value)))

    def copy(self) -> FixMessage:
        return FixMessage(self.fields, raw=self.raw, defect=self.defect)

    def __repr__(self) -> str:
        return f"FixMessage({redact_fields(self.fields)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FixMessage) and self.fields == other.fields

    __hash__ = None  # type: ignore[assignment]


def field_text(value: object) -> str:
    """A field value as FIX text: decimals in plain notation (FIX has no exponents)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def encode(begin_string: str, fields: Iterable[tuple[int, str]]) -> bytes:
    """The wire bytes of ``fields`` (MsgType first) with 8, 9 and 10 added."""
    body = "".join([f"{tag}={value}\x01" for tag, value in fields]).encode("latin-1")
    head = b"8=%s\x019=%d\x01" % (begin_string.encode("ascii"), len(body))
    message = head + body
    return message + b"10=%03d\x01" % (sum(message) & 0xFF)


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


@dataclass(frozen=True, slots=True)
class Garbled:
    """Bytes that could not be framed as a FIX message, and why."""

    reason: str
    raw: bytes
    begin_string: str | None = None
    """The BeginString of a frame that carries another version than the session's."""

    def __repr__(self) -> str:
        return f"Garbled({self.reason!r}, {redact(self.raw)!r})"


class FixParser:
    """Frames FIX messages out of a byte stream (``feed`` then iterate ``messages``)."""

    def __init__(self, begin_string: str = "FIX.4.4") -> None:
        self._buffer = bytearray()
        self._begin = b"8=" + begin_string.encode("ascii") + SOH
        self._any_begin = b"8=FIX"

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def messages(self) -> Iterator[FixMessage | Garbled]:
        """Every complete message (or garbled frame) buffered so far, in order."""
        while True:
            item = self._next()
            if item is None:
                return
            yield item

    def _next(self) -> FixMessage | Garbled | None:
        buf = self._buffer
        if not buf:
            return None
        start = buf.find(self._any_begin)
        if start != 0:
            if start < 0:
                # keep a possible partial "8=FIX" at the end
                keep = _partial_prefix(buf, self._any_begin)
                junk = bytes(buf[: len(buf) - keep])
                del buf[: len(buf) - keep]
                return Garbled("data before BeginString", junk) if junk else None
            junk = bytes(buf[:start])
            del buf[:start]
            return Garbled("data before BeginString", junk)
        first_soh = buf.find(SOH)
        if first_soh < 0:
            return self._wait_or_drop(64, "BeginString field too long")
        if buf[: first_soh + 1] != self._begin:
            seen = bytes(buf[2:first_soh]).decode("latin-1")
            garbled = self._drop_frame(f"unexpected BeginString {seen!r}")
            return Garbled(garbled.reason, garbled.raw, seen)
        if len(buf) < first_soh + 3:
            return None
        if buf[first_soh + 1 : first_soh + 3] != b"9=":
            return self._drop_frame("BodyLength (9) is not the second field")
        second_soh = buf.find(SOH, first_soh + 3)
        if second_soh < 0:
            return self._wait_or_drop(first_soh + 12, "BodyLength (9) too long")
        digits = bytes(buf[first_soh + 3 : second_soh])
        if not digits.isdigit() or len(digits) > 7:
            return self._drop_frame(f"BodyLength (9) is not a number: {digits!r}")
        body_length = int(digits)
        if body_length > MAX_BODY_LENGTH:
            return self._drop_frame(f"BodyLength (9) {body_length} is too large")
        body_start = second_soh + 1
        trailer = body_start + body_length
        end = trailer + 7  # "10=nnn\x01"
        if len(buf) < end:
            # a BodyLength that is too large is found out when the bytes it claims arrive
            return None
        if not self._trailer_at(trailer):
            return self._drop_frame(f"BodyLength (9) {body_length} is wrong")
        expected = bytes(buf[trailer + 3 : trailer + 6])
        actual = sum(buf[:trailer]) & 0xFF
        if not expected.isdigit() or int(expected) != actual:
            # a truncated frame may hide the start of the next message: resync there
            return self._drop_frame(
                f"CheckSum (10) is {expected.decode('latin-1')}, computed {actual:03d}"
            )
        if buf[body_start : body_start + 3] != b"35=":
            # not a message of any type: garbled, its sequence number unread
            return self._drop_frame("MsgType (35) is not the third field")
        frame = bytes(buf[:end])
        del buf[:end]
        return _parse_fields(frame, body_start, trailer)

    def _trailer_at(self, pos: int) -> bool:
        buf = self._buffer
        return (
            buf[pos - 1 : pos] == SOH
            and buf[pos : pos + 3] == b"10="
            and buf[pos + 6 : pos + 7] == SOH
        )

    def _wait_or_drop(self, limit: int, reason: str) -> Garbled | None:
        if len(self._buffer) < limit:
            return None
        return self._drop_frame(reason)

    def _drop_frame(self, reason: str) -> Garbled:
        """Discard up to the next BeginString after this one."""
        buf = self._buffer
        nxt = buf.find(self._any_begin, 1)
        cut = len(buf) if nxt < 0 else nxt
        junk = bytes(buf[:cut])
        del buf[:cut]
        return Garbled(reason, junk)


def _partial_prefix(buf: bytearray, marker: bytes) -> int:
    """How many trailing bytes of ``buf`` could start ``marker``."""
    for n in range(min(len(marker) - 1, len(buf)), 0, -1):
        if buf.endswith(marker[:n]):
            return n
    return 0


def _parse_fields(frame: bytes, body_start: int, trailer: int) -> FixMessage:
    fields: list[tuple[int, str]] = []
    defect: Defect | None = None
    # one decode per message; latin-1 maps every byte, so nothing is lost or refused
    body = frame[body_start:trailer].decode("latin-1")
    data_after = DATA_AFTER_LENGTH
    data_tag = data_length = length_tag = 0  # the DATA field the previous one announced
    pos = resume = 0  # where the current part starts; parts before ``resume`` were data
    for part in body.split("\x01")[:-1]:
        start = pos
        pos += len(part) + 1
        if start < resume:
            continue
        tag_text, sep, value = part.partition("=")
        digits = tag_text[1:] if tag_text[:1] == "-" else tag_text
        if not sep or not (digits.isascii() and digits.isdigit()) or len(digits) > 9:
            if defect is None:
                defect = Defect(INVALID_TAG_NUMBER, None, f"malformed field {part[:32]!r}")
            data_tag = 0
            continue
        tag = int(tag_text)
        if data_tag:
            if tag == data_tag:
                value_start = start + len(tag_text) + 1
                value_end = value_start + data_length
                if body[value_end : value_end + 1] == "\x01":
                    value = body[value_start:value_end]
                    resume = value_end + 1
                elif defect is None:
                    defect = Defect(
                        VALUE_INCORRECT,
                        length_tag,
                        f"tag {tag} is not {data_length} bytes long as tag {length_tag} says",
                    )
            data_tag = 0
        if tag in data_after and value.isascii() and value.isdigit():
            data_tag, data_length, length_tag = data_after[tag], int(value), tag
        if tag <= 0 and defect is None:
            defect = Defect(INVALID_TAG_NUMBER, tag, f"Invalid tag number ({tag})")
        if not value and defect is None:
            defect = Defect(TAG_WITHOUT_VALUE, tag, f"tag {tag} has no value")
        fields.append((tag, value))
    return FixMessage(fields, raw=frame, defect=defect)


def redact_fields(fields: Iterable[tuple[int, str]]) -> str:
    """``tag=value|...`` with credential fields replaced by ``***``."""
    return "|".join(f"{t}={'***' if t in SECRET_TAGS else v}" for t, v in fields)


def redact(raw: bytes) -> str:
    """Wire bytes as ``tag=value|...`` text with credential fields replaced (a data field
    by its length, so an SOH inside RawData hides nothing)."""
    text = raw.decode("latin-1")
    out = []
    data_tag = data_length = 0
    pos = 0
    while pos < len(text):
        end = text.find("\x01", pos)
        if end < 0:
            end = len(text)
        tag, sep, value = text[pos:end].partition("=")
        number = int(tag) if sep and tag.isascii() and tag.isdigit() and len(tag) < 10 else 0
        if data_tag and number == data_tag:
            value_end = pos + len(tag) + 1 + data_length
            if text[value_end : value_end + 1] in ("\x01", ""):
                end = value_end
                value = text[pos + len(tag) + 1 : end]
        data_tag = 0
        if number in DATA_AFTER_LENGTH and value.isascii() and value.isdigit():
            data_tag, data_length = DATA_AFTER_LENGTH[number], int(value)
        if number in SECRET_TAGS:
            out.append(f"{tag}=***")
        elif end > pos:
            out.append(text[pos:end])
        pos = end + 1
    return "|".join(out)
