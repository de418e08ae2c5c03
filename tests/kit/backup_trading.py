"""A trading desk (the chaos harness's node and venue simulator) whose ``[backup]``
goes to the S3 server on loopback, and the ``bastion`` CLI run beside it with the
store's and the FIX session's credentials."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from bastion.backup.encryption import new_identity
from kit.chaos_harness import Desk, alive, node_fill_count, write_desk
from kit.node_process import bastion_cmd, child_env
from kit.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server

SEED = 20_261_207
BUCKET = "desk-backups"


def bastion(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **child_env(),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "BASTION_FIX_PASSWORD": "chaos-test-password",
    }
    return subprocess.run(
        bastion_cmd(*args),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def fills_at_least(desk: Desk, node: subprocess.Popen[bytes], n: int) -> bool:
    alive(node, desk.log("node"))
    assert node_fill_count(desk.journal) >= n, "not enough fills yet"
    return True


def backed_up_desk(
    tmp_path: Path, s3: S3Server, *, mode: str = "mixed", max_actions: int = 0
) -> tuple[Desk, Path, str]:
    """A desk whose [backup] goes to a fresh prefix of the S3 server (the chaos trader
    in ``mode``, stopping after ``max_actions`` if not 0); the identity file."""
    desk = write_desk(tmp_path / "desk", seed=SEED, mode=mode, max_actions=max_actions)
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    recipient = new_identity(keys / "backup.key")
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    with desk.node_config.open("a") as config:
        config.write(
            f'\n[backup]\nrecipients = ["{recipient}"]\n\n[backup.destination]\nkind = "s3"\n'
            f'bucket = "{BUCKET}"\nprefix = "{prefix}"\nendpoint = "{s3.endpoint}"\n'
            "allow_http = true\n"
        )
    return desk, keys / "backup.key", prefix


def drill(desk: Desk, identity: Path, scratch: Path) -> tuple[int, dict[str, Any], str]:
    """``bastion dr drill`` of ``desk`` into ``scratch``: exit code, JSON report (beside
    the scratch directory), what it printed."""
    report = scratch.with_suffix(".json")
    drilled = bastion(
        "dr", "drill", desk.node_config, "--identity", identity, "--scratch", scratch,
        "--report", report, cwd=desk.root.parent,
    )  # fmt: skip
    assert report.is_file(), drilled.stdout + drilled.stderr[-3000:]
    return drilled.returncode, json.loads(report.read_text()), drilled.stdout + drilled.stderr
