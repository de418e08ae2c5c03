"""The incident bundle from its parts: a journal on disk, a node's status, a monitoring
listener on loopback (a real HTTP server), a log file; what is unavailable is said so,
loaded secrets are masked in every member, and a failure leaves no file behind."""

from __future__ import annotations

import json
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import OperationalError, UsageError
from bastion.incident import BundleSource, NodeNotRunning, make_bundle
from bastion.journal.keys import PLAINTEXT
from bastion.journal.locator import JournalLocator
from bastion.monitor.config import MonitoringConfig
from bastion.vault import redact
from kit.journal_attacks import keyed_journal
from kit.leaks import Witness

NOW_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
SECRET = "a-loaded-vault-secret-value"
STATUS = {"ok": True, "state": "ACTIVE", "open_orders": 2, "positions": {"X.A": "3"}}
CONFIG = '[node]\nid = "n-1"\n\n[journal]\npath = "j.sqlite"\nchain_key = "not-a-reference-1"\n'


class _Monitoring(BaseHTTPRequestHandler):
    """/metrics in Prometheus text, /readyz not ready (503 with reasons)."""

    def do_GET(self) -> None:
        if self.path == "/metrics":
            code, body = 200, b"# TYPE bastion_node_ready gauge\nbastion_node_ready 0.0\n"
        elif self.path == "/readyz":
            code, body = 503, json.dumps({"ready": False, "reasons": ["venue SIM"]}).encode()
        else:
            code, body = 404, b""
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[MonitoringConfig]:
    """A monitoring listener on a free loopback port, and the [monitoring] naming it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Monitoring)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield MonitoringConfig(listen=f"127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def source(
    root: Path, monitoring: MonitoringConfig | None, log: Path | None = None
) -> BundleSource:
    journal = root / "j.sqlite"
    if not journal.exists():
        keyed_journal(journal, PLAINTEXT, n=30)
    return BundleSource(
        config_path=root / "node.toml",
        config_text=CONFIG,
        node_id="n-1",
        journal=JournalLocator.sqlite(journal, PLAINTEXT),
        control_socket=root / "j.sqlite.sock",
        monitoring=monitoring,
        log=log,
    )


def running(_path: Path) -> dict[str, Any]:
    return dict(STATUS)


def not_running(path: Path) -> dict[str, Any]:
    raise NodeNotRunning(f"no node is listening on {path}")


def members(path: Path) -> dict[str, bytes]:
    """Each member's bytes by its name inside the bundle's directory."""
    with tarfile.open(path, "r:gz") as tar:
        found = {}
        for info in tar.getmembers():
            extracted = tar.extractfile(info)
            assert extracted is not None and info.mode == 0o600, info.name
            found[info.name.split("/", 1)[1]] = extracted.read()
    return found


def test_when_node_runs_with_monitoring_then_every_part_is_in_the_bundle(
    tmp_path: Path, listener: MonitoringConfig
) -> None:
    """Status, the last N events, stats, /metrics, /readyz (503 kept with its reasons),
    the log's tail, the masked config and the index, in a 0600 file."""
    log = tmp_path / "node.log"
    log.write_text("".join(f"line {n}\n" for n in range(50)))
    out = tmp_path / "b.tar.gz"
    report = make_bundle(
        source(tmp_path, listener, log),
        out,
        now_ns=NOW_NS,
        who="alice",
        events=7,
        log_lines=5,
        node_status=running,
    )
    assert out.stat().st_mode & 0o777 == 0o600 and report.size == out.stat().st_size
    got = members(out)
    assert json.loads(got["status.json"]) == STATUS
    events = [json.loads(line) for line in got["journal-events.jsonl"].splitlines()]
    assert [e["seq"] for e in events] == list(range(24, 31))
    assert json.loads(got["journal-stats.json"])["last_seq"] == 30
    assert got["metrics.txt"].startswith(b"# TYPE bastion_node_ready gauge")
    readyz = json.loads(got["readyz.json"])
    assert readyz["http_status"] == 503 and readyz["body"]["reasons"] == ["venue SIM"]
    assert got["log-tail.txt"] == b"line 45\nline 46\nline 47\nline 48\nline 49\n"
    assert b"not-a-reference-1" not in got["config.toml"]
    index = json.loads(got["bundle.json"])
    assert index["created"] == "2026-01-01T00:00:00Z" and index["created_by"] == "alice"
    assert index["parts"]["manifest.json"]["available"] is False  # no node started on it
    unavailable = {name for name, (ok, _) in report.parts.items() if not ok}
    assert unavailable == {"manifest.json"}


