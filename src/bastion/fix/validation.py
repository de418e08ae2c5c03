"""Validation of inbound FIX 4.4 messages against the data dictionary.

``Validator.check`` takes the fields of one parsed message (MsgType first; the codec has
already taken BeginString, BodyLength and CheckSum off) and returns ``None`` or the
``Defect`` a session answers with a Reject (35=3): a tag the dictionary does not define
(0), a required tag missing (1), a tag not defined for the message type (2), a value
outside the field's enumeration (5), a value not of the field's type (6), a header field
after the body or a body field after the trailer (14), a tag repeated (13), a group entry
that does not start with its delimiter (15), a NumInGroup count that is not the number of
entries (16).

It is one pass over the fields with sets and dicts built once per configuration from
``bastion.fix.dictionary44`` (generated from QuickFIX's FIX44.xml, never written by hand),
so its cost per message stays a few microseconds (``bench/fix_validation.py``).

``ValidationConfig`` is what a broker configures per session: validate user-defined
fields (tags 5000 and up) or let them through, allow fields the dictionary does not
define for the message type, and the user-defined fields each message type may carry
(``PROJECT_FIELDS``, bastion's own, always).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from bastion.errors import ConfigError
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

USER_DEFINED_MIN = 5000
"""Tags from here up are user-defined (FIX: 5000-9999 between counterparties)."""

PROJECT_FIELDS: dict[str, tuple[int, ...]] = {"A": (8013, 8014)}
"""bastion's own user-defined fields, allowed in every session: on the Logon,
CancelOrdersOnDisconnect (8013) and FencingEpoch (8014)."""

_DATE = r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])"
_TIME = r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?"
_PATTERNS = {
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
}
for _decimal in ("PRICE", "QTY", "AMT", "PRICEOFFSET", "PERCENTAGE"):
    _PATTERNS[_decimal] = _PATTERNS["FLOAT"]


def _unsigned(value: str) -> bool:
    return value.isdigit() and value.isascii()


def _signed(value: str) -> bool:
    return _unsigned(value[1:] if value[:1] == "-" else value)


def _decimal_text(value: str) -> bool:
    digits = (value[1:] if value[:1] == "-" else value).replace(".", "", 1)
    return digits.isdigit() and digits.isascii()


_FAST: dict[str, Callable[[str], bool]] = {
    "INT": _signed,
    "NUMINGROUP": _unsigned,
    "SEQNUM": _unsigned,
    "LENGTH": _unsigned,
    "CHAR": lambda value: len(value) == 1,
}
"""The checks of ``_PATTERNS`` done with str methods, where those are quicker (the same
rules: a test holds the two to each other)."""
for _decimal in ("FLOAT", "PRICE", "QTY", "AMT", "PRICEOFFSET", "PERCENTAGE"):
    _FAST[_decimal] = _decimal_text


class ValidationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one session validates what it receives (a ``[validation]`` table).

    - ``enabled``: check every inbound message against the FIX 4.4 dictionary.
    - ``validate_user_defined_fields``: tags from 5000 up must be allowed for the message
      type (``extra_fields``); off: they pass unchecked.
    - ``allow_unknown_fields``: accept tags the dictionary does not define for the
      message type (or at all, below 5000); their values are still checked when the
      dictionary knows the field.
    - ``extra_fields``: MsgType -> user-defined tags it may carry, beyond
      ``PROJECT_FIELDS``, e.g. ``{ "D" = [9001] }``.
    """

    enabled: bool = True
    validate_user_defined_fields: bool = True
    allow_unknown_fields: bool = False
    extra_fields: dict[str, list[int]] = {}

    def check(self, key: str) -> None:
        for msg_type, tags in self.extra_fields.items():
            for tag in tags:
                if tag <= 0:
                    raise ConfigError(
                        f"key '{key}.extra_fields.{msg_type}': tag must be > 0, got {tag}"
                    )

    def validator(self) -> Validator | None:
        """The validator of this configuration (shared by sessions configured alike)."""
        if not self.enabled:
            return None
        extra = tuple(sorted((t, tuple(sorted(tags))) for t, tags in self.extra_fields.items()))
        return _validator(self.validate_user_defined_fields, self.allow_unknown_fields, extra)


