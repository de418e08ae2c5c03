"""Alert summaries: ``"venue {venue}: {reason}"`` filled from an alert's values.

A template holds plain ``{name}`` placeholders only: no attribute or index access
(``{0.__class__}``), no conversion (``!r``), no format spec (``:>99999``). ``check``
refuses anything else when the config is loaded, naming the key; ``render`` substitutes
the parsed pieces itself (never ``str.format``), so a value is text, never code, and a
name it does not know renders as ``?``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from typing import Final

from bastion.errors import ConfigError

MAX_TEMPLATE_CHARS: Final = 1000
MAX_VALUE_CHARS: Final = 200  # one substituted value; a summary stays a line
_PARSER: Final = string.Formatter()


def placeholders(template: str, key: str) -> list[str]:
    """The names ``template`` refers to; ``ConfigError`` naming ``key`` if it is not a
    plain ``{name}`` template."""
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ConfigError(f"key '{key}': longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        parsed = list(_PARSER.parse(template))
    except ValueError as error:
        raise ConfigError(f"key '{key}': not a summary template: {error}") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or conversion is not None or spec:
            raise ConfigError(
                f"key '{key}': only plain placeholders such as {{venue}} or {{value}} are "
                f"allowed (no attributes, indexes, conversions or format specs): "
                f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            )
        names.append(name)
    return names


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{name}`` replaced by ``values[name]`` (``?`` if absent)."""
    out: list[str] = []
    for literal, name, _, _ in _PARSER.parse(template):
        out.append(literal)
        if name is not None:
            out.append(values.get(name, "?")[:MAX_VALUE_CHARS])
    return "".join(out)


def format_value(value: float) -> str:
    """A metric's value as a summary shows it (``0.0512``, ``3``, ``-1250.5``)."""
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"
