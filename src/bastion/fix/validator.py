"""The FIX 4.4 data-dictionary check of one inbound message (compiled with mypyc).

``Validator.check`` takes the fields of one parsed message (MsgType first; the codec has
already taken BeginString, BodyLength and CheckSum off) and returns ``None`` or the
``Defect`` a session answers with a Reject (35=3): a tag the dictionary does not define
(0), a required tag missing (1), a tag not defined for the message type (2), a value
outside the field's enumeration (5), a value not of the field's type (6), a header field
after the body or a body field after the trailer (14), a tag repeated (13), a group entry
that does not start with its delimiter (15), a NumInGroup count that is not the number of
entries (16).

It is one pass over the fields: each MsgType gets, on first use, one table (a list
indexed by tag) of everything known of each field in that message (header, body or
trailer; its format; its enumeration; the group it opens), so a field costs one index
and a few compares. Nothing is made per message: the fields seen are stamps in tables
kept from one check to the next (``_Plan.stamps``, ``_Layout.stamps``).
The tables come from ``bastion.fix.dictionary44`` (generated from QuickFIX's FIX44.xml,
plain data this module imports). Which fields a session allows beyond the dictionary is
``bastion.fix.validation.ValidationConfig``'s to say.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from bastion.fix import dictionary44 as dd
from bastion.fix.codec import (
    GROUP_FIELDS_OUT_OF_ORDER,
    INCORRECT_DATA_FORMAT,
    INCORRECT_NUM_IN_GROUP_COUNT,
    INVALID_TAG_NUMBER,
    REQUIRED_TAG_MISSING,
    TAG_APPEARS_MORE_THAN_ONCE,
    TAG_NOT_DEFINED_FOR_MSG_TYPE,
    TAG_OUT_OF_ORDER,
    VALUE_INCORRECT,
    Defect,
)

USER_DEFINED_MIN: Final = 5000
"""Tags from here up are user-defined (FIX: 5000-9999 between counterparties)."""

_DATE = r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])"
_TIME = r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?"
PATTERNS: Final[dict[str, str]] = {
    "INT": r"-?\d+",
    "NUMINGROUP": r"\d+",
    "SEQNUM": r"\d+",
    "LENGTH": r"\d+",
    "FLOAT": r"-?(\d+\.?\d*|\.\d+)",
    "CHAR": r".",
    "BOOLEAN": r"[YN]",
    "UTCTIMESTAMP": _DATE + "-" + _TIME,
    "UTCTIMEONLY": _TIME,
    "UTCDATEONLY": _DATE,
    "LOCALMKTDATE": _DATE,
    "MONTHYEAR": r"\d{4}(0[1-9]|1[0-2])((0[1-9]|[12]\d|3[01])|w[1-5])?",
    "PRICE": r"-?(\d+\.?\d*|\.\d+)",
    "QTY": r"-?(\d+\.?\d*|\.\d+)",
    "AMT": r"-?(\d+\.?\d*|\.\d+)",
    "PRICEOFFSET": r"-?(\d+\.?\d*|\.\d+)",
    "PERCENTAGE": r"-?(\d+\.?\d*|\.\d+)",
}
"""The format of each field type: the rule, and the check of the types without a quicker one."""

# format codes: how a value is checked (``_format_ok``)
_ANY: Final = 0
_UNSIGNED: Final = 1
_SIGNED: Final = 2
_DECIMAL: Final = 3
_CHAR: Final = 4
_TIMESTAMP: Final = 5
_PATTERN: Final = 6
_FORMATS: Final[dict[str, int]] = {
    "INT": _SIGNED,
    "NUMINGROUP": _UNSIGNED,
    "SEQNUM": _UNSIGNED,
    "LENGTH": _UNSIGNED,
    "CHAR": _CHAR,
    "UTCTIMESTAMP": _TIMESTAMP,
    "FLOAT": _DECIMAL,
    "PRICE": _DECIMAL,
    "QTY": _DECIMAL,
    "AMT": _DECIMAL,
    "PRICEOFFSET": _DECIMAL,
    "PERCENTAGE": _DECIMAL,
}


def unsigned_text(value: str) -> bool:
    return value.isdigit() and value.isascii()


def signed_text(value: str) -> bool:
    return unsigned_text(value[1:] if value[:1] == "-" else value)


def decimal_text(value: str) -> bool:
    """An optional '-', ASCII digits with at most one '.', at least one digit (one pass,
    no slicing: this runs on every price and quantity)."""
    n = len(value)
    k = 1 if n and value[0] == "-" else 0
    dot = False
    digits = 0
    while k < n:
        c = ord(value[k])
        if 48 <= c <= 57:
            digits += 1
        elif c == 46 and not dot:
            dot = True
        else:
            return False
        k += 1
    return digits > 0


def char_text(value: str) -> bool:
    return len(value) == 1


def _two_digits(value: str, at: int) -> int:
    """The number of the two ASCII digits at ``at``, or -1."""
    tens, ones = ord(value[at]) - 48, ord(value[at + 1]) - 48
    if 0 <= tens <= 9 and 0 <= ones <= 9:
        return tens * 10 + ones
    return -1


def timestamp_text(value: str) -> bool:
    """``YYYYMMDD-HH:MM:SS`` with an optional fraction of 1 to 9 digits (no slicing: this
    runs on every SendingTime)."""
    n = len(value)
    if n < 17 or n > 27 or n == 18:
        return False
    if value[8] != "-" or value[11] != ":" or value[14] != ":":
        return False
    if _two_digits(value, 0) < 0 or _two_digits(value, 2) < 0:
        return False
    month, day = _two_digits(value, 4), _two_digits(value, 6)
    hour, minute = _two_digits(value, 9), _two_digits(value, 12)
    second = _two_digits(value, 15)
    if not (1 <= month <= 12 and 1 <= day <= 31 and 0 <= hour < 24 and 0 <= minute < 60):
        return False
    if not 0 <= second <= 60:
        return False
    if n > 17:
        if value[17] != ".":
            return False
        for k in range(18, n):
            if not 48 <= ord(value[k]) <= 57:
                return False
    return True


FAST: Final[dict[str, Callable[[str], bool]]] = {
    "INT": signed_text,
    "NUMINGROUP": unsigned_text,
    "SEQNUM": unsigned_text,
    "LENGTH": unsigned_text,
    "CHAR": char_text,
    "UTCTIMESTAMP": timestamp_text,
    "FLOAT": decimal_text,
    "PRICE": decimal_text,
    "QTY": decimal_text,
    "AMT": decimal_text,
    "PRICEOFFSET": decimal_text,
    "PERCENTAGE": decimal_text,
}
"""The checks of ``PATTERNS`` done with str methods, where those are quicker (the same
rules: a test holds the two to each other)."""


class _Layout:
    """A message body, the header, the trailer, or one repeating group's entry."""

    def __init__(
        self,
        tags: frozenset[int],
        required: tuple[int, ...],
        groups: dict[int, _Layout],
        delimiter: int,
        count_tag: int,
    ) -> None:
        self.tags = tags
        self.required = required
        self.groups = groups
        self.delimiter = delimiter
        self.count_tag = count_tag
        size = max(tags, default=0) + 1
        self.member = bytearray(size)  # by tag: 1 for the tags of this layout
        for tag in tags:
            self.member[tag] = 1
        self.stamps = bytearray(size)  # by tag: ``generation`` for those seen in an entry
        self.generation = 0

    def next_generation(self) -> int:
        """A new group entry: no tag of the layout seen in it yet."""
        generation = self.generation + 1
        if generation > 255:
            self.stamps = bytearray(len(self.member))
            generation = 1
        self.generation = generation
        return generation


