"""Process-wide structured logging: one event name plus key=value fields, to stderr and,
when the config names one, to a log file.

``configure_logging`` is called by the CLI; library code only does
``structlog.get_logger(__name__)`` and logs events. Every secret the process has loaded
is masked in every line, structlog's and the stdlib's, on stderr and in the file
(``bastion.vault.redact``).

The file (``LogFile``) holds the same lines as stderr, in the same format, without
colours. It is created mode 0600 whatever the umask, in a directory created 0700 if
missing; it is rotated by size (``logging.handlers.RotatingFileHandler``: ``PATH.1`` is
the newest backup), or, with ``max_bytes`` 0, left to an external logrotate and reopened
when moved (``WatchedFileHandler``).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import sys
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler, WatchedFileHandler
from pathlib import Path
from typing import Any, Final, Literal

import structlog

from bastion.vault.files import FILE_MODE, make_private_dir
from bastion.vault.redact import RedactingFormatter, redact, redact_event, redact_rendered

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_STDLIB_FORMAT: Final = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
_RENDERED: Final = "bastion_rendered"
"""The attribute that marks a record whose message is a finished line (structlog's, a
strategy process's output), written as is."""
_COLOURS: Final = re.compile(r"\x1b\[[0-9;]*m")

_stdlib_handler: logging.Handler | None = None
_file_handler: logging.Handler | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LogFile:
    """Where the log is written besides stderr: ``path``, rotated when it would pass
    ``max_bytes`` keeping ``backups`` old files; ``max_bytes`` 0: never rotated here,
    reopened when an external logrotate moves it."""

    path: Path
    max_bytes: int
    backups: int


def configure_logging(
    level: Literal["debug", "info", "warning", "error"] | str = "info",
    fmt: Literal["console", "json"] | str = "console",
    file: LogFile | None = None,
) -> None:
    """Send structlog and stdlib logging to stderr (and ``file``) at ``level``.

    ``fmt``: ``console`` renders ``time [level] event key=value`` (colored on a tty);
    ``json`` renders one JSON object per line for log shippers. A ``file`` that cannot
    be opened raises ``OSError`` (nothing is changed then).
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in ("console", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    numeric = _LEVELS[level]
    new_file = None if file is None else _open_file(file)
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
    stderr = sys.stderr
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *_args: _TeeLogger(stderr, new_file),
        cache_logger_on_first_use=False,
    )
    # Third-party libraries log through the stdlib; keep them on stderr (and in the
    # file) at the same level.
    global _stdlib_handler, _file_handler
    _remove_handlers()
    _stdlib_handler = logging.StreamHandler(stderr)
    _stdlib_handler.setFormatter(RedactingFormatter(_STDLIB_FORMAT))
    root = logging.getLogger()
    root.addHandler(_stdlib_handler)
    _file_handler = new_file
    if new_file is not None:
        root.addHandler(new_file)
    root.setLevel(numeric)


def reset_logging() -> None:
    """structlog's defaults, and no handler of ours on the stdlib's root (the log file
    closed): tests whose captured stderr ends."""
    structlog.reset_defaults()
    _remove_handlers()


def relay_lines(text: str) -> None:
    """Write finished lines (another process's output) to stderr and the log file, with
    registered secrets masked."""
    text = redact(text)
    sys.stderr.write(text)
    sys.stderr.flush()
    handler = _file_handler
    if handler is not None:
        handler.handle(_line_record(text.removesuffix("\n")))


def _remove_handlers() -> None:
    global _stdlib_handler, _file_handler
    root = logging.getLogger()
    if _stdlib_handler is not None:
        root.removeHandler(_stdlib_handler)
        _stdlib_handler = None
    if _file_handler is not None:
        root.removeHandler(_file_handler)
        _file_handler.close()
        _file_handler = None


class _TeeLogger(structlog.PrintLogger):
    """structlog's logger: each rendered line to stderr and, if there is one, the file."""

    def __init__(self, stderr: Any, file: logging.Handler | None) -> None:
        super().__init__(file=stderr)
        self._log_file = file

    def msg(self, message: str) -> None:
        super().msg(message)
        if self._log_file is not None:
            self._log_file.handle(_line_record(message))

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def _line_record(line: str) -> logging.LogRecord:
    record = logging.LogRecord("bastion", logging.INFO, "", 0, line, None, None)
    setattr(record, _RENDERED, True)
    return record


class _FileFormatter(RedactingFormatter):
    """A finished line as is (colours taken out); a stdlib record as stderr shows it;
    both with every registered secret masked."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, _RENDERED, False):
            return redact(_COLOURS.sub("", record.getMessage()))
        return super().format(record)


def _open_private(path: str) -> io.TextIOWrapper:
    """``path`` opened to append, created 0600 whatever the umask."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    try:
        fd = os.open(path, flags | os.O_EXCL, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # the umask cut os.open's mode
    except FileExistsError:
        fd = os.open(path, flags, FILE_MODE)
    return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")


class _RotatingPrivateFile(RotatingFileHandler):
    def _open(self) -> io.TextIOWrapper:
        return _open_private(self.baseFilename)


class _WatchedPrivateFile(WatchedFileHandler):
    def _open(self) -> io.TextIOWrapper:
        return _open_private(self.baseFilename)


def _open_file(file: LogFile) -> logging.Handler:
    """The handler writing ``file``, opened now (its directory created 0700 if missing);
    raises ``OSError`` naming the path."""
    if file.path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(file.path))
    parent = file.path.parent
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(parent))
    make_private_dir(parent)
    handler: logging.Handler
    if file.max_bytes > 0:
        handler = _RotatingPrivateFile(
            file.path, maxBytes=file.max_bytes, backupCount=file.backups, encoding="utf-8"
        )
    else:
        handler = _WatchedPrivateFile(file.path, encoding="utf-8")
    handler.setFormatter(_FileFormatter(_STDLIB_FORMAT))
    return handler
