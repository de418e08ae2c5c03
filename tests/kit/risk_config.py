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


def load(tmp_path: Path, risk: str) -> PaperConfig:
    """A paper config of one instrument and one strategy with ``risk`` (TOML) added."""
    (tmp_path / "s.py").write_text("# placeholder\n")
    path = tmp_path / "paper.toml"
    path.write_text(HEAD + textwrap.dedent(risk))
    return load_config(path, PaperConfig)
