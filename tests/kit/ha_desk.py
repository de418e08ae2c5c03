"""An HA desk: the venue simulator and two members of one HA group as processes, each
member in a directory of its own (its vault, FIX session store, control socket), both
journaling to one PostgreSQL database, and what the tests read back: the group's
journal, the venue's ledger, the members' control sockets and JSON logs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.errors import BastionError
from bastion.journal._codec import JournalEvent
from bastion.journal.keys import JournalKeys
from bastion.journal.pg_reader import PostgresJournalReader
from bastion.journal.reader import NotAJournalError
from bastion.node.control import request, socket_path
from bastion.vault.keysource import KEY_FILE_ENV
from kit.chaos_harness import ACCOUNT, INSTRUMENT, PASSWORD, STRATEGY_FILE, VENUE_TOML
from kit.fix_desk import node_fix_venue_toml
from kit.net import free_tcp_port, listening
from kit.node_process import START_TIMEOUT_S, STOP_TIMEOUT_S, bastion_cmd, child_env
from kit.pg_journal import split_password
from kit.vaults import key_file, new_vault
from kit.waiting import eventually

NODE_ID = "hadesk"
GROUP = "desk"
CHAIN_KEY = bytes(range(32))

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
seed = 7
every_quotes = {every_quotes}
max_position = 5
max_resting = 4
mode = "{mode}"

[risk]
max_order_quantity = "10"
max_order_notional = "100000"

{fix_venue}
[journal]
backend = "postgres"
url = "{url}"
password = "secret:journal/password"
chain_key = "secret:journal/chain"
path = "j/desk.pg"
snapshot_every_events = 50
snapshot_interval_s = 1.0
durability = "{durability}"

[ha]
group = "{group}"
member = "{member}"
"""


@dataclass(frozen=True)
class HaDesk:
    root: Path
    port: int
    url: str
    password: str

    @property
    def venue_dir(self) -> Path:
        return self.root / "venue"

    @property
    def ledger(self) -> Path:
        return self.venue_dir / "venue" / "ledger.sqlite"

    def member_dir(self, member: str) -> Path:
        return self.root / member

    def config(self, member: str) -> Path:
        return self.member_dir(member) / "node.toml"

    def socket(self, member: str) -> Path:
        return socket_path(self.member_dir(member) / "j" / "desk.pg")

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"


def write_desk(
    root: Path,
    dsn: str,
    *,
    members: tuple[str, ...] = ("a", "b"),
    every_quotes: int = 5,
    extra_toml: str = "",
    secrets: Mapping[str, str] | None = None,
    member_dsns: Mapping[str, str] | None = None,
    durability: str = "group",
) -> HaDesk:
    """The venue's config and each member's (and vault) under ``root``; ``extra_toml``
    is appended to each member's config, ``secrets`` (keyword form: ``notify__ops`` is
    ``notify/ops``) added to each vault; a member of ``member_dsns`` reaches the database
    at its own address (a relay in front of it)."""
    url, password = split_password(dsn)
    desk = HaDesk(root=root, port=free_tcp_port(), url=url, password=password)
    desk.venue_dir.mkdir(parents=True)
    (desk.venue_dir / "venue-sim.toml").write_text(
        VENUE_TOML.format(port=desk.port, account=ACCOUNT, instrument=INSTRUMENT, seed=11),
        encoding="utf-8",
    )
    key_file(root)
    for member in members:
        directory = desk.member_dir(member)
        directory.mkdir()
        new_vault(
            directory / "vault.bastion",
            journal__password=password,
            journal__chain=CHAIN_KEY.hex(),
            **(secrets or {}),
        )
        desk.config(member).write_text(
            NODE_TOML.format(
                node_id=NODE_ID,
                instrument=INSTRUMENT,
                strategy=STRATEGY_FILE,
                every_quotes=every_quotes,
                mode="mixed",
                fix_venue=node_fix_venue_toml(desk.port, heartbeat_s=1, logon_timeout_ms=5000),
                url=split_password((member_dsns or {}).get(member, dsn))[0],
                group=GROUP,
                member=member,
                durability=durability,
            )
            + extra_toml,
            encoding="utf-8",
        )
    return desk


def _env(desk: HaDesk) -> dict[str, str]:
    return {
        **child_env(),
        "BASTION_FIX_PASSWORD": PASSWORD,
        KEY_FILE_ENV: str(desk.root / "vault.key"),
    }


