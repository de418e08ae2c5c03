"""The node's log file: the same lines as stderr, rotated by size (or reopened after an
external logrotate), every file 0600 whatever the umask in a 0700 directory, no
registered secret in it, and a path that cannot be written refused naming it."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from bastion.cli.common import configure_command_logging
from bastion.errors import ConfigError
from bastion.logs import LogFile, configure_logging, relay_lines, reset_logging
from bastion.vault import redact

SECRET = "canary-secret-7c1e"


@pytest.fixture
def canary() -> Iterator[None]:
    """SECRET registered for redaction, and a umask that would leave files open to all:
    the modes must not depend on it. Logging is reset after the test."""
    redact.forget_all()
    redact.register(SECRET)
    umask = os.umask(0)
    try:
        yield
    finally:
        os.umask(umask)
        reset_logging()
        redact.forget_all()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_when_log_passes_max_bytes_then_rotated_private_and_without_the_secret(
    canary: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 2000-byte log: rotated into .1 and .2 (no .3), each file at most 2000 bytes and
    0600 in a 0700 directory; structlog's and the stdlib's lines are in it, the secret in
    none; stderr has the same lines."""
    path = tmp_path / "logs" / "node.log"
    configure_logging("info", "json", LogFile(path=path, max_bytes=2000, backups=2))
    log = structlog.get_logger("t")
    for n in range(60):
        log.info("order_sent", n=n, password=SECRET)
    logging.getLogger("thirdparty").warning("connected with %s", SECRET)
    relay_lines(f"strategy print {SECRET}\n")

    files = [path, path.with_name("node.log.1"), path.with_name("node.log.2")]
    assert all(f.is_file() for f in files) and not path.with_name("node.log.3").exists()
    assert mode(path.parent) == 0o700
    assert [mode(f) for f in files] == [0o600] * 3
    assert all(f.stat().st_size <= 2000 for f in files)
    text = "".join(f.read_text() for f in reversed(files))
    assert SECRET not in text
    lines = text.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert events[-1]["event"] == "order_sent" and events[-1]["n"] == 59
    assert events[-1]["password"] == redact.MASK
    assert lines[-2].endswith(f"thirdparty: connected with {redact.MASK}")
    assert lines[-1] == f"strategy print {redact.MASK}"
    err = capsys.readouterr().err
    assert SECRET not in err and '"n": 59' in err and err.splitlines()[-3:] == lines[-3:]


def test_when_max_bytes_zero_and_file_moved_then_reopened_private(
    canary: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """log_max_bytes 0: never rotated here; moved away (logrotate), the next line goes to
    a new 0600 file at the path."""
    path = tmp_path / "node.log"
    configure_logging("info", "console", LogFile(path=path, max_bytes=0, backups=0))
    log = structlog.get_logger("t")
    log.info("before_rotation", secret=SECRET)
    path.rename(tmp_path / "node.log.1")
    log.info("after_rotation")
    assert "before_rotation" in (tmp_path / "node.log.1").read_text()
    after = path.read_text()
    assert "after_rotation" in after and "before_rotation" not in after
    assert "\x1b[" not in after and SECRET not in after
    assert mode(path) == 0o600


def test_when_file_exists_then_appended(canary: None, tmp_path: Path) -> None:
    """A restarted node appends to its log; the file's mode is left as it was."""
    path = tmp_path / "node.log"
    path.write_text("earlier run\n")
    path.chmod(0o640)
    configure_logging("info", "console", LogFile(path=path, max_bytes=10_000, backups=1))
    structlog.get_logger("t").info("node_started")
    text = path.read_text()
    assert text.startswith("earlier run\n") and "node_started" in text
    assert mode(path) == 0o640


def test_when_log_file_cannot_be_written_then_config_error_names_key_and_path(
    canary: None, tmp_path: Path
) -> None:
    """A log_file under a plain file (or naming a directory) is refused at start."""
    (tmp_path / "a-file").write_text("")
    args = argparse.Namespace(log_level=None, log_format=None)
    under_file = LogFile(path=tmp_path / "a-file" / "node.log", max_bytes=100, backups=1)
    with pytest.raises(ConfigError, match=r"key 'node.log_file': cannot write the log to") as e:
        configure_command_logging(args, "info", "console", under_file)
    assert str(tmp_path / "a-file") in str(e.value)
    directory = LogFile(path=tmp_path, max_bytes=100, backups=1)
    with pytest.raises(ConfigError, match="is a directory") as e:
        configure_command_logging(args, "info", "console", directory)
    assert str(tmp_path) in str(e.value)