def test_when_no_node_runs_then_status_and_metrics_say_so(
    tmp_path: Path, listener: MonitoringConfig
) -> None:
    """Without a node on the journal: status says it does not run, metrics are not asked
    for (the port may belong to something else), no log is given: each says why."""
    out = tmp_path / "b.tar.gz"
    report = make_bundle(
        source(tmp_path, listener), out, now_ns=NOW_NS, who="bob", node_status=not_running
    )
    got = members(out)
    status = json.loads(got["status.json"])
    assert status["running"] is False and "no node is listening" in status["reason"]
    assert got["metrics.txt"].startswith(b"unavailable: no node is running")
    assert got["log-tail.txt"].startswith(b"unavailable: no log file given (--log FILE)")
    assert report.parts["journal-events.jsonl"] == (True, "30 event(s) from seq 1")


def test_when_monitoring_is_off_or_unreachable_then_metrics_say_why(tmp_path: Path) -> None:
    """No [monitoring]: monitoring is off. A listener nobody serves: the GET's error."""
    off = tmp_path / "off.tar.gz"
    make_bundle(source(tmp_path, None), off, now_ns=NOW_NS, who="c", node_status=running)
    assert members(off)["metrics.txt"].startswith(b"unavailable: monitoring is off")
    down = tmp_path / "down.tar.gz"
    nobody = MonitoringConfig(listen="127.0.0.1:1")
    make_bundle(source(tmp_path, nobody), down, now_ns=NOW_NS, who="c", node_status=running)
    assert b"GET http://127.0.0.1:1/metrics failed" in members(down)["metrics.txt"]


def test_when_node_answers_badly_then_status_records_the_error(tmp_path: Path) -> None:
    """A node that hangs up is recorded as running without a status."""

    def hangs_up(path: Path) -> dict[str, Any]:
        raise OperationalError(f"control socket {path}: connection reset")

    out = tmp_path / "b.tar.gz"
    make_bundle(source(tmp_path, None), out, now_ns=NOW_NS, who="d", node_status=hangs_up)
    status = json.loads(members(out)["status.json"])
    assert status["running"] is True and "connection reset" in status["error"]


def test_when_a_loaded_secret_is_in_a_part_then_it_is_masked_in_every_member(
    tmp_path: Path,
) -> None:
    """A vault value this process loaded, leaked into the log and the node's status, is
    in no member (searched in every encoding) and the index counts the masks."""
    redact.register(SECRET)
    log = tmp_path / "node.log"
    log.write_text(f"fix_logon password={SECRET}\nok\n")

    def leaky(_path: Path) -> dict[str, Any]:
        return {**STATUS, "note": SECRET}

    out = tmp_path / "b.tar.gz"
    report = make_bundle(
        source(tmp_path, None, log), out, now_ns=NOW_NS, who="e", node_status=leaky
    )
    witness = Witness()
    for name, data in members(out).items():
        witness.add(name, data)
    assert witness.leaks({"vault secret": SECRET}) == []
    assert report.secrets_masked == {"log-tail.txt": 1, "status.json": 1}
    assert json.loads(members(out)["bundle.json"])["secrets_masked"] == report.secrets_masked


