"""The incident bundle: one tar.gz with what a post-mortem needs from a node.

Parts (each a member of the archive, under one directory named after the bundle):

| member | holds |
|---|---|
| ``bundle.json`` | the index: when, by whom, on which host, of which node; each part's state |
| ``status.json`` | the running node's ``status`` over its control socket, or why there is none |
| ``journal-events.jsonl`` | the last N journal events, as ``bastion journal export`` writes them |
| ``journal-stats.json`` | the journal's counts, seq range, runs and size |
| ``metrics.txt``, ``readyz.json`` | ``/metrics`` and ``/readyz`` of its monitoring listener |
| ``log-tail.txt`` | the last lines of ``--log``, else of ``[node] log_file`` and its backups |
| ``manifest.json`` | the latest run manifest, and what changed since the start before it |
| ``config.toml`` | the config file with its secret literals masked (references kept) |

The journal is read through ``bastion.journal.readable``: the SQLite file read-only, or
a PostgreSQL journal (``[journal] backend = "postgres"``) with selects only, its
password from the vault. The node's control socket is found beside the journal's local
path either way.

A part that cannot be had (no node running, monitoring off, no log file) is in
the bundle all the same, saying why. What cannot be read that the bundle is for (the
config, the journal) is an error, and then no file is written: the archive is built in
memory and written once, atomically, mode 0600 (``bastion.vault.files``).

Before it is written, every member is scanned for every secret this process has loaded
(the vault's values, its passphrase, a password handed down in the environment) and
each is masked (``bastion.vault.redact``); the index counts what was.
"""

from __future__ import annotations

import io
import itertools
import json
import socket
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from bastion import __version__
from bastion.errors import BastionError, UsageError
from bastion.incident.masking import mask_config
from bastion.journal.locator import JournalLocator
from bastion.journal.readable import ReadableJournal
from bastion.monitor.config import MonitoringConfig
from bastion.vault import redact
from bastion.vault.files import write_private

DEFAULT_EVENTS: Final = 1000
DEFAULT_LOG_LINES: Final = 1000
HTTP_TIMEOUT_S: Final = 5.0
MAX_HTTP_BYTES: Final = 32 * 1024 * 1024
_LOG_BLOCK: Final = 64 * 1024

NodeStatus = Callable[[Path], dict[str, Any]]
"""Asks the node listening on a control socket for its status (raises if none does)."""


@dataclass(frozen=True, slots=True)
class Part:
    """One member of the bundle: its file name, its bytes, and whether it holds what it
    is for (``detail`` says what, or why not)."""

    name: str
    data: bytes
    available: bool
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleSource:
    """Where a node's parts come from: its config (path and text), its journal (SQLite
    or PostgreSQL, with its keys and password), its control socket, its monitoring
    listener and its log file."""

    config_path: Path
    config_text: str
    node_id: str
    journal: JournalLocator
    control_socket: Path
    monitoring: MonitoringConfig | None
    log: Path | None = None
    config_log: Path | None = None
    """The config's ``[node] log_file``: read, with its rotated backups, when ``log``
    (``--log``) is not given."""


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What was written: the file, its size, each part's state, the secrets masked."""

    path: Path
    size: int
    parts: dict[str, tuple[bool, str]]
    secrets_masked: dict[str, int]


class NodeNotRunning(BastionError):
    """No node answers on the control socket."""


def default_name(node_id: str, now_ns: int) -> str:
    """``incident-NODE-YYYYMMDDTHHMMSSZ.tar.gz``."""
    return f"incident-{_safe(node_id)}-{_stamp(now_ns)}.tar.gz"


def make_bundle(
    source: BundleSource,
    out: Path,
    *,
    now_ns: int,
    who: str,
    events: int = DEFAULT_EVENTS,
    log_lines: int = DEFAULT_LOG_LINES,
    node_status: NodeStatus,
) -> BundleReport:
    """Collect the parts, scan them for loaded secrets, write the archive to ``out``.

    Raises (and writes nothing) when ``out`` exists or its directory does not, the log
    file given cannot be read, or the journal cannot be read."""
    check_destination(out)
    if source.log is not None:
        check_log(source.log)
    status = _status_part(source.control_socket, node_status)
    running = status.available
    parts = [
        status,
        *_monitoring_parts(source.monitoring, running=running),
        *_read_journal(source.journal, events),
        _log_part(source.log, log_lines)
        if source.log is not None or source.config_log is None
        else _config_log_part(source.config_log, log_lines),
    ]
    masked_config, literals = mask_config(source.config_text)
    parts.append(
        Part(
            "config.toml",
            masked_config.encode(),
            True,
            f"{source.config_path}, {literals} secret literal(s) masked; references kept",
        )
    )
    scanned, masked = _scan(parts)
    index = _index(source, scanned, masked, now_ns=now_ns, who=who)
    (index,), index_masked = _scan([index])
    masked.update(index_masked)
    prefix = out.name.removesuffix(".tar.gz").removesuffix(".tgz") or "incident"
    data = _archive([index, *scanned], prefix=prefix, mtime=now_ns // 1_000_000_000)
    try:
        write_private(out, data)
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror or error}") from None
    return BundleReport(
        path=out,
        size=len(data),
        parts={part.name: (part.available, part.detail) for part in scanned},
        secrets_masked=masked,
    )


