"""A live node refuses to start without monitoring (``check_live_start``); a paper node
runs without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.live.preflight import check_live_start, node_manifest
from kit.risk_config import HEAD, LIVE_LIMITS

NODE = (
    """
[node]
{mode}

"""
    + HEAD
    + LIVE_LIMITS
)


def start(tmp_path: Path, mode: str, monitoring: str) -> None:
    (tmp_path / "s.py").write_text("# placeholder strategy\n")
    path = tmp_path / "node.toml"
    node = 'mode = "live"\nallow_dirty = true' if mode == "live" else 'mode = "paper"'
    access = "\n[access]\n" if mode == "live" else ""  # operators: checked before this
    path.write_text(NODE.format(mode=node) + access + monitoring)
    config = load_config(path, PaperConfig)
    manifest = node_manifest(config, base_dir=tmp_path, source=str(path), who="op", ts_ns=1)
    check_live_start(config, manifest)


def test_when_live_node_has_no_monitoring_then_start_refused_naming_the_section(
    tmp_path: Path,
) -> None:
    """No [monitoring]: refused, the error says what to add."""
    with pytest.raises(ConfigError, match=r"monitoring is off.*\[monitoring\]"):
        start(tmp_path, "live", "")


def test_when_live_node_monitoring_disabled_then_start_refused(tmp_path: Path) -> None:
    """[monitoring] enabled = false is off too."""
    with pytest.raises(ConfigError, match="enabled = false"):
        start(tmp_path, "live", "[monitoring]\nenabled = false\n")


def test_when_live_node_monitored_or_paper_unmonitored_then_start_admitted(
    tmp_path: Path,
) -> None:
    """A monitored live node passes this check; a paper node needs no monitoring."""
    start(tmp_path, "live", '[monitoring]\nlisten = "127.0.0.1:0"\n')
    start(tmp_path, "paper", "")