class _Field:
    """What a message's check needs of one field: where it goes, its format and values."""

    def __init__(
        self,
        slot: int,
        section: int,
        fmt: int,
        pattern: re.Pattern[str] | None,
        values: frozenset[str],
        multi: bool,
        group: _Layout | None,
    ) -> None:
        self.slot = slot  # its place in the message's table of fields seen
        self.section = section  # 0 header, 1 body, 2 trailer
        self.fmt = fmt
        self.pattern = pattern
        self.values = values
        self.multi = multi
        self.group = group
        self.checked = fmt != _ANY or bool(values)


class _Plan:
    """One MsgType's fields (header, body, trailer) and its required tags.

    ``stamps`` is the table of fields seen, kept from one check to the next rather than
    made for each message: a field was seen in this check if its stamp is this check's
    ``generation`` (1 to 255; the table is cleared when the count wraps)."""

    def __init__(self, fields: dict[int, _Field], required: tuple[int, ...]) -> None:
        self.fields = fields
        self.required = required
        self.required_slots = tuple(fields[tag].slot for tag in required)
        self.size = len(fields)
        self.type_slot = fields[35].slot
        by_tag: list[_Field | None] = [None] * (max(fields) + 1)
        for tag, field in fields.items():
            by_tag[tag] = field
        self.by_tag = by_tag  # a field by its tag: an index, no hashing of a boxed int
        self.stamps = bytearray(self.size)
        self.generation = 0

    def next_generation(self) -> int:
        generation = self.generation + 1
        if generation > 255:
            self.stamps = bytearray(self.size)
            generation = 1
        self.generation = generation
        return generation


