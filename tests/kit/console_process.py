"""A ``bastion console`` process as an operator sets one up: ``bastion console init``
beside a node's config, its port moved to a free one, then ``bastion console
CONFIG`` run until the test ends; ``answering`` tells when it serves HTTPS."""

from __future__ import annotations

import re
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from kit.live_desk import bastion
from kit.node_process import STOP_TIMEOUT_S, bastion_cmd
from kit.vaults import vault_env

__all__ = ["answering", "console_init", "console_process"]


def console_init(directory: Path, node_config: Path, *, key: Path, port: int) -> Path:
    """``bastion console init DIRECTORY --config NODE_CONFIG`` (the vault unlocked with
    the key file ``key``), its ``[listen] port`` set to ``port``; the console.toml."""
    made = bastion(
        "console", "init", directory, "--config", node_config, cwd=node_config.parent, key=key
    )
    assert made.returncode == 0, made.stderr
    config = directory / "console.toml"
    text, changed = re.subn(r"(?m)^port = \d+$", f"port = {port}", config.read_text())
    assert changed == 1, "console init wrote no [listen] port"
    config.write_text(text)
    return config


@contextmanager
def console_process(config: Path, *, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``bastion console CONFIG`` with no vault passphrase source (it needs none);
    stderr to ``log``. Stopped (SIGTERM, then killed) when the block ends."""
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            bastion_cmd("console", config),
            cwd=config.parent,
            env=vault_env(None),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT_S)


def answering(proc: subprocess.Popen[bytes], base_url: str, cert: Path, log: Path) -> bool:
    """Does the console at ``base_url`` answer over TLS, with a certificate ``cert``
    vouches for? Fails at once if the process exited."""
    if proc.poll() is not None:
        pytest.fail(f"the console exited with {proc.returncode}:\n{log.read_text()}")
    try:
        response = httpx.get(
            base_url + "/", verify=ssl.create_default_context(cafile=str(cert)), timeout=2
        )
    except httpx.TransportError:
        return False
    return response.status_code == 200
