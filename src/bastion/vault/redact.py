"""Every secret value this process has loaded, kept out of its logs.

The vault registers each value it decrypts, and its passphrase, with ``register``
(as does a password handed down through the environment). ``redact_event`` is a
structlog processor that replaces them, in the plain, hex and base64 forms, wherever
they appear in a log line: the event, every field (recursively through str, bytes and
containers; any other object by its ``repr``), and a traceback, once
``format_exc_info`` has made it text. ``redact_rendered`` catches what the renderer
adds, and ``RedactingFormatter`` does the same for the stdlib logging handler.

What is not covered: a value shorter than ``MIN_LENGTH`` characters (redacting it would
mangle every line), and output that bypasses logging (a ``print``).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, Final

MIN_LENGTH: Final = 4
MASK: Final = "***"

_lock = threading.Lock()
_values: set[str] = set()
_text: re.Pattern[str] | None = None
_bytes: re.Pattern[bytes] | None = None


def _forms(value: str) -> Iterable[str]:
    """The forms a value is likely to be logged in: as is, hex, and base64."""
    raw = value.encode()
    yield value
    yield raw.hex()
    yield raw.hex().upper()
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode()
        yield text
        yield text.rstrip("=")


def register(value: str) -> None:
    """Redact ``value`` from every log line from now on (in this process)."""
    global _text, _bytes
    if len(value) < MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        forms = {form for v in _values for form in _forms(v)}
        # longest first: a value that contains another is masked whole
        ordered = sorted(forms, key=len, reverse=True)
        _text = re.compile("|".join(re.escape(f) for f in ordered))
        _bytes = re.compile(b"|".join(re.escape(f.encode()) for f in ordered))


def forget_all() -> None:
    """Empty the set (tests: each starts with a process that has loaded nothing)."""
    global _text, _bytes
    with _lock:
        _values.clear()
        _text = _bytes = None


def registered() -> int:
    """How many values are registered."""
    return len(_values)


def redact(text: str) -> str:
    """``text`` with every registered value (in any of its forms) masked."""
    pattern = _text
    return text if pattern is None else pattern.sub(MASK, text)


def _redact_value(value: object, text: re.Pattern[str], raw: re.Pattern[bytes]) -> object:
    if isinstance(value, str):
        return text.sub(MASK, value)
    if isinstance(value, bytes | bytearray):
        return raw.sub(MASK.encode(), bytes(value))
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {_redact_value(k, text, raw): _redact_value(v, text, raw) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact_value(v, text, raw) for v in value]
        return items if isinstance(value, list) else tuple(items)
    shown = repr(value)  # an object the renderer would repr: mask it only if it leaks
    masked = text.sub(MASK, shown)
    return value if masked == shown else masked


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask registered values in the event and every field. Place
    it after ``format_exc_info`` (so a traceback is text) and before the renderer."""
    text, raw = _text, _bytes
    if text is None or raw is None:
        return event_dict
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_value(value, text, raw)
    return event_dict


def redact_rendered(_logger: Any, _method: str, rendered: Any) -> Any:
    """structlog processor after the renderer: mask what the rendered line still holds
    (typed ``Any``: structlog types a processor's input as the event dict)."""
    return redact(rendered) if isinstance(rendered, str) else rendered


class RedactingFormatter(logging.Formatter):
    """A stdlib formatter that masks registered values in the whole formatted record,
    message arguments and traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
