"""`bastion console`: refused before serving when its config or key file is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.cli.main import main

CONFIG = """\
users = "users.bastion"
users_key = "users.key"
[tls]
cert = "c.pem"
key = "k.pem"
[[nodes]]
name = "paper-1"
socket = "/tmp/nowhere.sock"
"""


def test_when_config_missing_then_exit_2_naming_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No config file: exit 2, the file named."""
    assert main(["console", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: config file not found" in capsys.readouterr().err


def test_when_key_file_open_to_group_then_exit_2_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A users key file the group may read: refused, with the fix."""
    for name in ("c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    (tmp_path / "users.key").write_text("ab" * 32)
    os.chmod(tmp_path / "users.key", 0o640)
    (tmp_path / "console.toml").write_text(CONFIG)
    assert main(["console", str(tmp_path / "console.toml")]) == 2
    assert "chmod 600" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["console", "init"], ["console", "init", "dir"], ["console", "c.toml", "extra"]],
)
def test_when_arguments_wrong_then_exit_2(argv: list[str]) -> None:
    """init needs DIR and --config; serving takes the config alone."""
    assert main(argv) == 2
