"""msgspec's validation errors in the words of a TOML author: the dotted key
(``venues[1].port``), TOML type names, the valid keys or the closest one for a typo, and
the allowed values of an enum or of a table's ``kind``."""

from __future__ import annotations

import difflib
import re
from typing import Any, Final

import msgspec
from msgspec import inspect as mi

_MSGSPEC_ERROR = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`$")
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`$")
_INVALID_ENUM = re.compile(r"^Invalid enum value (?P<value>.*)$")
_INVALID_TAG = re.compile(r"^Invalid value (?P<value>.*)$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")

# msgspec's names for types -> the names a TOML author knows.
_TYPE_NAMES: Final = {
    "object": "table",
    "decimal": 'decimal (a string like "0.01" or a number)',
}


def describe_validation_error(
    text: str, schema: type[msgspec.Struct], document: object = None
) -> str:
    """One line for a msgspec ``ValidationError`` met loading ``document`` (the parsed
    TOML) into ``schema``."""
    match = _MSGSPEC_ERROR.match(text)
    message, path = (match["message"], match["path"] or "") if match else (text, "")
    key = path.lstrip(".")
    if m := _UNKNOWN.match(message):
        full = f"{key}.{m['field']}" if key else m["field"]
        struct = _type_at(schema, path, document)
        return f"unknown key '{full}'{_suggest(m['field'], struct)}"
    if m := _INVALID_TAG.match(message):
        kinds = _kinds_at(schema, path, document)
        options = f" (expected one of: {', '.join(kinds)})" if kinds else ""
        return f"key '{key}': invalid value {m['value']}{options}"
    if m := _MISSING.match(message):
        full = f"{key}.{m['field']}" if key else m["field"]
        return f"missing required key '{full}'"
    where = f"key '{key}'" if key else "top level"
    if m := _EXPECTED.match(message):
        return f"{where}: expected {_toml_type(m['expected'])}, got {_toml_type(m['got'])}"
    if m := _INVALID_ENUM.match(message):
        options = _options(_type_at(schema, path))
        return f"{where}: invalid value {m['value']}{options}"
    return f"{where}: {message[:1].lower()}{message[1:]}"


def _toml_type(msgspec_type: str) -> str:
    parts = [p.strip() for p in msgspec_type.split("|") if p.strip() != "null"]
    return " or ".join(_TYPE_NAMES.get(p, p) for p in parts)


def _type_at(schema: type[msgspec.Struct], path: str, document: object = None) -> mi.Type | None:
    """The msgspec type found at a validation path like ``.strategies[0].params``; a
    table that is one of several kinds (``[[venues]]``) resolves by its ``kind`` in
    ``document``."""
    current: mi.Type | None = mi.type_info(schema)
    value = document
    for name, index in _SEGMENT.findall(path):
        current = _unwrap(current, value)
        if index and isinstance(current, mi.ListType):
            current = current.item_type
            value = _item(value, int(index))
        elif name and isinstance(current, mi.StructType):
            current = next((f.type for f in current.fields if f.encode_name == name), None)
            value = value.get(name) if isinstance(value, dict) else None
        else:
            return None
    return _unwrap(current, value)


def _kinds_at(schema: type[msgspec.Struct], path: str, document: object) -> list[str]:
    """The kinds a table may be, when ``path`` is its tag key (``.venues[0].kind``)."""
    parent = _type_at(schema, path.rsplit(".", 1)[0], None)
    if not isinstance(parent, mi.UnionType):
        return []
    return [str(t.tag) for t in parent.types if isinstance(t, mi.StructType) and t.tag]


def _item(value: object, index: int) -> object:
    return value[index] if isinstance(value, list) and index < len(value) else None


def _unwrap(t: mi.Type | None, value: object = None) -> mi.Type | None:
    if isinstance(t, mi.UnionType):
        rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(rest) == 1:
            return rest[0]
        if isinstance(value, dict):  # tagged tables: the one its tag names
            for member in rest:
                if (
                    isinstance(member, mi.StructType)
                    and member.tag_field is not None
                    and value.get(member.tag_field) == member.tag
                ):
                    return member
    return t


def _suggest(field: str, struct: mi.Type | None) -> str:
    if not isinstance(struct, mi.StructType):
        return ""
    valid = [f.encode_name for f in struct.fields]
    close = difflib.get_close_matches(field, valid, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (valid keys: {', '.join(valid)})"


def _options(t: mi.Type | None) -> str:
    values: list[Any] = []
    if isinstance(t, mi.LiteralType):
        values = list(t.values)
    elif isinstance(t, mi.EnumType):
        values = [member.value for member in t.cls]
    return f" (expected one of: {', '.join(str(v) for v in values)})" if values else ""
