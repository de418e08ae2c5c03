"""The run manifest: file hashes, the desk's git state, and what changed between runs."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import msgspec
import pytest

from bastion.errors import ConfigError
from bastion.manifest import collect_manifest, diff_manifests, git_state
from bastion.model.events import RunManifest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "desk",
    "GIT_AUTHOR_EMAIL": "desk@example.invalid",
    "GIT_COMMITTER_NAME": "desk",
    "GIT_COMMITTER_EMAIL": "desk@example.invalid",
    "PATH": "/usr/bin:/bin",
    "HOME": "/nonexistent",
}


def git(desk: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=desk, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    """A desk in a git repository: a config and a strategy file, committed."""
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "s.py").write_text("x = 1\n")
    (tmp_path / "node.toml").write_text("[node]\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "desk")
    return tmp_path


def manifest_of(desk: Path, *, who: str = "alice", epoch: int = 1) -> RunManifest:
    config = desk / "node.toml"
    return collect_manifest(
        config_path=config,
        config_bytes=config.read_bytes(),
        desk=desk,
        strategy_paths=[("strategies/s.py", desk / "strategies" / "s.py")],
        node_id="n1",
        epoch=epoch,
        mode="live",
        who=who,
        ts_ns=1,
    )


def test_when_desk_is_a_clean_commit_then_manifest_names_it_clean(desk: Path) -> None:
    """The commit checked out, not dirty, every file hashed."""
    manifest = manifest_of(desk)
    assert manifest.git_commit == git(desk, "rev-parse", "HEAD")
    assert manifest.git_dirty is False and manifest.untracked == []
    assert manifest.files == {"strategies/s.py": hashlib.sha256(b"x = 1\n").hexdigest()}
    assert manifest.config_sha256 == hashlib.sha256(b"[node]\n").hexdigest()


def test_when_a_tracked_strategy_is_edited_then_tree_is_dirty(desk: Path) -> None:
    """An uncommitted change to a tracked file makes the tree dirty."""
    (desk / "strategies" / "s.py").write_text("x = 2\n")
    assert manifest_of(desk).git_dirty is True


def test_when_a_run_file_is_not_tracked_then_dirty_naming_it(desk: Path) -> None:
    """A strategy file git does not know is dirty too, and named."""
    git(desk, "rm", "-q", "--cached", "strategies/s.py")
    git(desk, "commit", "-q", "-m", "untrack")
    state = git_state(desk, [desk / "strategies" / "s.py"])
    assert state is not None and state.dirty
    assert state.untracked == ("strategies/s.py",)


def test_when_an_untracked_file_is_not_part_of_the_run_then_tree_stays_clean(desk: Path) -> None:
    """A journal or log beside the config (untracked) does not make the run dirty."""
    (desk / "journal.sqlite").write_bytes(b"data")
    assert manifest_of(desk).git_dirty is False


def test_when_desk_is_not_a_repository_then_git_fields_are_none(tmp_path: Path) -> None:
    """Outside git: no commit, dirtiness unknown (None), files still hashed."""
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "s.py").write_text("x = 1\n")
    (tmp_path / "node.toml").write_text("[node]\n")
    manifest = manifest_of(tmp_path)
    assert manifest.git_commit is None and manifest.git_dirty is None
    assert manifest.files


def test_when_a_strategy_file_is_unreadable_then_config_error_names_it(tmp_path: Path) -> None:
    """A missing file cannot be hashed: a clear error naming it."""
    (tmp_path / "node.toml").write_text("")
    with pytest.raises(ConfigError, match=r"gone\.py"):
        collect_manifest(
            config_path=tmp_path / "node.toml",
            config_bytes=b"",
            desk=tmp_path,
            strategy_paths=[("gone.py", tmp_path / "gone.py")],
            node_id="n1",
            epoch=1,
            mode="paper",
            who="a",
            ts_ns=1,
        )


def test_when_two_starts_ran_the_same_code_then_no_difference(desk: Path) -> None:
    """Time, epoch and operator of a start are not changes."""
    assert diff_manifests(manifest_of(desk), manifest_of(desk, who="bob", epoch=2)) == []


def test_when_strategy_and_config_change_then_diff_names_both(desk: Path) -> None:
    """An edited strategy, an added one and a changed config each give a line."""
    old = manifest_of(desk)
    new = msgspec.structs.replace(
        old,
        config_sha256="0" * 64,
        files={"strategies/s.py": "1" * 64, "strategies/t.py": "2" * 64},
    )
    changes = diff_manifests(old, new)
    assert any(line.startswith("config_sha256:") for line in changes)
    assert f"file strategies/s.py: {old.files['strategies/s.py']} -> {'1' * 64}" in changes
    assert f"file strategies/t.py: added ({'2' * 64})" in changes
    assert diff_manifests(new, old)[-1] == f"file strategies/t.py: removed (was {'2' * 64})"
