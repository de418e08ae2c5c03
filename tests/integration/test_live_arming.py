"""Live mode through the real command line: a live node starts only once armed by an
admin with the live vault's passphrase and a fresh TOTP code (with four-eyes, a second
admin's approval, with theirs), once per arming; paper and live keep their vaults and
journals apart."""

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
    bastion,
    commit_desk,
    enrol_operators,
    write_desk,
)
from kit.users import FreshCodes
from kit.vaults import FAST_KDF, PASSPHRASE, T0, key_file, new_vault

LIVE = 'mode = "live"'
WHY = "first live day, after the 2026-01 review"


ADA, ABE, ROB, NOBODY = ME, ME + 1000, ME + 1001, ME + 1002


def live_desk(
    root: Path, access: str = ONE_ADMIN, operators: dict[str, tuple[int, str]] | None = None
) -> tuple[Path, Path, FreshCodes]:
    """A committed live desk with a live vault (cheap Argon2) and its operators (by
    default this account as the one admin, arming without a second); (desk, config,
    fresh TOTP codes by operator)."""
    desk = root / "desk"
    config = write_desk(desk, LIVE, access=access)
    Vault.create(desk / "vault.bastion", PASSPHRASE, clock=SimClock(T0), scope="live", kdf=FAST_KDF)
    _, seeds = enrol_operators(desk / "vault.bastion", operators or {"ada": (ADA, "admin")})
    commit_desk(desk)
    return desk, config, FreshCodes(seeds)


