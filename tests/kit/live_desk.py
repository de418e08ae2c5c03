"""A desk for live-mode tests: a node config with the live minimum limits and its
operators, a strategy, a git repository, and the bastion CLI run with a chosen vault
passphrase source."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Final

from bastion.clock import SimClock
from bastion.security.store import UserStore
from bastion.vault.vault import Vault
from kit.node_process import RUN_TIMEOUT_S, bastion_cmd
from kit.users import FAST_USERS, PASSWORD, enrolled
from kit.vaults import PASSPHRASE, T0, vault_env

STRATEGY: Final = '''
from bastion.strategy import Strategy


class Idle(Strategy):
    """Subscribes and does nothing: the run is about what was started."""

    def on_start(self) -> None:
        self.subscribe_quotes("XYZ.SIM")
'''

NODE: Final = """
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
path = "{journal}"

[vault]
path = "{vault}"

[monitoring]
listen = "127.0.0.1:0"

{access}
"""
"""A node config; ``node_extra`` goes in ``[node]`` (``mode = "live"``, ...), ``access``
is its ``[access]`` section (or nothing)."""

ONE_ADMIN: Final = "[access]\n[access.four_eyes]\narm_live_s = 0\n"
"""Operators from the store beside the vault; arming needs no second admin."""
FOUR_EYES: Final = "[access]\n"
"""Operators from the store beside the vault, four-eyes as a live node's default."""
ME: Final = os.getuid()

GITIGNORE: Final = (
    "journal.sqlite*\n*.log\n.bastion-mode\nvault.bastion\nusers.bastion\n.users.bastion.lock\n"
)

_GIT_ENV: Final = {
    "GIT_AUTHOR_NAME": "desk",
    "GIT_AUTHOR_EMAIL": "desk@example.invalid",
    "GIT_COMMITTER_NAME": "desk",
    "GIT_COMMITTER_EMAIL": "desk@example.invalid",
    "PATH": "/usr/bin:/bin",
    "HOME": "/nonexistent",
}


def write_desk(
    root: Path,
    node_extra: str = 'isolation = "inline"',
    *,
    journal: str = "journal.sqlite",
    vault: str = "vault.bastion",
    name: str = "node.toml",
    access: str = "",
) -> Path:
    """The config ``root/name`` and its strategy; returns the config's path."""
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    (root / "strategies" / "idle.py").write_text(STRATEGY)
    config = root / name
    text = NODE.format(node_extra=node_extra, journal=journal, vault=vault, access=access)
    config.write_text(text)
    return config


def add_operators(
    vault_path: Path, operators: dict[str, tuple[int, str]], passphrase: str = PASSPHRASE
) -> UserStore:
    """Operators ``{name: (uid, role)}`` in the store beside the vault at ``vault_path``
    (made with its ``users/key``, as ``bastion users add`` does; cheap hashes)."""
    return enrol_operators(vault_path, operators, passphrase)[0]


def enrol_operators(
    vault_path: Path, operators: dict[str, tuple[int, str]], passphrase: str = PASSPHRASE
) -> tuple[UserStore, dict[str, str]]:
    """As ``add_operators`` (password ``PASSWORD``, TOTP enrolled at ``T0``); also their
    TOTP seeds, by name (to sign in to a console as them)."""
    vault = Vault.open(vault_path, passphrase, clock=SimClock(T0))
    users = UserStore.for_vault(vault, clock=SimClock(T0), config=FAST_USERS, create_key=True)
    seeds: dict[str, str] = {}
    for name, (uid, role) in operators.items():
        seeds[name], confirmed = enrolled(name)
        users.add(name, PASSWORD, roles=(role,), os_uid=uid, totp=confirmed)
    return users, seeds


def git(desk: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=desk, env=_GIT_ENV, capture_output=True, check=True)


def commit_desk(desk: Path) -> None:
    """Make ``desk`` a git repository with everything but the run's own files committed."""
    (desk / ".gitignore").write_text(GITIGNORE)
    git(desk, "init", "-q")
    git(desk, "add", ".")
    git(desk, "commit", "-q", "-m", "desk")


def bastion(
    *args: str | Path, cwd: Path, key: Path | None, stdin: str = "", sudo_uid: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``bastion ARGS`` to its end, the vault passphrase from the key file ``key`` only
    (none: no unattended source); stdin is ``stdin`` (not a terminal). ``sudo_uid``: run
    as if through sudo from that account (``SUDO_UID``; tests cannot switch uid)."""
    env = vault_env(key)
    if sudo_uid is not None:
        env["SUDO_UID"] = str(sudo_uid)
    return subprocess.run(
        bastion_cmd(*args),
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