def test_when_journal_is_not_readable_then_usage_error_and_no_file(tmp_path: Path) -> None:
    """A journal that is not one, or is missing: an error naming it, nothing written."""
    (tmp_path / "j.sqlite").write_bytes(b"not a journal at all")
    out = tmp_path / "b.tar.gz"
    with pytest.raises(UsageError, match=r"j\.sqlite"):
        make_bundle(source(tmp_path, None), out, now_ns=NOW_NS, who="f", node_status=running)
    missing = replace(
        source(tmp_path, None), journal=JournalLocator.sqlite(tmp_path / "missing.sqlite")
    )
    with pytest.raises(UsageError, match=r"missing\.sqlite: journal file not found"):
        make_bundle(missing, out, now_ns=NOW_NS, who="f", node_status=running)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.sqlite"]


def test_when_out_exists_or_log_is_missing_then_refused_before_anything(tmp_path: Path) -> None:
    """An existing bundle is never overwritten; a --log that is not there is named; the
    node is not even asked."""
    asked: list[Path] = []

    def counting(path: Path) -> dict[str, Any]:
        asked.append(path)
        return dict(STATUS)

    out = tmp_path / "b.tar.gz"
    out.write_bytes(b"an earlier bundle")
    with pytest.raises(UsageError, match="never overwritten"):
        make_bundle(source(tmp_path, None), out, now_ns=NOW_NS, who="g", node_status=counting)
    assert out.read_bytes() == b"an earlier bundle"
    log = tmp_path / "missing.log"
    with pytest.raises(UsageError, match=r"missing\.log: no such file"):
        make_bundle(
            source(tmp_path, None, log),
            tmp_path / "c.tar.gz",
            now_ns=NOW_NS,
            who="g",
            node_status=counting,
        )
    assert asked == [] and not (tmp_path / "c.tar.gz").exists()


def test_when_config_log_rotated_then_tail_continues_into_backups_newest_first(
    tmp_path: Path,
) -> None:
    """No --log: the config's log_file is read, then node.log.1, then node.log.2, until
    the line limit; the tail is in written order and a secret in a backup is masked."""
    log = tmp_path / "node.log"
    log.write_text("line 8\nline 9\n")
    (tmp_path / "node.log.1").write_text(f"line 5\nline 6 {SECRET}\nline 7\n")
    (tmp_path / "node.log.2").write_text("line 1\nline 2\nline 3\nline 4\n")
    (tmp_path / "node.log.3").write_text("line 0\n")
    redact.forget_all()
    redact.register(SECRET)
    try:
        report = make_bundle(
            replace(source(tmp_path, None), config_log=log),
            tmp_path / "b.tar.gz",
            now_ns=NOW_NS,
            who="e",
            log_lines=7,
            node_status=not_running,
        )
    finally:
        redact.forget_all()
    got = members(report.path)
    lines = [f"line {n}" for n in (3, 4, 5, 6, 7, 8, 9)]
    assert got["log-tail.txt"].decode() == "\n".join(lines).replace("6", f"6 {redact.MASK}") + "\n"
    assert report.parts["log-tail.txt"] == (
        True,
        f"the last 7 line(s) of {log} and 2 rotated backup(s)",
    )
    assert report.secrets_masked == {"log-tail.txt": 1}


def test_when_config_log_missing_then_part_says_so(tmp_path: Path) -> None:
    """A log_file the node has not written yet is unavailable, not an error; --log wins."""
    missing = tmp_path / "node.log"
    src = replace(source(tmp_path, None), config_log=missing)
    report = make_bundle(
        src, tmp_path / "b.tar.gz", now_ns=NOW_NS, who="e", node_status=not_running
    )
    assert report.parts["log-tail.txt"] == (
        False,
        f"the config's log_file {missing} does not exist (yet)",
    )
    given = tmp_path / "given.log"
    given.write_text("from --log\n")
    missing.write_text("from log_file\n")
    report = make_bundle(
        replace(src, log=given),
        tmp_path / "c.tar.gz",
        now_ns=NOW_NS,
        who="e",
        node_status=not_running,
    )
    assert members(report.path)["log-tail.txt"] == b"from --log\n"
