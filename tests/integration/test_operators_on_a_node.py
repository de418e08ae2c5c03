"""Operators on a running node, through the real socket and command line: the node
takes the operator from the kernel (this test's own uid, mapped in the desk's store),
refuses what their role does not allow, sees a role change at the next command, holds a
resume after a kill for a second operator, and journals every decision with the uid
and pid of the process that asked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bastion.clock import SimClock
from bastion.model import events as ev
from bastion.vault.vault import Vault
from kit.journal_reading import read_journal
from kit.live_desk import ME, add_operators, bastion, write_desk
from kit.node_process import START_TIMEOUT_S, STOP_TIMEOUT_S, bastion_cmd, still_running
from kit.node_process import status as node_status
from kit.vaults import FAST_KDF, PASSPHRASE, T0, key_file, vault_env
from kit.waiting import eventually

ACCESS = "[access]\n[access.four_eyes]\nresume_s = 60\n"


def cli(desk: Path, key: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = bastion(*args, cwd=desk, key=key)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, json.loads(lines[-1]) if lines else {}, proc.stderr


@pytest.mark.timeout(180)
def test_when_operators_command_a_node_then_their_roles_decide_and_it_is_journaled(
    tmp_path: Path,
) -> None:
    key = key_file(tmp_path)
    desk = tmp_path / "desk"
    config = write_desk(desk, access=ACCESS)
    Vault.create(desk / "vault.bastion", PASSPHRASE, clock=SimClock(T0), kdf=FAST_KDF)
    users = add_operators(desk / "vault.bastion", {"vic": (ME, "viewer")})
    journal = desk / "journal.sqlite"
    log = desk / "node.stderr.log"
    with log.open("wb") as stderr:
        node = subprocess.Popen(
            bastion_cmd("run", config.name),
            cwd=desk,
            env=vault_env(key),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            status = eventually(
                lambda: still_running(node, log) and node_status(journal), START_TIMEOUT_S
            )
            assert status["you"]["operator"] == "vic" and status["you"]["uid"] == ME
            assert status["access"]["operators"] == "operators"
            assert status["access"]["four_eyes_s"]["resume"] == 60.0

            code, answer, err = cli(desk, key, "kill", config.name, "--why", "drill")
            assert code == 1 and "refused: vic (viewer) may not kill" in err
            assert answer == {"ok": False, "error": "refused: vic (viewer) may not kill"}

            users.set_roles("vic", ["risk_officer"])  # the next command sees it
            code, answer, err = cli(desk, key, "kill", config.name, "--why", "drill")
            assert code == 0 and answer["state"] == "HALTED", err
            code, answer, err = cli(desk, key, "resume", config.name, "--why", "over")
            assert code == 0 and answer["pending"].endswith(".a1"), err
            code, _, err = cli(desk, key, "approve", config.name, answer["pending"], "--why", "x")
            assert code == 1 and "may not approve it" in err
            code, answer, err = cli(desk, key, "status", config.name)
            assert answer["state"] == "HALTED" and answer["access"]["pending_approvals"] == 1
            code, answer, err = cli(desk, key, "approvals", config.name)
            assert [a["requested_by"] for a in answer["approvals"]] == ["vic"]
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=STOP_TIMEOUT_S)
    assert node.returncode == 0, log.read_text()

    events = [e for _, e in read_journal(journal)]
    refused = [e for e in events if isinstance(e, ev.OperatorRefused)]
    assert [(e.operator, e.command, e.uid) for e in refused] == [
        ("vic", "kill", ME),
        ("vic", "approve", ME),
    ]
    assert all(e.pid not in (0, os.getpid()) for e in refused)  # the CLI's own processes
    (done,) = [e for e in events if isinstance(e, ev.OperatorCommand)]
    assert (done.operator, done.roles, done.command, done.why) == (
        "vic",
        ["risk_officer"],
        "kill",
        "drill",
    )
    (asked,) = [e for e in events if isinstance(e, ev.ApprovalRequested)]
    assert (asked.operator, asked.command, asked.uid) == ("vic", "resume", ME)
    halts = [e for e in events if isinstance(e, ev.TradingStateChanged)]
    assert [h.reason for h in halts] == ["kill by vic: drill"]