@functools.cache
def _validator(
    user_defined: bool, allow_unknown: bool, extra: tuple[tuple[str, tuple[int, ...]], ...]
) -> Validator:
    allowed: dict[str, frozenset[int]] = {}
    for msg_type, tags in (*PROJECT_FIELDS.items(), *extra):
        allowed[msg_type] = allowed.get(msg_type, frozenset()) | frozenset(tags)
    return Validator(
        validate_user_defined_fields=user_defined,
        allow_unknown_fields=allow_unknown,
        extra_fields=allowed,
    )


@dataclass(frozen=True, slots=True)
class _Layout:
    """A message body, the header, the trailer, or one repeating group's entry."""

    tags: frozenset[int]
    required: tuple[int, ...]
    groups: dict[int, _Layout]
    delimiter: int = 0
    count_tag: int = 0


def _flatten(members: dd.Members, required: bool = True) -> list[tuple[int, bool, _Layout | None]]:
    """Fields and groups in order, components opened (a required field of an optional
    component is not required)."""
    out: list[tuple[int, bool, _Layout | None]] = []
    for member in members:
        if isinstance(member[0], str):
            out += _flatten(dd.COMPONENTS[member[0]], required and member[1])
        elif len(member) == 3:
            out.append((member[0], required and member[1], _layout(member[2], member[0])))
        else:
            out.append((member[0], required and member[1], None))
    return out


def _layout(members: dd.Members, count_tag: int = 0, skip: frozenset[int] = frozenset()) -> _Layout:
    flat = [m for m in _flatten(members) if m[0] not in skip]
    return _Layout(
        tags=frozenset(tag for tag, _, _ in flat),
        required=tuple(tag for tag, required, _ in flat if required),
        groups={tag: group for tag, _, group in flat if group is not None},
        delimiter=flat[0][0] if count_tag else 0,
        count_tag=count_tag,
    )


def _all_tags(members: dd.Members) -> frozenset[int]:
    flat = _flatten(members)
    return frozenset(tag for tag, _, _ in flat).union(
        *(group.tags for _, _, group in flat if group is not None)
    )


