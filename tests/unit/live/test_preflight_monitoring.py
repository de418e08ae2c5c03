"""A live node refuses to start without monitoring (``check_live_start``); a paper node
runs without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.live.preflight import check_live_start, node_manifest

NODE = """
[node]
{mode}

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"

[[strategies]]
name = "s1"
path = "s.py"
class = "S"

[risk]
max_order_quantity = "100"
max_order_notional = "100000"
max_long_quantity = "500"
max_short_quantity = "500"
stale_data_ms = 2000
max_daily_loss_node = "5000"
max_messages_per_s = 50

[feed]
instrument = "XYZ.SIM"
"""


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
