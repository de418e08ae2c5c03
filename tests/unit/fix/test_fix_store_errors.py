"""A FIX session store file that cannot be used is a configuration problem: the command
stops with exit 2 and one ``error:`` line naming the file, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.fix.store import SessionStoreError, SqliteSessionStore
from kit.node_process import run_to_end

NODE_TOML = """
[node]
id = "storetest"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "s"
path = "s.py"
class = "S"

[fix_venue]
name = "FIXSIM"
port = 1
sender_comp_id = "NODE"
target_comp_id = "SIM"
username = "trader"
store_path = "fix/session.sqlite"

[journal]
path = "j/node.sqlite"
"""


def garbage_store(root: Path) -> Path:
    store = root / "fix" / "session.sqlite"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"not a database, just bytes that fill a page\n" * 200)
    return store


def test_when_store_file_is_garbage_then_config_error_naming_the_file(tmp_path: Path) -> None:
    """Opening a store that is not a database raises a ConfigError (exit 2) naming it."""
    store = garbage_store(tmp_path)
    with pytest.raises(ConfigError, match="not a FIX session store") as raised:
        SqliteSessionStore(store, "FIX.4.4:NODE->SIM", now_ns=1)
    assert isinstance(raised.value, SessionStoreError)
    assert str(store) in str(raised.value)


def test_when_run_with_a_garbage_store_file_then_exit_2_and_one_error_line(
    tmp_path: Path,
) -> None:
    """``bastion run`` on a node whose FIX store file is garbage: exit 2, one ``error:``
    line (after the node's start-up log line), no traceback."""
    (tmp_path / "s.py").write_text("# placeholder strategy\n")
    (tmp_path / "node.toml").write_text(NODE_TOML)
    store = garbage_store(tmp_path)
    result = run_to_end("run", "node.toml", cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    assert str(store) in errors[0] and "not a FIX session store" in errors[0]