# -- the parts -------------------------------------------------------------------------


def _status_part(path: Path, node_status: NodeStatus) -> Part:
    try:
        answer = node_status(path)
    except NodeNotRunning as error:
        why = str(error)
        return _json_part("status.json", {"running": False, "reason": why}, False, why)
    except BastionError as error:
        reason = f"the node did not answer: {error}"
        return _json_part("status.json", {"running": True, "error": reason}, False, reason)
    return _json_part("status.json", answer, True, f"from the node on {path}")


def _monitoring_parts(monitoring: MonitoringConfig | None, *, running: bool) -> list[Part]:
    if monitoring is None or not monitoring.enabled:
        why = "monitoring is off in the config (no [monitoring], or enabled = false)"
    elif not running:
        why = "no node is running on this config's journal"
    elif monitoring.address[1] == 0:
        why = "[monitoring] listen has port 0: the port the node took is in its log"
    else:
        host, port = monitoring.address
        base = f"http://{_connect_host(host)}:{port}"
        return [
            _http_part("metrics.txt", f"{base}/metrics"),
            _http_part("readyz.json", f"{base}/readyz"),
        ]
    return [
        _unavailable("metrics.txt", why),
        _json_part("readyz.json", {"unavailable": why}, False, why),
    ]


def _connect_host(host: str) -> str:
    """The address to connect to for a listen address (a wildcard means this host)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _http_part(name: str, url: str) -> Part:
    # loopback: never through a proxy from the environment
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=HTTP_TIMEOUT_S) as response:
            code, body = response.status, response.read(MAX_HTTP_BYTES)
    except urllib.error.HTTPError as error:  # /readyz answers 503 when not ready
        code, body = error.code, error.read(MAX_HTTP_BYTES)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return _unavailable(name, f"GET {url} failed: {reason}")
    if name.endswith(".json"):
        try:
            decoded: object = json.loads(body)
        except ValueError:
            decoded = body.decode("utf-8", "replace")
        return _json_part(name, {"url": url, "http_status": code, "body": decoded}, True, url)
    if code != 200:
        return _unavailable(name, f"GET {url} answered HTTP {code}")
    return Part(name, body, True, url)


def _read_journal(locator: JournalLocator, events: int) -> list[Part]:
    """The journal's parts, read through one read-only view of it (SQLite or
    PostgreSQL); a journal that cannot be read is a ``UsageError`` (the bundle is for
    it), a database that does not answer an ``OperationalError``."""
    from bastion.journal import NotAJournalError

    try:
        with closing(locator.open()) as journal:
            return [*_journal_parts(journal, events), _manifest_part(journal)]
    except NotAJournalError as error:
        raise UsageError(str(error)) from None


def _journal_parts(journal: ReadableJournal, events: int) -> list[Part]:
    stats = journal.stats()
    first = max(stats.first_seq or 1, (stats.last_seq or 0) - events + 1)
    out = io.BytesIO()
    # up to the stats' last seq: a running node commits on meanwhile
    written = (
        journal.export_jsonl(out, from_seq=first, to_seq=stats.last_seq) if stats.events else 0
    )
    detail = f"{written} event(s) from seq {first}" if written else "the journal has no events"
    return [
        Part("journal-events.jsonl", out.getvalue(), True, detail),
        _json_part("journal-stats.json", msgspec.to_builtins(stats), True, journal.where),
    ]


def _manifest_part(journal: ReadableJournal) -> Part:
    from bastion.manifest import diff_manifests, read_manifests

    found = read_manifests(journal)
    if not found:
        why = "no run manifest in the journal (no node started on it yet)"
        return _json_part("manifest.json", {"unavailable": why}, False, why)
    latest = found[-1]
    document: dict[str, Any] = {"latest": msgspec.to_builtins(latest), "starts": len(found)}
    if len(found) > 1:
        document["changes_since_previous"] = diff_manifests(found[-2], latest)
    return _json_part("manifest.json", document, True, f"epoch {latest.epoch}")


def _log_part(path: Path | None, lines: int) -> Part:
    if path is None:
        return _unavailable(
            "log-tail.txt",
            "no log file given (--log FILE) and no [node] log_file in the config: the node "
            "logs to stderr; give the file its supervisor writes it to "
            "(e.g. journalctl -u UNIT > node.log)",
        )
    try:
        tail = tail_lines(path, lines)
    except OSError as error:
        raise UsageError(f"cannot read the log {path}: {error.strerror or error}") from None
    count = tail.count(b"\n") + (0 if tail.endswith(b"\n") or not tail else 1)
    return Part("log-tail.txt", tail, True, f"the last {count} line(s) of {path}")


def _config_log_part(path: Path, lines: int) -> Part:
    """The last lines of the config's log file, continued into its rotated backups
    (``PATH.1``, the newest, then ``PATH.2``, ...) while fewer than ``lines`` were had."""
    try:
        tail, files = tail_rotated(path, lines)
    except OSError as error:
        return _unavailable(
            "log-tail.txt", f"cannot read the config's log_file {path}: {error.strerror or error}"
        )
    if not files:
        return _unavailable("log-tail.txt", f"the config's log_file {path} does not exist (yet)")
    count = tail.count(b"\n") + (0 if tail.endswith(b"\n") or not tail else 1)
    backups = f" and {files - 1} rotated backup(s)" if files > 1 else ""
    return Part("log-tail.txt", tail, True, f"the last {count} line(s) of {path}{backups}")


def tail_rotated(path: Path, lines: int) -> tuple[bytes, int]:
    """The last ``lines`` lines of ``path`` and, before them, of its rotated backups
    (newest first: ``PATH.1``, ``PATH.2``, ...), in the order they were written; and how
    many files were read."""
    chunks: list[bytes] = []
    need, files = lines, 0
    for n in itertools.count():
        if need <= 0:
            break
        current = path if n == 0 else path.with_name(f"{path.name}.{n}")
        if not current.is_file():
            break
        tail = tail_lines(current, need)
        files += 1
        if tail and not tail.endswith(b"\n"):
            tail += b"\n"  # a line the node was writing when it rotated
        chunks.append(tail)
        need -= tail.count(b"\n")
    return b"".join(reversed(chunks)), files


def tail_lines(path: Path, lines: int) -> bytes:
    """The last ``lines`` lines of ``path``, read from its end."""
    with path.open("rb") as f:
        end = f.seek(0, io.SEEK_END)
        position, data = end, b""
        # one more newline than lines: the file's last one ends the last line
        while position > 0 and data.count(b"\n") <= lines:
            step = min(_LOG_BLOCK, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    kept = data.splitlines(keepends=True)[-lines:]
    return b"".join(kept)


# -- assembling ------------------------------------------------------------------------


def _scan(parts: list[Part]) -> tuple[list[Part], dict[str, int]]:
    """Each part with every loaded secret masked, and how many were, per part."""
    scanned, masked = [], {}
    for part in parts:
        text = part.data.decode("utf-8", "surrogateescape")
        clean = redact.redact(text)
        if clean != text:
            masked[part.name] = clean.count(redact.MASK) - text.count(redact.MASK)
            part = replace(part, data=clean.encode("utf-8", "surrogateescape"))
        scanned.append(part)
    return scanned, masked


def _index(
    source: BundleSource, parts: list[Part], masked: dict[str, int], *, now_ns: int, who: str
) -> Part:
    document = {
        "bundle": "bastion incident bundle",
        "created": _iso(now_ns),
        "created_by": who,
        "host": socket.gethostname(),
        "bastion": __version__,
        "node": source.node_id,
        "config": str(source.config_path),
        "journal": source.journal.where,
        "parts": {p.name: {"available": p.available, "detail": p.detail} for p in parts},
        "secrets_masked": masked,
    }
    return _json_part("bundle.json", document, True, "the index")


def _archive(parts: list[Part], *, prefix: str, mtime: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for part in parts:
            info = tarfile.TarInfo(f"{prefix}/{part.name}")
            info.size, info.mode, info.mtime = len(part.data), 0o600, mtime
            tar.addfile(info, io.BytesIO(part.data))
    return buffer.getvalue()


def _json_part(name: str, document: object, available: bool, detail: str) -> Part:
    data = json.dumps(document, indent=2, sort_keys=True, default=str).encode() + b"\n"
    return Part(name, data, available, detail)


def _unavailable(name: str, why: str) -> Part:
    return Part(name, f"unavailable: {why}\n".encode(), False, why)


def check_destination(out: Path) -> None:
    """Refuse an ``--out`` that exists (a bundle is never overwritten) or whose
    directory does not."""
    if out.exists() or out.is_symlink():
        raise UsageError(f"{out} exists; a bundle is never overwritten (give another --out)")
    if not out.parent.is_dir():
        raise UsageError(f"{out}: the directory {out.parent} does not exist")


def check_log(path: Path) -> None:
    """Refuse a ``--log`` that is not a readable file."""
    if not path.is_file():
        raise UsageError(f"--log {path}: no such file")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise UsageError(f"--log {path}: cannot read it: {error.strerror or error}") from None


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y%m%dT%H%M%SZ")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "node"
