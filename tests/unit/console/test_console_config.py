"""console.toml: every mistake is one ConfigError naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.console.config import load_console_config, read_users_key
from bastion.errors import ConfigError, InsecureFile

GOOD = """\
users = "users.bastion"
users_key = "users.key"
[tls]
cert = "c.pem"
key = "k.pem"
[[nodes]]
name = "paper-1"
journal = "j/journal.sqlite"
"""


def write(directory: Path, text: str) -> Path:
    (directory / "c.pem").write_text("cert")
    (directory / "k.pem").write_text("key")
    path = directory / "console.toml"
    path.write_text(text)
    return path


def test_when_minimal_then_defaults_loopback_and_journal_socket(tmp_path: Path) -> None:
    """The defaults: 127.0.0.1:8443, loopback only, 8 h sessions, 15 min idle, 120 s step-up."""
    config, base = load_console_config(write(tmp_path, GOOD))
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8443)
    assert config.allow == ["127.0.0.0/8", "::1/128"]
    assert (config.session_ttl_s, config.idle_timeout_s, config.step_up_s) == (28800, 900, 120)
    assert config.node_sockets(base) == {"paper-1": tmp_path / "j" / "journal.sqlite.sock"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (GOOD.replace('[tls]\ncert = "c.pem"\nkey = "k.pem"\n', ""), "missing required key 'tls'"),
        (GOOD.replace('key = "k.pem"', ""), "missing required key 'tls.key'"),
        ("sesion_ttl_s = 5\n" + GOOD, "unknown key 'sesion_ttl_s'"),
        ('allow = ["10.0.0.300/24"]\n' + GOOD, "key 'allow[0]': not a network"),
        ("allow = []\n" + GOOD, "key 'allow'"),
        ("idle_timeout_s = 99999\n" + GOOD, "key 'idle_timeout_s'"),
        ("step_up_s = 0\n" + GOOD, "key 'step_up_s'"),
        (GOOD.replace('journal = "j/journal.sqlite"', ""), "key 'nodes[0]': give exactly one"),
        (GOOD + '[[nodes]]\nname = "paper-1"\nsocket = "s"\n', "key 'nodes[1].name': duplicate"),
        (GOOD.replace('users_key = "users.key"', ""), "missing required key 'users_key'"),
        (GOOD + "[login]\nmax_per_source_per_min = 0\n", "key 'login.max_per_source_per_min'"),
        (GOOD + "[listen]\nport = 70000\n", "key 'listen.port'"),
    ],
)
def test_when_config_wrong_then_error_names_key(tmp_path: Path, change: str, message: str) -> None:
    """Each mistake is refused with the key's name."""
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_console_config(write(tmp_path, change))


def test_when_tls_files_missing_then_refused(tmp_path: Path) -> None:
    """HTTPS only: no certificate, no console."""
    path = write(tmp_path, GOOD)
    (tmp_path / "k.pem").unlink()
    with pytest.raises(ConfigError, match=r"key 'tls\.key': file not found"):
        load_console_config(path)


def test_when_key_file_readable_by_group_then_refused(tmp_path: Path) -> None:
    """A users key others may read is refused before it is read."""
    path = tmp_path / "users.key"
    path.write_text("ab" * 32)
    os.chmod(path, 0o640)
    with pytest.raises(InsecureFile, match="too open"):
        read_users_key(path)
    os.chmod(path, 0o600)
    assert read_users_key(path) == bytes.fromhex("ab" * 32)


def test_when_key_not_32_bytes_hex_then_refused(tmp_path: Path) -> None:
    """A key file holding anything but 64 hex characters is refused, not shown."""
    path = tmp_path / "users.key"
    path.write_text("zz" * 32)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="not a 32-byte key") as refused:
        read_users_key(path)
    assert "zz" not in str(refused.value)
