"""No loaded secret reaches a log line: event, fields, containers, bytes, hex and base64
forms, tracebacks, the stdlib handler; in both log formats."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from bastion import logs
from bastion.clock import SimClock
from bastion.logs import configure_logging
from bastion.vault import redact
from bastion.vault.vault import Vault
from kit.vaults import PASSPHRASE, T0, new_vault

SECRET = "hunter2-canary-9f"


@pytest.fixture(params=["console", "json"])
def loaded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A vault holding SECRET, unlocked (which registers it). Returns the log format the
    test is parametrised with; the test configures logging (capsys swaps stderr between
    a fixture's setup and the test)."""
    path = tmp_path / "vault.bastion"
    new_vault(path, fix__acct1=SECRET)
    redact.forget_all()  # only what a fresh unlock registers counts
    Vault.open(path, PASSPHRASE, clock=SimClock(T0))
    yield str(request.param)
    # the captured stderr closes after this test: leave nothing writing to it
    structlog.reset_defaults()
    if logs._stdlib_handler is not None:
        logging.getLogger().removeHandler(logs._stdlib_handler)
        logs._stdlib_handler = None


def _fail_with_secret() -> None:
    password = SECRET  # a local a rich traceback would show
    raise ValueError(f"logon refused for {password}")


def test_when_secret_logged_anywhere_then_masked(
    loaded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Event text, a field, nested containers, bytes, hex and base64 forms are masked."""
    configure_logging("debug", loaded)
    log = structlog.get_logger("t")
    raw = SECRET.encode()
    log.info(f"connect with {SECRET}")
    log.info(
        "fields",
        plain=SECRET,
        nested={"a": [SECRET, (1, f"x{SECRET}y")]},
        raw=raw,
        hexed=raw.hex(),
        b64=base64.b64encode(raw).decode(),
        obj=Path(f"/tmp/{SECRET}"),
        count=3,
    )
    err = capsys.readouterr().err
    assert SECRET not in err
    assert raw.hex() not in err and raw.hex().upper() not in err
    assert base64.b64encode(raw).decode().rstrip("=") not in err
    assert err.count(redact.MASK) >= 8
    assert "count" in err and "3" in err  # other fields kept


def test_when_exception_with_secret_logged_then_traceback_masked(
    loaded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """log.exception: the formatted traceback is redacted, the frame still shown."""
    configure_logging("debug", loaded)
    log = structlog.get_logger("t")
    try:
        _fail_with_secret()
    except ValueError:
        log.exception("venue.logon_failed")
    err = capsys.readouterr().err
    assert "Traceback" in err and "_fail_with_secret" in err and "ValueError" in err
    assert SECRET not in err
    if loaded == "json":
        json.loads(err.strip().splitlines()[-1])  # still one JSON object per line


def test_when_stdlib_logger_logs_secret_then_masked(
    loaded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A third-party library logging through the stdlib: args and traceback masked."""
    configure_logging("debug", loaded)
    lib = logging.getLogger("some.library")
    lib.warning("auth with %s", SECRET)
    try:
        _fail_with_secret()
    except ValueError:
        lib.exception("failed")
    err = capsys.readouterr().err
    assert "auth with ***" in err and "Traceback" in err
    assert SECRET not in err


def test_when_passphrase_used_then_it_is_masked_too(
    loaded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The vault passphrase registers itself when a vault is unlocked with it."""
    configure_logging("debug", loaded)
    structlog.get_logger("t").info("oops", typed=PASSPHRASE)
    assert PASSPHRASE not in capsys.readouterr().err


def test_when_nothing_loaded_then_lines_unchanged() -> None:
    """With no secret registered, redaction leaves text as it is."""
    redact.forget_all()
    assert redact.redact(f"x {SECRET} y") == f"x {SECRET} y"
    assert redact.registered() == 0


def test_when_value_very_short_then_not_registered() -> None:
    """Values under MIN_LENGTH are not redacted (they would mangle every line)."""
    redact.register("ab")
    assert redact.redact("abc") == "abc"
    redact.register("a-long-one")
    assert redact.redact("xa-long-oney") == "x***y"
