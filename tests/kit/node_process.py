"""A bastion command as a child process (a node, the CLI), and its control channel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import BastionError
from bastion.node.control import request, socket_path

RunBastion = Callable[..., subprocess.CompletedProcess[str]]
"""The ``run_bastion`` fixture: ``run_bastion(*args, cwd=None, timeout_s=120.0)``."""

START_TIMEOUT_S = 15.0  # interpreter start, imports, first fills
STOP_TIMEOUT_S = 15.0  # the node's own shutdown deadline is 10 s
RUN_TIMEOUT_S = 30.0


def bastion_cmd(*args: str | Path) -> list[str]:
    """``python -m bastion ARGS`` with the running interpreter."""
    return [sys.executable, "-m", "bastion", *(str(a) for a in args)]


def child_env() -> dict[str, str]:
    """The environment of a bastion child process: unbuffered, no colours."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}


@contextmanager
def running_node(*args: str | Path, cwd: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Start ``bastion ARGS``; stderr goes to a file (a full pipe would block the node).

    The node is killed if the test leaves the block while it still runs.
    """
    stderr_path = cwd / "node.stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            bastion_cmd(*args),
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield proc, stderr_path
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def run_to_end(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``bastion ARGS`` in ``cwd`` to its end (at most ``RUN_TIMEOUT_S``); text output."""
    return subprocess.run(
        bastion_cmd(*args),
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def still_running(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """True while the node runs; fails the test at once (not "not yet") if it exited."""
    if proc.poll() is not None:
        pytest.fail(f"node exited early with {proc.returncode}:\n{log.read_text()}")
    return True


def status(journal: Path) -> dict[str, Any]:
    """The node's ``status`` answer over its control socket; AssertionError until it answers."""
    try:
        response = request(socket_path(journal), {"cmd": "status"}, timeout_s=5)
    except (OSError, BastionError) as e:  # no node listening yet, or no answer yet
        raise AssertionError(f"no status yet: {e}") from e
    assert response["ok"] is True, response
    return response


def terminate(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM (an orderly shutdown), then the exit code."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=STOP_TIMEOUT_S)
