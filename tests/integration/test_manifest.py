"""Every start journals a run manifest; `bastion manifest` shows it and what changed;
a live node refuses a dirty git tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.vault.vault import Vault
from kit.live_desk import (
    ME,
    NODE,
    ONE_ADMIN,
    STRATEGY,
    bastion,
    commit_desk,
    enrol_operators,
    write_desk,
)
from kit.node_process import run_to_end
from kit.users import FreshCodes
from kit.vaults import FAST_KDF, PASSPHRASE, T0, key_file


@pytest.mark.timeout(120)
def test_when_a_strategy_changes_between_starts_then_manifest_diff_names_it(
    tmp_path: Path,
) -> None:
    """Two starts, the strategy edited between them: show prints each, diff names the file."""
    config = write_desk(tmp_path)
    first = run_to_end("run", config.name, "--duration-s", "0.5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "strategies" / "idle.py").write_text(STRATEGY + "\n# tuned\n")
    second = run_to_end("run", config.name, "--duration-s", "0.5", cwd=tmp_path)
    assert second.returncode == 0, second.stderr

    shown = run_to_end("manifest", "show", "journal.sqlite", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    latest = json.loads(shown.stdout)
    assert latest["epoch"] == 2 and latest["mode"] == "paper" and latest["node_id"] == "m-1"
    assert set(latest["files"]) == {"strategies/idle.py"}
    assert latest["git_commit"] is None  # not a repository

    diff = run_to_end("manifest", "diff", "journal.sqlite", cwd=tmp_path)
    assert diff.returncode == 1, diff.stderr
    assert "epoch 1 -> 2: 1 change(s)" in diff.stdout
    assert "file strategies/idle.py:" in diff.stdout

    same = run_to_end("manifest", "diff", "journal.sqlite", "2", "2", cwd=tmp_path)
    assert same.returncode == 0 and "no change(s)" in same.stdout


def test_when_journal_has_no_manifest_then_usage_error(tmp_path: Path) -> None:
    """A file that is not a journal, or an unknown epoch, is a usage error (exit 2)."""
    (tmp_path / "x.sqlite").write_bytes(b"not a journal")
    proc = run_to_end("manifest", "show", "x.sqlite", cwd=tmp_path)
    assert proc.returncode == 2
    assert "x.sqlite" in proc.stderr


@pytest.mark.timeout(120)
def test_when_live_desk_tree_is_dirty_then_node_refuses_to_start(tmp_path: Path) -> None:
    """A live node whose strategy differs from the commit refuses, naming the fix; with
    allow_dirty (and an arming) it starts and the manifest records the dirty tree."""
    key = key_file(tmp_path)
    desk = tmp_path / "desk"
    config = write_desk(desk, 'mode = "live"', access=ONE_ADMIN)
    Vault.create(desk / "vault.bastion", PASSPHRASE, clock=SimClock(T0), scope="live", kdf=FAST_KDF)
    _, seeds = enrol_operators(desk / "vault.bastion", {"ada": (ME, "admin")})
    commit_desk(desk)
    (desk / "strategies" / "idle.py").write_text(STRATEGY + "\n# not committed\n")

    refused = bastion("run", config.name, "--duration-s", "0.5", cwd=desk, key=key)
    assert refused.returncode == 2
    assert "git tree is dirty" in refused.stderr and "allow_dirty" in refused.stderr
    assert not (desk / "journal.sqlite").exists()  # refused before anything was written

    config.write_text(
        NODE.format(
            node_extra='mode = "live"\nallow_dirty = true',
            journal="journal.sqlite",
            vault="vault.bastion",
            access=ONE_ADMIN,
        )
    )
    armed = bastion(
        "arm", config.name, "--why", "dirty drill", "--passphrase-stdin",
        cwd=desk, key=None, stdin=f"{PASSPHRASE}\n{FreshCodes(seeds)('ada')}\n",
    )  # fmt: skip
    assert armed.returncode == 0, armed.stderr
    started = bastion("run", config.name, "--duration-s", "0.5", cwd=desk, key=key)
    assert started.returncode == 0, started.stderr
    shown = run_to_end("manifest", "show", "journal.sqlite", "--json", cwd=desk)
    latest = json.loads(shown.stdout)
    assert latest["mode"] == "live" and latest["git_dirty"] is True