ENVELOPE_TAGS = _all_tags(dd.HEADER) | _all_tags(dd.TRAILER)
"""Every tag of the standard header and trailer (and their groups): what a reply rebuilds."""


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
        self.extra_fields = extra_fields or {}
        # the codec takes 8, 9 and 10 off: they are known but never required here
        self._header = _layout(dd.HEADER, skip=frozenset({8, 9}))
        self._header_tags = self._header.tags | {8, 9}
        self._trailer = _layout(dd.TRAILER, skip=frozenset({10}))
        self._trailer_tags = self._trailer.tags | {10}
        self._bodies = {msg_type: _layout(spec[2]) for msg_type, spec in dd.MESSAGES.items()}
        # tag -> (format check, enumeration, several values), for the fields that have either
        self._checks: dict[int, tuple[Callable[[str], object] | None, frozenset[str], bool]] = {}
        for tag, (_name, kind, values) in dd.FIELDS.items():
            fmt: Callable[[str], object] | None = _FAST.get(kind)
            pattern = _PATTERNS.get(kind)
            if fmt is None and pattern is not None:
                fmt = re.compile(pattern, re.ASCII | re.DOTALL).fullmatch
            if fmt is not None or values:
                self._checks[tag] = (fmt, frozenset(values), kind == "MULTIPLEVALUESTRING")

    def check(self, fields: Sequence[tuple[int, str]]) -> Defect | None:
        """``None`` if the message is valid, else the first thing wrong with it."""
        body = self._bodies.get(fields[0][1]) if fields else None
        if body is None:
            return None  # an unknown MsgType is the session's to answer (reason 11)
        header, header_tags, trailer_tags = self._header, self._header_tags, self._trailer_tags
        section = 0  # 0 header, 1 body, 2 trailer
        seen: set[int] = {35}
        n = len(fields)
        i = 1
        while i < n:
            tag, value = fields[i]
            i += 1
            if tag in header_tags:
                if section:
                    return _defect(TAG_OUT_OF_ORDER, tag, "Tag specified out of required order")
                layout = header
            elif tag in trailer_tags:
                section = 2
                layout = self._trailer
            else:
                if section == 2:
                    return _defect(TAG_OUT_OF_ORDER, tag, "Tag specified out of required order")
                section = 1
                layout = body
                if tag not in body.tags:
                    problem = self._undefined(tag, fields[0][1])
                    if problem is not None:
                        return problem
            if tag in seen:
                return _defect(TAG_APPEARS_MORE_THAN_ONCE, tag, "Tag appears more than once")
            seen.add(tag)
            problem = self._value(tag, value)
            if problem is not None:
                return problem
            group = layout.groups.get(tag)
            if group is not None:
                i, problem = self._group(group, fields, i, int(value))
                if problem is not None:
                    return problem
        for required in (header.required, body.required):
            for tag in required:
                if tag not in seen:
                    return _defect(REQUIRED_TAG_MISSING, tag, "Required tag missing")
        return None

    def _undefined(self, tag: int, msg_type: str) -> Defect | None:
        if tag in self.extra_fields.get(msg_type, ()):
            return None
        if tag >= USER_DEFINED_MIN and not self.validate_user_defined_fields:
            return None
        if self.allow_unknown_fields and (tag < USER_DEFINED_MIN or tag in dd.FIELDS):
            return None
        if tag not in dd.FIELDS:
            return _defect(INVALID_TAG_NUMBER, tag, "Invalid tag number")
        return _defect(TAG_NOT_DEFINED_FOR_MSG_TYPE, tag, "Tag not defined for this message type")

    def _value(self, tag: int, value: str) -> Defect | None:
        check = self._checks.get(tag)
        if check is None:
            return None
        fmt, enum, multi = check
        if value in enum:  # an enumerated value is of the field's type
            return None
        if fmt is not None and not fmt(value):
            return _defect(INCORRECT_DATA_FORMAT, tag, "Incorrect data format for value")
        if enum and not (multi and all(v in enum for v in value.split(" "))):
            return _defect(VALUE_INCORRECT, tag, "Value is incorrect (out of range) for this tag")
        return None

    def _group(
        self, group: _Layout, fields: Sequence[tuple[int, str]], i: int, count: int
    ) -> tuple[int, Defect | None]:
        """Reads the entries of ``group`` from ``fields[i]``; returns where it ends."""
        entries = 0
        n = len(fields)
        delimiter, tags = group.delimiter, group.tags
        while i < n:
            tag, value = fields[i]
            if tag != delimiter:
                if tag in tags:
                    return i, _defect(
                        GROUP_FIELDS_OUT_OF_ORDER, tag, "Repeating group fields out of order"
                    )
                break
            entries += 1
            seen = {tag}
            problem = self._value(tag, value)
            i += 1
            while problem is None and i < n:
                tag, value = fields[i]
                if tag == delimiter or tag not in tags:
                    break
                if tag in seen:
                    return i, _defect(TAG_APPEARS_MORE_THAN_ONCE, tag, "Tag appears more than once")
                seen.add(tag)
                i += 1
                problem = self._value(tag, value)
                sub = group.groups.get(tag)
                if problem is None and sub is not None:
                    i, problem = self._group(sub, fields, i, int(value))
            if problem is not None:
                return i, problem
            for tag in group.required:
                if tag not in seen:
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
