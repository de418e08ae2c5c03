"""A paper node with ``[node] log_file``: its lines are in the file (0600, in a 0700
directory created for it) as on stderr, and ``bastion incident bundle`` takes the
file's tail without ``--log``."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from kit.node_process import RunBastion, run_to_end
from kit.strategies import IDLE_STRATEGY

CONFIG = """
[node]
id = "logged-1"
log_format = "json"
log_file = "logs/node.log"
log_max_bytes = 1048576
log_backups = 2

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"

[[strategies]]
name = "idle"
path = "idle.py"
class = "Idle"

[feed]
instrument = "XYZ.SIM"
interval_ms = 50

[journal]
path = "journal.sqlite"
"""


@pytest.mark.timeout(90)
def test_when_node_has_log_file_then_lines_in_file_and_bundle_takes_its_tail(
    tmp_path: Path, run_bastion: RunBastion
) -> None:
    """`bastion run --duration-s 1.5` writes node_started to logs/node.log as to stderr;
    the bundle, given no --log, holds the file's last lines."""
    (tmp_path / "idle.py").write_text(IDLE_STRATEGY)
    config = tmp_path / "node.toml"
    config.write_text(CONFIG)
    done = run_to_end("run", config.name, "--duration-s", "1.5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    log = tmp_path / "logs" / "node.log"
    assert log.stat().st_mode & 0o777 == 0o600
    assert log.parent.stat().st_mode & 0o777 == 0o700
    in_file = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    started = [e for e in in_file if e["event"] == "node_started"]
    on_stderr = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(started) == 1 and started[0] in on_stderr
    assert in_file == on_stderr  # the same lines, in order

    bundled = run_bastion("incident", "bundle", config, "--out", "inc.tar.gz")
    assert bundled.returncode == 0, bundled.stderr
    assert re.search(
        rf"log-tail\.txt +ok: the last \d+ line\(s\) of {re.escape(str(log))}$",
        bundled.stdout,
        re.MULTILINE,
    ), bundled.stdout
    with tarfile.open(tmp_path / "inc.tar.gz", "r:gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/log-tail.txt"))
        extracted = tar.extractfile(member)
        assert extracted is not None
        tail = extracted.read().decode()
    assert '"event": "node_started"' in tail
    assert tail.splitlines() == log.read_text().splitlines()[-len(tail.splitlines()) :]
