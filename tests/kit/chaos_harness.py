"""The chaos tests' harness: a venue simulator and a FIX paper node as processes in one
directory (a ``Desk``), ``bastion recover`` and ``bastion journal verify`` runs, and
read-only queries on the node's journal while it runs. The oracle is ``kit.chaos_oracle``.

Waits use ``eventually``; ``chaos_pause`` is the only sleep, and it waits for no
condition: it is the random moment at which a process is killed.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kit.fix_desk import node_fix_venue_toml
from kit.net import free_tcp_port, listening
from kit.node_process import START_TIMEOUT_S, STOP_TIMEOUT_S, bastion_cmd, child_env
from kit.paths import TESTS_DIR
from kit.waiting import eventually

PASSWORD = "chaos-test-password"
NODE_ID = "chaos"
ACCOUNT = "acct"
INSTRUMENT = "XYZ.SIM"
PRICE_DECIMALS = 2  # tick_size 0.01
SIZE_DECIMALS = 0  # lot_size 1
STRATEGY_FILE = TESTS_DIR / "chaos" / "strategies" / "chaos_trader.py"
RECONCILE_TIMEOUT_S = 30.0  # interpreter start, journal replay, logon, reconciliation
RECOVER_TIMEOUT_S = 60.0
LOG_TAIL_CHARS = 4000

VENUE_TOML = """
host = "127.0.0.1"
port = {port}
comp_id = "SIM"
ledger_path = "venue/ledger.sqlite"
session_store_path = "venue/sessions.sqlite"
cancel_on_disconnect = false

[[accounts]]
name = "{account}"
comp_id = "NODE"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"

[matching]
name = "FIXSIM"
latency_ms = 2

[[instruments]]
id = "{instrument}"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[feeds]]
instrument = "{instrument}"
seed = {seed}
size = "1000"
interval_ms = 20
"""

NODE_TOML = """
[node]
id = "{node_id}"
log_format = "json"

[[instruments]]
id = "{instrument}"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "trader"
path = "{strategy}"
class = "ChaosTrader"

[strategies.params]
instrument = "{instrument}"
seed = {seed}
every_quotes = 2
max_position = 5
max_resting = 8
mode = "{mode}"
max_actions = {max_actions}

[risk]
max_order_quantity = "10"
max_order_notional = "100000"

{fix_venue}
[journal]
path = "journal.sqlite"
{snapshot_keys}
"""


# -- the desk: configs and files -----------------------------------------------------------


@dataclass(frozen=True)
class Desk:
    """One venue and one node sharing a directory; every path the tests look at."""

    root: Path
    port: int

    @property
    def venue_config(self) -> Path:
        return self.root / "venue-sim.toml"

    @property
    def node_config(self) -> Path:
        return self.root / "paper-fix.toml"

    @property
    def journal(self) -> Path:
        return self.root / "journal.sqlite"

    @property
    def ledger(self) -> Path:
        return self.root / "venue" / "ledger.sqlite"

    @property
    def venue_store(self) -> Path:
        """The venue's FIX session store: every message it sent, by sequence number."""
        return self.root / "venue" / "sessions.sqlite"

    @property
    def node_store(self) -> Path:
        """The node's FIX session store: every message it sent, by sequence number."""
        return self.root / "fix" / "session.sqlite"

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def copy(self, root: Path) -> Desk:
        """The same desk copied to ``root`` (every process stopped first)."""
        shutil.copytree(self.root, root)
        return Desk(root=root, port=self.port)


