"""A paper node config around a [risk] section, loaded through the real schema."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bastion.config import PaperConfig, load_config

HEAD = """
[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"

[[strategies]]
name = "s1"
path = "s.py"
class = "S"

[feed]
instrument = "XYZ.SIM"
"""


LIVE_LIMITS = """
[risk]
max_order_quantity = "100"
max_order_notional = "100000"
max_long_quantity = "500"
max_short_quantity = "500"
stale_data_ms = 2000
max_daily_loss_node = "5000"
max_messages_per_s = 50
"""
"""The [risk] limits a live node must set (``RiskConfig.check_live``)."""


def load(tmp_path: Path, risk: str) -> PaperConfig:
    """A paper config of one instrument and one strategy with ``risk`` (TOML) added."""
    (tmp_path / "s.py").write_text("# placeholder\n")
    path = tmp_path / "paper.toml"
    path.write_text(HEAD + textwrap.dedent(risk))
    return load_config(path, PaperConfig)
