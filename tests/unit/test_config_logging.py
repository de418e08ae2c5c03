"""``[node] log_file``, ``log_max_bytes`` and ``log_backups``: defaults, the path taken
relative to the config's directory, and each bad value refused naming its key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bastion.config import (
    DEFAULT_LOG_BACKUPS,
    DEFAULT_LOG_MAX_BYTES,
    PaperConfig,
    load_config,
)
from bastion.errors import ConfigError
from bastion.logs import LogFile

DESK = """
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


def paper(root: Path, node: str) -> Path:
    (root / "s.py").write_text("# placeholder strategy\n")
    path = root / "paper.toml"
    path.write_text("[node]\n" + textwrap.dedent(node) + DESK)
    return path


def test_when_log_file_not_given_then_stderr_only(tmp_path: Path) -> None:
    """No log_file: no file; the sizes have their defaults."""
    node = load_config(paper(tmp_path, ""), PaperConfig).node
    assert node.log_file_at(tmp_path) is None
    assert node.log_max_bytes == DEFAULT_LOG_MAX_BYTES == 50 * 1024 * 1024
    assert node.log_backups == DEFAULT_LOG_BACKUPS == 10


def test_when_log_file_relative_then_joined_to_the_config_dir(tmp_path: Path) -> None:
    """A relative log_file is under the config's directory, with the sizes given."""
    text = 'log_file = "logs/node.log"\nlog_max_bytes = 1000\nlog_backups = 3\n'
    node = load_config(paper(tmp_path, text), PaperConfig).node
    assert node.log_file_at(tmp_path) == LogFile(
        path=tmp_path / "logs" / "node.log", max_bytes=1000, backups=3
    )


def test_when_log_max_bytes_zero_then_no_backups_needed(tmp_path: Path) -> None:
    """log_max_bytes = 0 (an external logrotate) takes log_backups = 0."""
    text = 'log_file = "node.log"\nlog_max_bytes = 0\nlog_backups = 0\n'
    node = load_config(paper(tmp_path, text), PaperConfig).node
    assert node.log_file_at(tmp_path) == LogFile(path=tmp_path / "node.log", max_bytes=0, backups=0)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ('log_file = ""', "key 'node.log_file': must not be empty"),
        ("log_max_bytes = -1", "key 'node.log_max_bytes': must be 0 (no rotation) or more"),
        ("log_backups = -1", "key 'node.log_backups': must be 0 or more, got -1"),
        ("log_backups = 0", "key 'node.log_backups': must be 1 or more when the log rotates"),
        ('log_max_bytes = "50M"', "node.log_max_bytes"),
    ],
)
def test_when_log_key_bad_then_config_error_names_it(
    tmp_path: Path, node: str, message: str
) -> None:
    """Each bad value is refused with the file and the key named."""
    path = paper(tmp_path, node + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, PaperConfig)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_when_log_file_is_a_directory_then_config_error(tmp_path: Path) -> None:
    """A log_file that names a directory is refused with the path resolved."""
    (tmp_path / "logs").mkdir()
    path = paper(tmp_path, 'log_file = "logs"\n')
    with pytest.raises(ConfigError, match=r"key 'node.log_file': is a directory") as info:
        load_config(path, PaperConfig)
    assert str(tmp_path / "logs") in str(info.value)