Member = tuple[int, bool, "_Layout | None"]


def _flatten(members: dd.Members, required: bool = True) -> list[Member]:
    """Fields and groups in order, components opened (a required field of an optional
    component is not required)."""
    out: list[Member] = []
    for member in members:
        head = member[0]
        if isinstance(head, str):
            out += _flatten(dd.COMPONENTS[head], required and member[1])
        elif len(member) == 3:
            sub: dd.Members = member[2]
            out.append((head, required and member[1], _layout(sub, head)))
        else:
            out.append((head, required and member[1], None))
    return out


def _layout(members: dd.Members, count_tag: int = 0, skip: frozenset[int] = frozenset()) -> _Layout:
    flat = [m for m in _flatten(members) if m[0] not in skip]
    groups: dict[int, _Layout] = {}
    for tag, _, group in flat:
        if group is not None:
            groups[tag] = group
    return _Layout(
        tags=frozenset(tag for tag, _, _ in flat),
        required=tuple(tag for tag, required, _ in flat if required),
        groups=groups,
        delimiter=flat[0][0] if count_tag else 0,
        count_tag=count_tag,
    )


def _all_tags(members: dd.Members) -> frozenset[int]:
    tags: set[int] = set()
    for tag, _, group in _flatten(members):
        tags.add(tag)
        if group is not None:
            tags |= group.tags
    return frozenset(tags)


ENVELOPE_TAGS: Final = _all_tags(dd.HEADER) | _all_tags(dd.TRAILER)
"""Every tag of the standard header and trailer (and their groups): what a reply rebuilds."""


def _field(tag: int, section: int, group: _Layout | None, slot: int = 0) -> _Field:
    spec = dd.FIELDS.get(tag)
    if spec is None:
        return _Field(slot, section, _ANY, None, frozenset(), False, group)
    kind, values = spec[1], spec[2]
    fmt = _FORMATS.get(kind, _ANY)
    pattern = None
    if fmt == _ANY and kind in PATTERNS:
        fmt = _PATTERN
        pattern = re.compile(PATTERNS[kind], re.ASCII | re.DOTALL)
    multi = kind == "MULTIPLEVALUESTRING"
    return _Field(slot, section, fmt, pattern, frozenset(values), multi, group)


