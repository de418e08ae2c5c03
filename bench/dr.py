#!/usr/bin/env python3
"""Backups and disaster recovery, measured. Prints JSON lines (the last one has them all).

Setup (not timed): the packaged paper desk is copied to a temporary directory with a
``[backup]`` to a directory destination, and its journal written with ``--events``
events of a realistic order flow (``bench/recovery.py``'s, snapshots every tenth).

- ``backup_s`` / ``backup_bytes``: ``bastion backup create`` (online copy, tar, age,
  stored), in a child process at low priority, as the timer runs it;
- ``restore_s``: ``bastion backup restore`` into a new directory (fetch, check, decrypt,
  unpack, verify the whole chain);
- ``drill_rto_s``: ``bastion dr drill`` end to end (restore, recover from the restored
  journal, reconcile with a positions statement equal to the desk's), and its phases;
- ``rpo_s``: journal shipping every ``--ship-interval-s`` in a child process while the
  journal grows by ``--rate`` events/s; at a random moment the writer stops (the loss):
  the seconds between its last event and the last shipped event, worst of ``--losses``;
- ``tick_to_order_p99_us_idle`` / ``_backup`` and ``_ratio``: ``bench/tick_to_order.py``
  alone, then while ``bastion backup create`` of the 1M-event desk runs in a loop.

``--journal postgres``: the same desk journaling to PostgreSQL, on a local server
started with the test kit's ``kit.postgres`` (as ``bench/journal.py`` does; the
password reaches every child through ``PGPASSWORD``): ``backup_s`` dumps the rows,
``restore_s`` loads them into a new database (``--to-url``), ``drill_rto_s`` is the
drill restoring into a database it creates on ``[dr] scratch_url`` (and drops), and
``rpo_s`` ships from the database. The tick-to-order figures are the SQLite run's
(the timed node does not use the desk's journal): left out here.

    python bench/dr.py [--events 1000000] [--ship-interval-s 5] [--journal postgres] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bastion.backup.encryption import new_identity
from bastion.config import PaperConfig, load_config, scaffold_dir
from bastion.journal.sqlite import SqliteJournal
from bastion.logs import configure_logging
from bastion.model import events as ev
from bastion.model.enums import TradingState
from recovery import state_summary, write_journal

BASTION = [sys.executable, "-m", "bastion"]


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def bastion(*args: str | Path, check: bool = True) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([*BASTION, *map(str, args)], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"bastion {args[:2]} failed: {done.stdout}{done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout


@dataclass(frozen=True)
class PgServer:
    """The bench's PostgreSQL: the kit's server, a URL per new database (no password:
    ``PGPASSWORD`` holds it for every child)."""

    server: Any
    password: str

    def new_database(self) -> str:
        return self.url(self.server.create_database())

    def url(self, database: str) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(self.server.dsn(database))
        del params["password"]
        return make_conninfo(**params)  # type: ignore[arg-type]


@contextmanager
def postgres() -> Iterator[PgServer]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from kit.postgres import postgres_server

    with postgres_server() as server:
        os.environ["PGPASSWORD"] = server.password
        try:
            yield PgServer(server, server.password)
        finally:
            del os.environ["PGPASSWORD"]


def make_desk(
    root: Path, events: int, pg: PgServer | None = None
) -> tuple[Path, Path, dict[str, Any]]:
    """The packaged desk with [backup] and [dr]; its journal (in a new database of
    ``pg``'s, given one); the identity file."""
    shutil.copytree(scaffold_dir(), root)
    keys = root.parent / "keys"
    keys.mkdir(mode=0o700)
    recipient = new_identity(keys / "backup.key")
    config = root / "paper.toml"
    # the journal is written by a kernel in this process (as bench/recovery.py does)
    text = config.read_text().replace('isolation = "process"', 'isolation = "inline"')
    scratch = ""
    if pg is not None:
        url = pg.new_database()
        text = text.replace(
            "[journal]\n", f'[journal]\nbackend = "postgres"\nurl = "{url}"\n', 1
        ).replace('path = "journal.sqlite"', 'path = "journal.pg"', 1)
        scratch = f'scratch_url = "{pg.url("postgres")}"\n'
    config.write_text(text)
    with config.open("a") as f:
        f.write(
            f'\n[backup]\nrecipients = ["{recipient}"]\n\n[backup.destination]\nkind = "dir"\n'
            f'path = "{root.parent / "offsite"}"\n\n[dr]\n{scratch}\n[dr.venue_positions]\n'
            'kind = "positions_file"\npath = "statement.json"\n'
        )
    node = load_config(config, PaperConfig)
    expected, _ = write_journal(
        root / node.journal.path,
        events,
        max(1, events // 10),
        node,
        root,
        fractional_avg=False,
        journal=None if pg is None else open_pg(node, root, pg),
    )
    instruments = {i.id: i.to_instrument() for i in node.instruments}
    positions = {
        iid: str(instruments[iid].size(raw)) for iid, raw in expected["net_quantity"].items()
    }
    (root / "statement.json").write_text(json.dumps(positions))
    return config, keys / "backup.key", expected


def open_pg(node: PaperConfig, root: Path, pg: PgServer) -> Any:
    from bastion.journal.postgres import PostgresJournal

    assert node.journal.url is not None
    return PostgresJournal(
        node.journal.url,
        name=node.node.id,
        path=root / node.journal.path,
        password=pg.password,
        durability="group",
    )


def measure_rpo(
    root: Path, interval_s: float, rate: int, losses: int, seed: int, pg: PgServer | None
) -> float:
    """Worst seconds of journal lost over ``losses`` losses while shipping every
    ``interval_s``."""
    config = root / "paper.toml"
    node = load_config(config, PaperConfig)
    path = root / node.journal.path
    opener: Callable[[], Any] = (
        (lambda: SqliteJournal(path, durability="group"))
        if pg is None
        else (lambda: open_pg(node, root, pg))
    )
    rng = random.Random(seed)
    worst = 0.0
    for _ in range(losses):
        shipper = subprocess.Popen(
            [*BASTION, "backup", "ship", str(config), "--every", str(interval_s)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        journal = opener()
        last_ts = 0
        stop_at = time.monotonic() + interval_s * (1 + rng.random() * 2)
        state = [TradingState.ACTIVE, TradingState.REDUCING]
        n = 0
        while time.monotonic() < stop_at:
            last_ts = time.time_ns()
            journal.append(ev.TradingStateChanged(ts_ns=last_ts, state=state[n % 2], reason="rpo"))
            n += 1
            time.sleep(1 / rate)
        journal.close()  # the loss: nothing more is journaled
        shipper.terminate()  # the shipper dies with the site, at once
        shipper.wait()
        shipped = _last_shipped_ts(root, node, pg)
        worst = max(worst, (last_ts - shipped) / 1e9)
    return worst


def _last_shipped_ts(root: Path, node: PaperConfig, pg: PgServer | None) -> int:
    """The time of the last event the destination holds (read from the records)."""
    offsite = root.parent / "offsite"
    records = [json.loads(p.read_text()) for p in offsite.rglob("*.json")]
    last = max(r["last_seq"] for r in records)
    if pg is not None:
        from bastion.journal.pg_reader import PostgresJournalReader

        assert node.journal.url is not None
        with PostgresJournalReader(
            node.journal.url, name=node.node.id, password=pg.password
        ) as reader:
            return int(next(iter(reader.records_after(last - 1)))[1])
    import sqlite3

    db = sqlite3.connect(f"file:{root / node.journal.path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT ts_ns FROM events WHERE seq = ?", (last,)).fetchone()
    finally:
        db.close()
    return int(row[0])


def tick_to_order(quick: bool) -> dict[str, Any]:
    args = [sys.executable, str(Path(__file__).with_name("tick_to_order.py"))]
    if quick:
        args.append("--quick")
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ship-interval-s", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=200, help="events/s while shipping")
    parser.add_argument("--losses", type=int, default=3, help="losses simulated for the RPO")
    parser.add_argument("--rto-target-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--journal", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--dir", type=Path, help="where to work (default: tmp)")
    parser.add_argument("--quick", action="store_true", help="a small, fast run (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.ship_interval_s, args.losses, args.rate = 2_000, 0.5, 1, 100
    configure_logging("warning", "console")
    os.environ.setdefault("BASTION_LOG_LEVEL", "warning")
    result: dict[str, Any] = {"bench": "dr", "journal": args.journal, "events": args.events}
    if args.journal == "postgres":
        with postgres() as pg:
            run(args, result, pg)
    else:
        run(args, result, None)
    result["drill_rto_target_s"] = args.rto_target_s
    emit(result)


def run(args: argparse.Namespace, result: dict[str, Any], pg: PgServer | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bastion-dr-", dir=args.dir) as tmp:
        root = Path(tmp) / "desk"
        config, identity, expected = make_desk(root, args.events, pg)
        del expected
        if pg is None:
            result["journal_bytes"] = sum(p.stat().st_size for p in root.glob("*.sqlite*"))
        seconds, _ = bastion("backup", "create", config, "--no-prune")
        result["backup_s"] = round(seconds, 3)
        blobs = list((Path(tmp) / "offsite").rglob("*.age"))
        result["backup_bytes"] = sum(p.stat().st_size for p in blobs)
        emit({"phase": "backup", **result})
        to_url = () if pg is None else ("--to-url", pg.new_database())
        result["restore_s"], _ = bastion(
            "backup",
            "restore",
            "latest",
            "--from",
            config,
            "--to",
            Path(tmp) / "restored",
            "--identity",
            identity,
            *to_url,
        )
        result["restore_s"] = round(result["restore_s"], 3)
        emit({"phase": "restore", "restore_s": result["restore_s"]})
        report_path = Path(tmp) / "drill.json"
        _, text = bastion(
            "dr",
            "drill",
            config,
            "--identity",
            identity,
            "--scratch",
            Path(tmp) / "drill",
            "--rto-target-s",
            str(args.rto_target_s),
            "--report",
            report_path,
            check=False,
        )
        report = json.loads(report_path.read_text())
        result["drill_rto_s"] = report["rto_s"]
        result["drill_phases_s"] = report["phases_s"]
        result["drill_ok"] = report["ok"]
        result["drill_reconciled"] = report["reconciled"]
        result["drill_rpo_events"] = report["rpo_events"]
        emit({"phase": "drill", "drill_rto_s": report["rto_s"], "report": text})
        result["rpo_s"] = round(
            measure_rpo(root, args.ship_interval_s, args.rate, args.losses, args.seed, pg), 3
        )
        result["ship_interval_s"] = args.ship_interval_s
        emit({"phase": "rpo", "rpo_s": result["rpo_s"]})
        if pg is not None:
            return
        idle = tick_to_order(args.quick)
        stop = threading.Event()

        def backups() -> None:
            while not stop.is_set():
                bastion("backup", "create", config, "--no-prune", check=False)

        loop = threading.Thread(target=backups, name="backup-loop")
        loop.start()
        try:
            busy = tick_to_order(args.quick)
        finally:
            stop.set()
            loop.join()
        result["tick_to_order_p99_us_idle"] = idle["p99_us"]
        result["tick_to_order_p99_us_backup"] = busy["p99_us"]
        result["tick_to_order_p99_ratio"] = round(busy["p99_us"] / idle["p99_us"], 3)


if __name__ == "__main__":
    _ = state_summary  # the journal's writer is shared with bench/recovery.py
    main()
