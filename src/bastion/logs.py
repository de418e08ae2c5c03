"""Process-wide structured logging: one event name plus key=value fields, to stderr.

``configure_logging`` is called by the CLI; library code only does
``structlog.get_logger(__name__)`` and logs events. Every secret the process has loaded
is masked in every line, structlog's and the stdlib's (``bastion.vault.redact``).
"""

from __future__ import annotations

import logging
import sys
from typing import Final, Literal

import structlog

from bastion.vault.redact import RedactingFormatter, redact_event, redact_rendered

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_stdlib_handler: logging.Handler | None = None


def configure_logging(
    level: Literal["debug", "info", "warning", "error"] | str = "info",
    fmt: Literal["console", "json"] | str = "console",
) -> None:
    """Send structlog and stdlib logging to stderr at ``level``.

    ``fmt``: ``console`` renders ``time [level] event key=value`` (colored on a tty);
    ``json`` renders one JSON object per line for log shippers.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in ("console", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    numeric = _LEVELS[level]
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # a traceback is made text here, so the redaction sees it (and a renderer that
        # shows a frame's locals never runs)
        structlog.processors.format_exc_info,
        redact_event,
    ]
    if fmt == "json":
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    processors.append(redact_rendered)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Third-party libraries log through the stdlib; keep them on stderr at the same level.
    global _stdlib_handler
    root = logging.getLogger()
    if _stdlib_handler is not None:
        root.removeHandler(_stdlib_handler)
    _stdlib_handler = logging.StreamHandler(sys.stderr)
    _stdlib_handler.setFormatter(
        RedactingFormatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    )
    root.addHandler(_stdlib_handler)
    root.setLevel(numeric)