def _format_ok(field: _Field, value: str) -> bool:
    fmt = field.fmt
    if fmt == _DECIMAL:
        return decimal_text(value)
    if fmt == _UNSIGNED:
        return value.isdigit() and value.isascii()
    if fmt == _SIGNED:
        return signed_text(value)
    if fmt == _CHAR:
        return len(value) == 1
    if fmt == _TIMESTAMP:
        return timestamp_text(value)
    if fmt == _PATTERN:
        pattern = field.pattern
        return pattern is None or pattern.fullmatch(value) is not None
    return True


def _value(tag: int, field: _Field, value: str) -> Defect | None:
    values = field.values
    if values and value in values:  # an enumerated value is of the field's type
        return None
    if not _format_ok(field, value):
        return _defect(INCORRECT_DATA_FORMAT, tag, "Incorrect data format for value")
    if values and not (field.multi and all(v in values for v in value.split(" "))):
        return _defect(VALUE_INCORRECT, tag, "Value is incorrect (out of range) for this tag")
    return None


class Validator:
    """Checks messages against the FIX 4.4 dictionary; see the module docstring."""

    def __init__(
        self,
        *,
        validate_user_defined_fields: bool = True,
        allow_unknown_fields: bool = False,
        extra_fields: dict[str, frozenset[int]] | None = None,
    ) -> None:
        self.validate_user_defined_fields = validate_user_defined_fields
        self.allow_unknown_fields = allow_unknown_fields
        self.extra_fields: dict[str, frozenset[int]] = extra_fields or {}
        # the codec takes 8, 9 and 10 off: they are known but never required here
        self._header = _layout(dd.HEADER, skip=frozenset({8, 9}))
        self._trailer = _layout(dd.TRAILER, skip=frozenset({10}))
        self._bodies: dict[str, dd.Members] = {t: spec[2] for t, spec in dd.MESSAGES.items()}
        self._plans: dict[str, _Plan] = {}
        # every field whose value is checked, by tag, where it is not in a plan
        self._fields: list[_Field | None] = [None] * (max(dd.FIELDS) + 1)
        for tag in dd.FIELDS:
            field = _field(tag, 1, None)
            if field.checked:
                self._fields[tag] = field

    def _plan(self, msg_type: str) -> _Plan | None:
        plan = self._plans.get(msg_type)
        if plan is not None:
            return plan
        members = self._bodies.get(msg_type)
        if members is None:
            return None
        body = _layout(members)
        fields: dict[int, _Field] = {}
        # a tag of the header or trailer is one wherever it appears
        for section, layout, extra in (
            (1, body, ()),
            (2, self._trailer, (10,)),
            (0, self._header, (8, 9)),
        ):
            for tag in (*layout.tags, *extra):
                fields[tag] = _field(tag, section, layout.groups.get(tag))
        for slot, tag in enumerate(fields):
            old = fields[tag]
            fields[tag] = _field(tag, old.section, old.group, slot)
        plan = _Plan(fields, self._header.required + body.required)
        self._plans[msg_type] = plan
        return plan

    def check(self, fields: list[tuple[int, str]]) -> Defect | None:
        """``None`` if the message is valid, else the first thing wrong with it."""
        if not fields:
            return None
        msg_type = fields[0][1]
        plan = self._plan(msg_type)
        if plan is None:
            return None  # an unknown MsgType is the session's to answer (reason 11)
        known = plan.by_tag
        top = len(known)
        section = 0  # 0 header, 1 body, 2 trailer
        now = plan.next_generation()
        seen = plan.stamps  # by slot: ``now`` for the fields of the plan seen
        seen[plan.type_slot] = now
        others: set[int] | None = None  # the tags seen that are not in the plan
        n = len(fields)
        i = 1
        while i < n:
            tag, value = fields[i]
            i += 1
            field = known[tag] if 0 <= tag < top else None
            if field is None:
                if section == 2:
                    return _defect(TAG_OUT_OF_ORDER, tag, "Tag specified out of required order")
                section = 1
                problem = self._undefined(tag, msg_type)
                if problem is not None:
                    return problem
                if others is None:
                    others = {tag}
                elif tag in others:
                    return _defect(TAG_APPEARS_MORE_THAN_ONCE, tag, "Tag appears more than once")
                else:
                    others.add(tag)
                field = self._checked_field(tag)
                if field is not None:
                    problem = _value(tag, field, value)
                    if problem is not None:
                        return problem
                continue
            if field.section == 0:
                if section:
                    return _defect(TAG_OUT_OF_ORDER, tag, "Tag specified out of required order")
            elif field.section == 1:
                if section == 2:
                    return _defect(TAG_OUT_OF_ORDER, tag, "Tag specified out of required order")
                section = 1
            else:
                section = 2
            slot = field.slot
            if seen[slot] == now:
                return _defect(TAG_APPEARS_MORE_THAN_ONCE, tag, "Tag appears more than once")
            seen[slot] = now
            if field.checked:
                problem = _value(tag, field, value)
                if problem is not None:
                    return problem
            group = field.group
            if group is not None:
                i, problem = self._group(group, fields, i, int(value))
                if problem is not None:
                    return problem
        required = plan.required
        for j, slot in enumerate(plan.required_slots):
            if seen[slot] != now:
                return _defect(REQUIRED_TAG_MISSING, required[j], "Required tag missing")
        return None

    def _undefined(self, tag: int, msg_type: str) -> Defect | None:
        extra = self.extra_fields.get(msg_type)
        if extra is not None and tag in extra:
            return None
        if tag >= USER_DEFINED_MIN and not self.validate_user_defined_fields:
            return None
        if self.allow_unknown_fields and (tag < USER_DEFINED_MIN or tag in dd.FIELDS):
            return None
        if tag not in dd.FIELDS:
            return _defect(INVALID_TAG_NUMBER, tag, "Invalid tag number")
        return _defect(TAG_NOT_DEFINED_FOR_MSG_TYPE, tag, "Tag not defined for this message type")

    def _checked_field(self, tag: int) -> _Field | None:
        fields = self._fields
        return fields[tag] if 0 <= tag < len(fields) else None

    def _group_value(self, tag: int, value: str) -> Defect | None:
        field = self._checked_field(tag)
        return None if field is None else _value(tag, field, value)

    def _group(
        self, group: _Layout, fields: list[tuple[int, str]], i: int, count: int
    ) -> tuple[int, Defect | None]:
        """Reads the entries of ``group`` from ``fields[i]``; returns where it ends."""
        entries = 0
        n = len(fields)
        delimiter, member = group.delimiter, group.member
        top = len(member)
        while i < n:
            tag, value = fields[i]
            if tag != delimiter:
                if 0 <= tag < top and member[tag]:
                    return i, _defect(
                        GROUP_FIELDS_OUT_OF_ORDER, tag, "Repeating group fields out of order"
                    )
                break
            entries += 1
            now = group.next_generation()
            seen = group.stamps
            seen[tag] = now
            problem = self._group_value(tag, value)
            i += 1
            while problem is None and i < n:
                tag, value = fields[i]
                if tag == delimiter or not (0 <= tag < top and member[tag]):
                    break
                if seen[tag] == now:
                    return i, _defect(TAG_APPEARS_MORE_THAN_ONCE, tag, "Tag appears more than once")
                seen[tag] = now
                i += 1
                problem = self._group_value(tag, value)
                sub = group.groups.get(tag)
                if problem is None and sub is not None:
                    i, problem = self._group(sub, fields, i, int(value))
            if problem is not None:
                return i, problem
            for tag in group.required:
                if seen[tag] != now:
                    return i, _defect(REQUIRED_TAG_MISSING, tag, "Required tag missing")
        if entries != count:
            return i, _defect(
                INCORRECT_NUM_IN_GROUP_COUNT,
                group.count_tag,
                "Incorrect NumInGroup count for repeating group",
            )
        return i, None


def _defect(reason: int, tag: int, text: str) -> Defect:
    field = dd.FIELDS.get(tag)
    return Defect(reason, tag, f"{text}: {field[0] if field else 'tag'} ({tag})")