def write_desk(
    root: Path,
    *,
    seed: int,
    mode: str = "mixed",
    max_actions: int = 0,
    snapshot_every_events: int | None = 50,
    snapshot_interval_s: float = 1.0,
) -> Desk:
    """Venue and node configs in ``root``; ``snapshot_every_events=None`` leaves out the
    snapshot keys (for a node that does not know them)."""
    port = free_tcp_port()
    snapshot_keys = (
        ""
        if snapshot_every_events is None
        else f"snapshot_every_events = {snapshot_every_events}\n"
        f"snapshot_interval_s = {snapshot_interval_s}\n"
    )
    desk = Desk(root=root, port=port)
    root.mkdir(parents=True, exist_ok=True)
    desk.venue_config.write_text(
        VENUE_TOML.format(port=port, account=ACCOUNT, instrument=INSTRUMENT, seed=seed),
        encoding="utf-8",
    )
    desk.node_config.write_text(
        NODE_TOML.format(
            node_id=NODE_ID,
            instrument=INSTRUMENT,
            strategy=STRATEGY_FILE,
            seed=seed,
            mode=mode,
            max_actions=max_actions,
            fix_venue=node_fix_venue_toml(port, heartbeat_s=5, logon_timeout_ms=5000),
            snapshot_keys=snapshot_keys,
        ),
        encoding="utf-8",
    )
    return desk


# -- processes -----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**child_env(), "BASTION_FIX_PASSWORD": PASSWORD}