def spawn(desk: HaDesk, cwd: Path, *args: str | Path, log: str) -> subprocess.Popen[bytes]:
    with desk.log(log).open("ab") as stderr:
        return subprocess.Popen(
            bastion_cmd(*args),
            cwd=cwd,
            env=_env(desk),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def run_cli(desk: HaDesk, member: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``bastion ARGS`` run to its end in ``member``'s directory."""
    return subprocess.run(
        bastion_cmd(*args),
        cwd=desk.member_dir(member),
        env=_env(desk),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


@contextmanager
def processes(desk: HaDesk) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The processes the test starts (``start_venue``, ``start_member``), killed if the
    block leaves them running."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def start_venue(desk: HaDesk, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    procs["venue"] = spawn(desk, desk.venue_dir, "venue", "sim", "venue-sim.toml", log="venue")
    eventually(lambda: alive(desk, procs, "venue") and listening(desk.port), START_TIMEOUT_S)


def start_member(desk: HaDesk, procs: dict[str, subprocess.Popen[bytes]], member: str) -> None:
    procs[member] = spawn(desk, desk.member_dir(member), "run", "node.toml", log=member)


def alive(desk: HaDesk, procs: dict[str, subprocess.Popen[bytes]], name: str) -> bool:
    proc = procs[name]
    if proc.poll() is not None:
        tail = desk.log(name).read_text(encoding="utf-8", errors="replace")[-4000:]
        raise AssertionError(f"{name} exited with {proc.returncode}:\n{tail}")
    return True


def ha_status(desk: HaDesk, member: str) -> dict[str, Any]:
    """``member``'s own ``ha_status``; AssertionError until it answers."""
    try:
        answer = request(desk.socket(member), {"cmd": "ha_status"}, timeout_s=5)
    except (OSError, BastionError) as error:
        raise AssertionError(f"{member} not answering yet: {error}") from error
    assert answer.get("ok") is True, answer
    return dict(answer["ha"])


def role(desk: HaDesk, member: str, want: str) -> dict[str, Any]:
    status = ha_status(desk, member)
    assert status["role"] == want, status
    return status


# -- what happened ------------------------------------------------------------------------


def journal_events(desk: HaDesk) -> list[tuple[int, JournalEvent]]:
    try:
        with PostgresJournalReader(desk.url, name=GROUP, password=desk.password) as reader:
            return reader.events_after(0, limit=10_000_000)
    except NotAJournalError:
        return []


def verify_journal(desk: HaDesk) -> Any:
    with PostgresJournalReader(
        desk.url, name=GROUP, password=desk.password, keys=JournalKeys(chain=CHAIN_KEY)
    ) as reader:
        return reader.verify()


def ledger_rows(desk: HaDesk, query: str, *params: object) -> list[tuple[Any, ...]]:
    uri = f"{desk.ledger.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=2.0)) as db:
            return db.execute(query, params).fetchall()
    except sqlite3.Error as error:
        raise AssertionError(f"ledger not readable yet: {error}") from error


def venue_orders(desk: HaDesk) -> list[tuple[str, int]]:
    """(root ClOrdID, accepted at ns) of every order the venue took, in order."""
    return [
        (str(coid), int(ts))
        for coid, ts in ledger_rows(
            desk,
            "SELECT root_cl_ord_id, created_ns FROM orders WHERE account = ? ORDER BY created_ns",
            ACCOUNT,
        )
    ]


def epoch_of(client_order_id: str) -> int:
    """The fencing epoch in ``{node}-{epoch}-{seq}``."""
    return int(client_order_id.split("-")[-2])


def first_order_of(desk: HaDesk, epoch: int) -> int:
    """When the venue took the first order of ``epoch`` (ns); AssertionError if none yet."""
    for coid, ts in venue_orders(desk):
        if epoch_of(coid) == epoch:
            return ts
    raise AssertionError(f"no order of epoch {epoch} at the venue yet")


def venue_fills(desk: HaDesk) -> list[str]:
    return [
        str(row[0])
        for row in ledger_rows(desk, "SELECT exec_id FROM fills WHERE account = ?", ACCOUNT)
    ]


def venue_position(desk: HaDesk) -> str:
    rows = ledger_rows(
        desk, "SELECT net_qty FROM positions WHERE account = ? AND symbol = ?", ACCOUNT, INSTRUMENT
    )
    return str(rows[0][0]) if rows else "0"


def member_logs(desk: HaDesk, member: str, event: str) -> list[dict[str, Any]]:
    """``member``'s JSON log lines named ``event``."""
    found: list[dict[str, Any]] = []
    path = desk.log(member)
    if not path.is_file():
        return found
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if f'"{event}"' not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found
