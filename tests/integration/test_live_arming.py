"""Live mode through the real command line: a live node starts only once armed by an
admin with the live vault's passphrase (with four-eyes, a second admin's approval), once
per arming; paper and live keep their vaults and journals apart."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.journal.reader import read_events
from bastion.live.arming import token_path
from bastion.model.events import LiveArmed
from bastion.vault.vault import Vault
from kit.live_desk import (
    FOUR_EYES,
    ME,
    ONE_ADMIN,
    add_operators,
    bastion,
    commit_desk,
    write_desk,
)
from kit.vaults import FAST_KDF, PASSPHRASE, T0, key_file, new_vault

LIVE = 'mode = "live"'
WHY = "first live day, after the 2026-01 review"


ADA, ABE, ROB, NOBODY = ME, ME + 1000, ME + 1001, ME + 1002


def live_desk(
    root: Path, access: str = ONE_ADMIN, operators: dict[str, tuple[int, str]] | None = None
) -> tuple[Path, Path]:
    """A committed live desk with a live vault (cheap Argon2) and its operators (by
    default this account as the one admin, arming without a second); (desk, config)."""
    desk = root / "desk"
    config = write_desk(desk, LIVE, access=access)
    Vault.create(desk / "vault.bastion", PASSPHRASE, clock=SimClock(T0), scope="live", kdf=FAST_KDF)
    add_operators(desk / "vault.bastion", operators or {"ada": (ADA, "admin")})
    commit_desk(desk)
    return desk, config


def arm(
    desk: Path, *extra: str, passphrase: str = PASSPHRASE, sudo_uid: int | None = None
) -> subprocess.CompletedProcess[str]:
    return bastion(
        "arm", "node.toml", "--why", WHY, "--passphrase-stdin", *extra,
        cwd=desk, key=None, stdin=passphrase + "\n", sudo_uid=sudo_uid,
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_when_a_live_node_is_armed_then_it_starts_once(tmp_path: Path) -> None:
    """Unarmed: refused (exit 2). A wrong passphrase arms nothing. Armed: it runs and
    journals LiveArmed with who and why; the next start needs a new arming."""
    key = key_file(tmp_path)
    desk, config = live_desk(tmp_path)
    journal = desk / "journal.sqlite"
    run = ("run", config.name, "--duration-s", "1")

    unarmed = bastion(*run, cwd=desk, key=key)
    assert unarmed.returncode == 2, unarmed.stderr
    assert "not armed" in unarmed.stderr and "bastion arm" in unarmed.stderr
    assert not journal.exists()

    wrong = bastion(
        "arm", config.name, "--why", WHY, "--passphrase-stdin",
        cwd=desk, key=key, stdin="not the passphrase\n",
    )  # fmt: skip
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr
    assert not token_path(journal).exists()

    armed = arm(desk)
    assert armed.returncode == 0, armed.stderr
    assert "live_armed" in armed.stderr and "armed node.toml" in armed.stdout
    assert "by ada" in armed.stdout
    assert stat.S_IMODE(token_path(journal).stat().st_mode) == 0o600
    assert PASSPHRASE not in armed.stdout + armed.stderr

    started = bastion(*run, cwd=desk, key=key)
    assert started.returncode == 0, started.stderr
    assert not token_path(journal).exists()
    events = [e for _, e in read_events(journal, "LiveArmed") if isinstance(e, LiveArmed)]
    assert len(events) == 1
    assert (events[0].why, events[0].who, events[0].node_id) == (WHY, "ada", "m-1")

    again = bastion(*run, cwd=desk, key=key)
    assert again.returncode == 2 and "not armed" in again.stderr


def test_when_arming_has_only_the_key_file_then_nothing_is_armed(tmp_path: Path) -> None:
    """`bastion arm` never reads the node's key file: without a terminal or
    --passphrase-stdin it is refused and writes no arming."""
    key = key_file(tmp_path)
    desk, config = live_desk(tmp_path)
    proc = bastion("arm", config.name, "--why", WHY, cwd=desk, key=key)
    assert proc.returncode == 2 and "--passphrase-stdin" in proc.stderr
    assert not token_path(desk / "journal.sqlite").exists()


def test_when_a_paper_config_is_armed_then_refused(tmp_path: Path) -> None:
    """Only a live config is armed."""
    config = write_desk(tmp_path)
    proc = bastion(
        "arm", config.name, "--why", WHY, "--passphrase-stdin",
        cwd=tmp_path, key=None, stdin=PASSPHRASE + "\n",
    )  # fmt: skip
    assert proc.returncode == 2 and "only a live config is armed" in proc.stderr


def test_when_a_paper_config_points_at_the_live_vault_then_refused(tmp_path: Path) -> None:
    """A paper node naming the live vault is refused (exit 2) naming vault.path, even
    with no secret to read from it."""
    key = key_file(tmp_path)
    live_desk(tmp_path)
    paper = tmp_path / "paper"
    config = write_desk(paper, vault="../desk/vault.bastion")
    proc = bastion("run", config.name, "--duration-s", "1", cwd=paper, key=key)
    assert proc.returncode == 2
    assert "key 'vault.path'" in proc.stderr and "holds live secrets" in proc.stderr
    assert not (paper / "journal.sqlite").exists()


def test_when_a_live_config_points_at_a_paper_vault_then_refused(tmp_path: Path) -> None:
    """A live node refuses a paper vault (exit 2) naming vault.path."""
    key = key_file(tmp_path)
    desk = tmp_path / "desk"
    config = write_desk(desk, LIVE)
    new_vault(desk / "vault.bastion")
    commit_desk(desk)
    proc = bastion("run", config.name, "--duration-s", "1", cwd=desk, key=key)
    assert proc.returncode == 2
    assert "key 'vault.path'" in proc.stderr and "holds paper secrets" in proc.stderr


@pytest.mark.timeout(180)
def test_when_a_paper_node_uses_the_live_journal_then_refused(tmp_path: Path) -> None:
    """After a live start, a paper config journaling into the live journal (or beside
    it) is refused, and the live journal gains nothing."""
    key = key_file(tmp_path)
    desk, config = live_desk(tmp_path)
    assert arm(desk).returncode == 0
    started = bastion("run", config.name, "--duration-s", "1", cwd=desk, key=key)
    assert started.returncode == 0, started.stderr
    journal = desk / "journal.sqlite"
    size = journal.stat().st_size
    paper = tmp_path / "paper"
    for target in ("../desk/journal.sqlite", "../desk/paper-journal.sqlite"):
        config = write_desk(paper, journal=target)
        proc = bastion("run", config.name, "--duration-s", "1", cwd=paper, key=None)
        assert proc.returncode == 2, proc.stderr
        assert "holds a live node's journal" in proc.stderr
    assert journal.stat().st_size == size
    assert not (desk / "paper-journal.sqlite").exists()


@pytest.mark.timeout(240)
def test_when_four_eyes_is_on_then_a_second_admin_arms(tmp_path: Path) -> None:
    """ada asks (a pending request, no arming: the node refuses to start); her own
    approval, an unmapped account's and a risk officer's are refused; abe (another admin,
    through sudo from his account) approves: armed as "ada, approved by abe", which the
    node journals; the same approval again finds nothing to approve."""
    key = key_file(tmp_path)
    operators = {"ada": (ADA, "admin"), "abe": (ABE, "admin"), "rob": (ROB, "risk_officer")}
    desk, config = live_desk(tmp_path, FOUR_EYES, operators)
    journal = desk / "journal.sqlite"

    asked = arm(desk)
    assert asked.returncode == 0, asked.stderr
    assert "arming request" in asked.stdout and "not armed yet" in asked.stdout
    request_id = asked.stdout.split("arming request ", 1)[1].split()[0]
    assert f"--approve {request_id}" in asked.stdout
    assert not token_path(journal).exists()
    refused = bastion("run", config.name, "--duration-s", "1", cwd=desk, key=key)
    assert refused.returncode == 2 and "not armed" in refused.stderr

    own = arm(desk, "--approve", request_id)
    assert own.returncode == 2 and "ada asked for arming" in own.stderr
    stranger = arm(desk, "--approve", request_id, sudo_uid=NOBODY)
    assert stranger.returncode == 2 and f"uid {NOBODY}" in stranger.stderr
    assert "not mapped to an operator" in stranger.stderr
    officer = arm(desk, "--approve", request_id, sudo_uid=ROB)
    assert officer.returncode == 2 and "rob (risk_officer) may not arm_live" in officer.stderr
    assert not token_path(journal).exists()

    approved = arm(desk, "--approve", request_id, sudo_uid=ABE)
    assert approved.returncode == 0, approved.stderr
    assert "by ada, approved by abe" in approved.stdout
    again = arm(desk, "--approve", request_id, sudo_uid=ABE)
    assert again.returncode == 2 and "no arming request is pending" in again.stderr

    started = bastion("run", config.name, "--duration-s", "1", cwd=desk, key=key)
    assert started.returncode == 0, started.stderr
    (event,) = [e for _, e in read_events(journal, "LiveArmed") if isinstance(e, LiveArmed)]
    assert event.who == "ada, approved by abe"
    assert event.why == f"{WHY} (approved: {WHY})"


def test_when_a_live_desk_has_no_operators_then_arming_and_starting_are_refused(
    tmp_path: Path,
) -> None:
    """A live config without [access]: `bastion arm` and `bastion run` refuse, saying a
    live node needs named operators."""
    key = key_file(tmp_path)
    desk = tmp_path / "desk"
    config = write_desk(desk, LIVE)
    Vault.create(desk / "vault.bastion", PASSPHRASE, clock=SimClock(T0), scope="live", kdf=FAST_KDF)
    commit_desk(desk)
    armed = arm(desk)
    assert armed.returncode == 2 and "a live node needs operators" in armed.stderr
    started = bastion("run", config.name, "--duration-s", "1", cwd=desk, key=key)
    assert started.returncode == 2 and "a live node needs operators" in started.stderr
