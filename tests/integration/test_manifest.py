"""Every start journals a run manifest; `bastion manifest` shows it and what changed;
a live node refuses a dirty git tree."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kit.node_process import run_to_end

STRATEGY = '''
from bastion.strategy import Strategy


class Idle(Strategy):
    """Subscribes and does nothing: the run is about what was started."""

    def on_start(self) -> None:
        self.subscribe_quotes("XYZ.SIM")
'''

NODE = """
[node]
id = "m-1"
{node_extra}

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"

[[strategies]]
name = "idle"
path = "strategies/idle.py"
class = "Idle"

[risk]
max_order_quantity = "10"
max_order_notional = "10000"
max_long_quantity = "10"
max_short_quantity = "10"
stale_data_ms = 5000
max_daily_loss_node = "1000"
max_messages_per_s = 20

[feed]
instrument = "XYZ.SIM"
interval_ms = 50

[journal]
path = "journal.sqlite"
"""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "desk",
    "GIT_AUTHOR_EMAIL": "desk@example.invalid",
    "GIT_COMMITTER_NAME": "desk",
    "GIT_COMMITTER_EMAIL": "desk@example.invalid",
    "PATH": "/usr/bin:/bin",
    "HOME": "/nonexistent",
}


def write_desk(root: Path, node_extra: str = 'isolation = "inline"') -> Path:
    (root / "strategies").mkdir(exist_ok=True)
    (root / "strategies" / "idle.py").write_text(STRATEGY)
    config = root / "node.toml"
    config.write_text(NODE.format(node_extra=node_extra))
    return config


def git(desk: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=desk, env=GIT_ENV, capture_output=True, check=True)


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
    allow_dirty it starts and the manifest records the dirty tree."""
    config = write_desk(tmp_path, 'mode = "live"')
    (tmp_path / ".gitignore").write_text("journal.sqlite*\n*.log\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "desk")
    (tmp_path / "strategies" / "idle.py").write_text(STRATEGY + "\n# not committed\n")

    refused = run_to_end("run", config.name, "--duration-s", "0.5", cwd=tmp_path)
    assert refused.returncode == 2
    assert "git tree is dirty" in refused.stderr and "allow_dirty" in refused.stderr
    assert not (tmp_path / "journal.sqlite").exists()  # refused before anything was written

    config.write_text(NODE.format(node_extra='mode = "live"\nallow_dirty = true'))
    started = run_to_end("run", config.name, "--duration-s", "0.5", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    shown = run_to_end("manifest", "show", "journal.sqlite", "--json", cwd=tmp_path)
    latest = json.loads(shown.stdout)
    assert latest["mode"] == "live" and latest["git_dirty"] is True