def spawn(desk: Desk, *args: str | Path, log: str) -> subprocess.Popen[bytes]:
    """Start ``bastion ARGS`` in the desk; stderr is appended to ``<log>.log``."""
    with desk.log(log).open("ab") as stderr:
        return subprocess.Popen(
            bastion_cmd(*args),
            cwd=desk.root,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def log_tail(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return text[-LOG_TAIL_CHARS:]


def alive(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """True while ``proc`` runs; fails the test at once (not "not yet") if it exited."""
    if proc.poll() is not None:
        pytest.fail(f"{log.stem} exited early with {proc.returncode}:\n{log_tail(log)}")
    return True


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL (no cleanup of any kind) and reap."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=STOP_TIMEOUT_S)


def chaos_pause(seconds: float) -> None:
    """Let the processes run for ``seconds``: the random moment of a kill, not a wait for
    any condition (conditions are polled with ``eventually``)."""
    time.sleep(seconds)


def start_venue(desk: Desk) -> subprocess.Popen[bytes]:
    """The venue simulator, listening when this returns."""
    venue = spawn(desk, "venue", "sim", desk.venue_config, log="venue")
    try:
        eventually(
            lambda: alive(venue, desk.log("venue")) and listening(desk.port), START_TIMEOUT_S
        )
    except BaseException:
        kill(venue)
        raise
    return venue


@contextmanager
def venue_process(desk: Desk) -> Iterator[subprocess.Popen[bytes]]:
    """A running venue simulator, killed if the block leaves it running."""
    venue = start_venue(desk)
    try:
        yield venue
    finally:
        if venue.poll() is None:
            kill(venue)


def start_node(desk: Desk) -> subprocess.Popen[bytes]:
    return spawn(desk, "run", desk.node_config, log="node")


@dataclass
class Recovery:
    """What one ``bastion recover`` run said."""

    returncode: int
    report: dict[str, Any] | None
    stdout: str
    stderr: str

    def problems(self) -> list[str]:
        """Why this recovery does not count as clean (empty: exit 0, no mismatch)."""
        if self.report is None:
            return [f"recover exit {self.returncode}, no JSON on stdout: {self.stdout!r}"]
        problems = []
        if self.returncode != 0:
            problems.append(f"recover exit {self.returncode}")
        missing = {
            "epoch",
            "snapshot_seq",
            "replayed_events",
            "torn_tail",
            "reconciliation",
            "state",
        } - set(self.report)
        if missing:
            problems.append(f"recover report lacks {sorted(missing)}")
        reconciliation = self.report.get("reconciliation") or {}
        problems += [f"recover: {m}" for m in reconciliation.get("mismatches", ["(no list)"])]
        return problems


def start_recover(desk: Desk) -> subprocess.Popen[bytes]:
    return spawn(desk, "recover", desk.node_config, log="recover")


def run_recover(desk: Desk) -> Recovery:
    """``bastion recover CONFIG`` to its end; stderr is appended to recover.log."""
    proc = subprocess.run(
        bastion_cmd("recover", desk.node_config),
        cwd=desk.root,
        env=_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=RECOVER_TIMEOUT_S,
        check=False,
    )
    with desk.log("recover").open("a", encoding="utf-8") as log:
        log.write(proc.stderr)
    report: dict[str, Any] | None
    try:
        decoded = json.loads(proc.stdout)
        report = decoded if isinstance(decoded, dict) else None
    except json.JSONDecodeError:
        report = None
    return Recovery(proc.returncode, report, proc.stdout, proc.stderr)


def journal_verify(desk: Desk) -> subprocess.CompletedProcess[str]:
    """``bastion journal verify`` on the node's journal."""
    return subprocess.run(
        bastion_cmd("journal", "verify", desk.journal),
        cwd=desk.root,
        env=_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=RECOVER_TIMEOUT_S,
        check=False,
    )


# -- the node's journal, read-only ---------------------------------------------------------


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``): a reader never changes what it checks."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)


def last_epoch(journal: Path) -> int:
    """The journal's last run epoch (0 before the first run)."""
    if not journal.is_file():
        return 0
    with closing(read_only(journal)) as db:
        try:
            row = db.execute("SELECT MAX(epoch) FROM runs").fetchone()
        except sqlite3.OperationalError:  # created, schema not yet written
            return 0
    return int(row[0] or 0)


def reconciliation(journal: Path, epoch: int) -> dict[str, Any]:
    """The ``ReconciliationCompleted`` of run ``epoch``; AssertionError ("not yet") if none."""
    if not journal.is_file():
        raise AssertionError("no journal yet")
    try:
        with closing(read_only(journal)) as db:
            rows = db.execute(
                "SELECT payload FROM events WHERE type = 'ReconciliationCompleted' ORDER BY seq"
            ).fetchall()
    except sqlite3.Error as error:  # schema not created yet, or a writer holds a lock
        raise AssertionError(f"journal not readable yet: {error}") from error
    for (payload,) in rows:
        try:
            event = msgspec.msgpack.decode(payload)
        except msgspec.DecodeError:
            continue  # a torn record; the oracle reports it
        if event.get("epoch") == epoch:
            return dict(event)
    raise AssertionError(f"no ReconciliationCompleted for epoch {epoch} yet")


def wait_reconciled(desk: Desk, node: subprocess.Popen[bytes], epoch: int) -> dict[str, Any]:
    """Poll until run ``epoch`` has journaled its ``ReconciliationCompleted``; return it."""
    return eventually(
        lambda: alive(node, desk.log("node")) and reconciliation(desk.journal, epoch),
        RECONCILE_TIMEOUT_S,
    )


def node_fill_count(journal: Path) -> int:
    try:
        with closing(read_only(journal)) as db:
            row = db.execute("SELECT COUNT(*) FROM events WHERE type = 'OrderFilled'").fetchone()
    except sqlite3.Error as error:
        raise AssertionError(f"journal not readable yet: {error}") from error
    return int(row[0])


def venue_fill_count(ledger: Path) -> int:
    try:
        with closing(read_only(ledger)) as db:
            row = db.execute("SELECT COUNT(*) FROM fills WHERE account = ?", (ACCOUNT,)).fetchone()
    except sqlite3.Error as error:
        raise AssertionError(f"ledger not readable yet: {error}") from error
    return int(row[0])


def node_logs(desk: Desk, event: str) -> list[dict[str, Any]]:
    """The node's JSON log lines named ``event`` (over every run)."""
    found: list[dict[str, Any]] = []
    if not desk.log("node").is_file():
        return found
    for line in desk.log("node").read_text(encoding="utf-8", errors="replace").splitlines():
        if f'"{event}"' not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by SIGKILL
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found
