"""A FIX paper desk (``kit.chaos_harness``) with alerting: its node config gains
``[monitoring]`` and ``[[alert_routes]]`` whose URLs are in a vault, and the node and
the CLI run with the vault's key and the FIX password in their environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kit.chaos_harness import PASSWORD, Desk
from kit.node_process import bastion_cmd
from kit.receivers import Arrival, HttpReceiver
from kit.vaults import key_file, new_vault, vault_env


def alerting_toml(*routes: str) -> str:
    return '\n[monitoring]\nlisten = "127.0.0.1:0"\n' + "".join(routes)


def route_toml(name: str, *, attempts: int = 5, extra: str = "") -> str:
    return (
        f'\n[[alert_routes]]\nname = "{name}"\nurls = ["secret:notify/{name}"]\n'
        f"attempts = {attempts}\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n{extra}"
    )


def add_alerting(desk: Desk, urls: dict[str, str], *routes: str) -> Path:
    """The desk's node config with [monitoring] and ``routes``; a vault holding ``urls``
    (route name -> URL) and its key file (returned)."""
    with desk.node_config.open("a", encoding="utf-8") as config:
        config.write(alerting_toml(*routes))
    new_vault(desk.root / "vault.bastion", **{f"notify__{k}": v for k, v in urls.items()})
    return key_file(desk.root)


def env(key: Path) -> dict[str, str]:
    return vault_env(key, BASTION_FIX_PASSWORD=PASSWORD)


def start_node(desk: Desk, key: Path) -> subprocess.Popen[bytes]:
    """``bastion run`` of the desk's node; its stderr is appended to ``node.log``."""
    with desk.log("node").open("ab") as stderr:
        return subprocess.Popen(
            bastion_cmd("run", desk.node_config),
            cwd=desk.root,
            env=env(key),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def bastion(desk: Desk, key: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A ``bastion`` command run to its end in the desk (text output)."""
    return subprocess.run(
        bastion_cmd(*args),
        cwd=desk.root,
        env=env(key),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def one(receiver: HttpReceiver, alert: str, status: str) -> Arrival:
    """The one ``alert`` notification with ``status`` (AssertionError: not yet)."""
    arrivals = receiver.about(alert, status)
    assert len(arrivals) == 1, f"{alert} {status}: {len(arrivals)} arrived"
    return arrivals[0]