def arm(
    desk: Path,
    *extra: str,
    code: str = "",
    passphrase: str = PASSPHRASE,
    sudo_uid: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """``bastion arm`` with the passphrase and the TOTP ``code`` on stdin (none: an
    empty second line)."""
    return bastion(
        "arm", "node.toml", "--why", WHY, "--passphrase-stdin", *extra,
        cwd=desk, key=None, stdin=f"{passphrase}\n{code}\n", sudo_uid=sudo_uid,
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_when_a_live_node_is_armed_then_it_starts_once(tmp_path: Path) -> None:
    """Unarmed: refused (exit 2). A wrong passphrase arms nothing. Armed (passphrase and
    ada's code): it runs and journals LiveArmed with who and why; the next start needs a
    new arming."""
    key = key_file(tmp_path)
    desk, config, codes = live_desk(tmp_path)
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

    code = codes("ada")
    armed = arm(desk, code=code)
    assert armed.returncode == 0, armed.stderr
    assert "live_armed" in armed.stderr and "armed node.toml" in armed.stdout
    assert "by ada" in armed.stdout
    assert stat.S_IMODE(token_path(journal).stat().st_mode) == 0o600
    assert PASSPHRASE not in armed.stdout + armed.stderr
    assert code not in armed.stdout + armed.stderr

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
    desk, config, _ = live_desk(tmp_path)
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
    desk, config, codes = live_desk(tmp_path)
    assert arm(desk, code=codes("ada")).returncode == 0
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
    """ada asks with her code (a pending request, no arming: the node refuses to start);
    her own approval, an unmapped account's and a risk officer's are refused; abe
    (another admin, through sudo from his account) approves with his code: armed as "ada,
    approved by abe", which the node journals; the same approval again finds nothing to
    approve."""
    key = key_file(tmp_path)
    operators = {"ada": (ADA, "admin"), "abe": (ABE, "admin"), "rob": (ROB, "risk_officer")}
    desk, config, codes = live_desk(tmp_path, FOUR_EYES, operators)
    journal = desk / "journal.sqlite"

    asked = arm(desk, code=codes("ada"))
    assert asked.returncode == 0, asked.stderr
    assert "arming request" in asked.stdout and "not armed yet" in asked.stdout
    request_id = asked.stdout.split("arming request ", 1)[1].split()[0]
    assert f"--approve {request_id}" in asked.stdout
    assert not token_path(journal).exists()
    refused = bastion("run", config.name, "--duration-s", "1", cwd=desk, key=key)
    assert refused.returncode == 2 and "not armed" in refused.stderr

    own = arm(desk, "--approve", request_id, code=codes("ada"))
    assert own.returncode == 2 and "ada asked for arming" in own.stderr
    stranger = arm(desk, "--approve", request_id, sudo_uid=NOBODY)
    assert stranger.returncode == 2 and f"uid {NOBODY}" in stranger.stderr
    assert "not mapped to an operator" in stranger.stderr
    officer = arm(desk, "--approve", request_id, sudo_uid=ROB)
    assert officer.returncode == 2 and "rob (risk_officer) may not arm_live" in officer.stderr
    assert not token_path(journal).exists()

    approved = arm(desk, "--approve", request_id, code=codes("abe"), sudo_uid=ABE)
    assert approved.returncode == 0, approved.stderr
    assert "by ada, approved by abe" in approved.stdout
    again = arm(desk, "--approve", request_id, code=codes("abe"), sudo_uid=ABE)
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


def wrong_code(right: str) -> str:
    """A well-formed code that is not ``right``."""
    return "000000" if right != "000000" else "111111"


@pytest.mark.timeout(180)
def test_when_an_admins_step_up_code_is_wrong_then_nothing_is_asked_or_armed(
    tmp_path: Path,
) -> None:
    """With four-eyes: ada's wrong code writes no request, a missing code line neither;
    with her right code the request is written; abe's wrong code arms nothing and leaves
    the request pending; with his right code it arms. Refusals name the operator, never
    the code."""
    operators = {"ada": (ADA, "admin"), "abe": (ABE, "admin")}
    desk, _, codes = live_desk(tmp_path, FOUR_EYES, operators)
    journal = desk / "journal.sqlite"
    pending = journal.with_name(journal.name + ".arm-request")

    ada = codes("ada")
    wrong = arm(desk, code=wrong_code(ada))
    assert wrong.returncode == 2, wrong.stderr
    assert "step-up refused for ada" in wrong.stderr and "the code is wrong" in wrong.stderr
    assert wrong_code(ada) not in wrong.stdout + wrong.stderr
    missing = arm(desk)
    assert missing.returncode == 2 and "no TOTP code of ada" in missing.stderr
    assert not pending.exists() and not token_path(journal).exists()

    asked = arm(desk, code=ada)
    assert asked.returncode == 0, asked.stderr
    request_id = asked.stdout.split("arming request ", 1)[1].split()[0]
    before = pending.read_bytes()

    abe = codes("abe")
    refused = arm(desk, "--approve", request_id, code=wrong_code(abe), sudo_uid=ABE)
    assert refused.returncode == 2 and "step-up refused for abe" in refused.stderr
    assert wrong_code(abe) not in refused.stdout + refused.stderr
    assert not token_path(journal).exists() and pending.read_bytes() == before

    approved = arm(desk, "--approve", request_id, code=abe, sudo_uid=ABE)
    assert approved.returncode == 0, approved.stderr
    assert "by ada, approved by abe" in approved.stdout and token_path(journal).exists()


def test_when_a_step_up_code_is_replayed_then_refused_and_the_arming_unchanged(
    tmp_path: Path,
) -> None:
    """A code is good once: arming again with the code just used is refused (exit 2)
    and the first arming stays as written."""
    desk, _, codes = live_desk(tmp_path)
    token = token_path(desk / "journal.sqlite")
    code = codes("ada")
    assert arm(desk, code=code).returncode == 0
    first = token.read_bytes()

    replayed = arm(desk, code=code)
    assert replayed.returncode == 2, replayed.stderr
    assert "step-up refused for ada" in replayed.stderr and "used already" in replayed.stderr
    assert code not in replayed.stdout + replayed.stderr
    assert token.read_bytes() == first


def test_when_an_admin_is_locked_out_then_even_the_right_code_arms_nothing(
    tmp_path: Path,
) -> None:
    """Step-up refusals count towards the lockout ([access.users] max_failures = 2): the
    second wrong code locks ada out, and then her right code is refused as locked out."""
    access = "[access]\n[access.users]\nmax_failures = 2\n[access.four_eyes]\narm_live_s = 0\n"
    desk, _, codes = live_desk(tmp_path, access)
    code = codes("ada")
    assert "the code is wrong" in arm(desk, code=wrong_code(code)).stderr
    locking = arm(desk, code=wrong_code(code))
    assert locking.returncode == 2 and "ada is now locked out until" in locking.stderr

    locked = arm(desk, code=code)
    assert locked.returncode == 2, locked.stderr
    assert "step-up refused for ada" in locked.stderr and "locked out until" in locked.stderr
    assert "bastion users enable ada" in locked.stderr
    assert not token_path(desk / "journal.sqlite").exists()
