#!/usr/bin/env python3
"""The web console's costs: a kill from its API to the venue, and its live updates on a
node's tick-to-order latency. Prints one JSON line per part.

``kill`` (``kill_p50_ms``, ``kill_p99_ms``, ``runs``): a desk of real processes, as an
operator runs one. ``bastion venue sim`` (the FIX venue simulator, its ledger in
SQLite); a ``bastion run`` paper node trading with it over FIX, whose strategy keeps
``--orders`` limit orders resting far from the touch, ``[access]`` operators from the
store beside its vault and this account in ``[access] consoles``; and ``bastion
console``, made by ``bastion console init`` and served over TLS. A risk officer signs
in with password and TOTP and steps up once (``step_up_s`` is raised to cover the
runs). Each run, over HTTPS with one kept-alive connection:

- ``POST /api/nodes/{node}/kill`` (no flatten), and at the same time the venue's ledger
  is read every millisecond (a read-only SQLite connection: the simulator commits an
  order's state before it sends the report, so the ledger is the venue's own word):
  ``kill_*_ms`` is from the request leaving this process to the ledger first showing
  none of the account's orders open; ``reply_*_ms`` to the API's answer (the node's
  answer, after its journal commit); ``node_kill_p50_ms``: the node's own time from
  its halt to that commit (the answer's ``committed_ms``);
- ``POST /api/nodes/{node}/resume``, then wait until the ledger shows the ``--orders``
  orders open again and the node (its ``view``, asked on its control socket, where
  this account reads as the read-only console) holds them all ``ACCEPTED``.

The node's one operator mapped to a local account (a node needs one) is mapped to
another uid than this one, so this account reads as a console and nothing more, as a
console running under its own account would.

``streaming`` (``tick_p99_us_alone``, ``tick_p99_us_with_clients``, ``worse_pct``,
``clients``): ``bench/tick_to_order.py --control SOCKET`` (the in-process node serving
its control socket, this account a console) run ``--stream-runs`` times alone and as
many times, interleaved, while a ``bastion console`` process polls its ``view`` every
500 ms and a separate process holds ``--clients`` live-update streams
(``GET /api/events``, one signed-in viewer's session) and reads every update. Alone
means no console process and no client at all; each run with clients starts its own
console (a viewer of its own signs in: a TOTP code is good once). The figures are the
medians of the runs' ``p99_us``; ``worse_pct`` compares them. ``views_served_*``: the
requests the node answered (none alone); ``view_p50_us`` / ``view_max_us``: the time
one took on the node's loop (guard and ``view``), when quotes wait;
``updates_per_client_min``: the fewest updates a stream read in a run;
``console_cpu_pct`` / ``clients_cpu_pct``: the CPU the console process and the
clients' process used during the runs with clients (median; % of one core).

    python bench/console.py [--part kill|streaming|both] [--runs 30] [--orders 20]
        [--stream-runs 5] [--quotes 1000000] [--clients 50] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Final

import httpx

from bastion.certs import create_server_cert
from bastion.clock import LiveClock
from bastion.console.sessions import COOKIE
from bastion.node.control import request
from bastion.security.store import UserStore
from bastion.security.totp import Enrolment, code_at, confirm, step_at
from bastion.vault.files import write_private
from bastion.vault.keysource import KEY_FILE_ENV
from bastion.vault.vault import KdfParams, Vault

BENCH: Final = Path(__file__).resolve().parent
NODE: Final = "desk-1"
ACCOUNT: Final = "acct"
PASSWORD: Final = "console-bench-password"
FIX_PASSWORD: Final = "console-bench-fix-password"
PASSPHRASE: Final = "console bench vault passphrase"
FAST_KDF: Final = KdfParams(time_cost=1, memory_kib=64, parallelism=1)
"""The vault's key derivation at its cheapest: the node unlocks it at start (a bench
vault, never a desk's)."""
STOP_TIMEOUT_S: Final = 15.0

STRATEGY: Final = '''
from bastion.model.enums import OrderSide
from bastion.strategy import QuoteTick, Strategy


class Rester(Strategy):
    """Keeps ``resting`` limit orders ``away_ticks`` and more from the touch, both sides;
    tops them up at most every ``retry_quotes`` quotes (after a kill: once resumed)."""

    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.inst = self.instrument(self.iid)
        self.resting = int(self.params["resting"])
        self.away = int(self.params["away_ticks"])
        self.retry = int(self.params["retry_quotes"])
        self.n = 0
        self.next_try = 0
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1
        if self.n < self.next_try:
            return
        missing = self.resting - len(self.open_orders(self.iid))
        if missing <= 0:
            return
        self.next_try = self.n + self.retry
        tick, lot = self.inst.tick_raw, self.inst.lot_raw
        for i in range(missing):
            if i % 2:
                self.submit(OrderSide.BUY, self.iid, lot, quote.bid - (self.away + i) * tick)
            else:
                self.submit(OrderSide.SELL, self.iid, lot, quote.ask + (self.away + i) * tick)
'''

VENUE_TOML: Final = """
host = "127.0.0.1"
port = {port}
comp_id = "SIM"
ledger_path = "venue/ledger.sqlite"
session_store_path = "venue/sessions.sqlite"

[[accounts]]
name = "{account}"
comp_id = "NODE"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"

[matching]
name = "FIXSIM"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[feeds]]
instrument = "XYZ.SIM"
seed = 7
size = "1000"
interval_ms = 20
"""

NODE_TOML: Final = """
[node]
id = "{node}"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "rester"
path = "strategies/rester.py"
class = "Rester"
[strategies.params]
instrument = "XYZ.SIM"
resting = {orders}
away_ticks = 1000
retry_quotes = 10

[risk]
max_order_quantity = "10"
max_order_notional = "100000"

[fix_venue]
name = "FIXSIM"
port = {port}
sender_comp_id = "NODE"
target_comp_id = "SIM"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"
store_path = "fix/session.sqlite"

[journal]
path = "j/node.sqlite"

[vault]
path = "vault.bastion"

[access]
consoles = [{uid}]
"""

# The live-update clients, in their own process: the session cookie on stdin (never on
# a command line), "ready" once every stream has had its first update, then on the
# next line of stdin the updates each read since then.
CLIENTS: Final = """
import asyncio, json, ssl, sys
import httpx

url, cert, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cookie = sys.stdin.readline().strip()


async def stream(client, counts, i):
    async with client.stream("GET", "/api/events", headers={"cookie": cookie}) as answer:
        if answer.status_code != 200:
            raise SystemExit(f"stream {i}: HTTP {answer.status_code}")
        async for line in answer.aiter_lines():
            if line.startswith("event: node"):
                counts[i] += 1


async def main():
    verify = ssl.create_default_context(cafile=cert)
    timeout = httpx.Timeout(10, read=None)
    limits = httpx.Limits(max_connections=n + 1)
    http = httpx.AsyncClient(base_url=url, verify=verify, timeout=timeout, limits=limits)
    async with http as client:
        counts = [0] * n
        tasks = [asyncio.create_task(stream(client, counts, i)) for i in range(n)]
        while min(counts) == 0:
            for task in tasks:
                if task.done():
                    task.result()
                    raise SystemExit("a stream ended")
            await asyncio.sleep(0.01)
        print("ready", flush=True)
        base = list(counts)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        open_streams = sum(1 for task in tasks if not task.done())
        updates = [c - b for c, b in zip(counts, base)]
        print(json.dumps({"updates": updates, "open": open_streams}), flush=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


asyncio.run(main())
"""


# -- processes, waits, operators ---------------------------------------------------------
def _env(key_file: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BASTION_FIX_PASSWORD": FIX_PASSWORD}
    if key_file is not None:
        env[KEY_FILE_ENV] = str(key_file)
    return env


@contextlib.contextmanager
def _bastion(
    *args: str | Path, cwd: Path, log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """``bastion ARGS`` as a child process (stderr to ``log``), stopped (SIGTERM, then
    SIGKILL) when the block ends."""
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bastion", *(str(a) for a in args)],
            cwd=cwd,
            env=env,
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
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


def _alive(proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise SystemExit(f"{proc.args!r} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Operator:
    """A store operator and their authenticator: each code is of a step not used yet."""

    def __init__(self, users: UserStore, name: str, role: str, *, uid: int | None = None) -> None:
        self.name = name
        enrolment = Enrolment.new(name)
        now = time.time_ns()
        # confirmed with the code of the step before this one: the sign-in and the
        # step-up that follow have a fresh step each without waiting for the clock
        self._last = step_at(now) - 1
        confirmed = confirm(enrolment, code_at(enrolment.seed, self._last), now)
        assert confirmed is not None
        self.seed = enrolment.seed
        users.add(name, PASSWORD, roles=(role,), os_uid=uid, totp=confirmed)

    def code(self) -> str:
        self._last = max(step_at(time.time_ns()), self._last + 1)
        return code_at(self.seed, self._last)


def _sign_in(client: httpx.Client | httpx.AsyncClient, who: _Operator) -> Any:
    body = {"name": who.name, "password": PASSWORD, "totp": who.code()}
    return client.post("/api/login", json=body)


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)


# -- part kill ---------------------------------------------------------------------------
class _Ledger:
    """The venue's ledger, read-only: how many of the account's orders are open."""

    def __init__(self, path: Path) -> None:
        # used from one thread at a time: the loop's, or a waiting thread's
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    def open_orders(self) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM orders WHERE account = ? AND status IN ('0', '1')", (ACCOUNT,)
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()


def _desk(root: Path, orders: int) -> tuple[Path, Path, Path, _Operator]:
    """The venue and node configs, the strategy, the vault with the node's operators
    and its key file: (venue config, node config, key file, the risk officer)."""
    port = _free_port()
    (root / "strategies").mkdir()
    (root / "strategies" / "rester.py").write_text(STRATEGY)
    venue = root / "venue-sim.toml"
    venue.write_text(VENUE_TOML.format(port=port, account=ACCOUNT))
    node = root / "node.toml"
    node.write_text(NODE_TOML.format(node=NODE, orders=orders, port=port, uid=os.geteuid()))
    clock = LiveClock()
    vault = Vault.create(root / "vault.bastion", PASSPHRASE, clock=clock, kdf=FAST_KDF)
    users = UserStore.for_vault(vault, clock=clock, create_key=True)
    _Operator(users, "desk", "admin", uid=os.geteuid() + 1)  # a node needs one mapped
    officer = _Operator(users, "rita", "risk_officer")
    key_file = root / "vault.key"
    write_private(key_file, PASSPHRASE.encode())
    return venue, node, key_file, officer


def _node_holds(sock: Path, orders: int) -> bool:
    """Whether the node's view shows ``orders`` orders, all acknowledged by the venue."""
    answer = request(sock, {"cmd": "view"})
    held = answer.get("view", {}).get("orders", [])
    return len(held) == orders and all(o["status"] == "ACCEPTED" for o in held)


async def _timed(answer: Awaitable[httpx.Response]) -> tuple[httpx.Response, int]:
    """The answer, and when it came (``time.perf_counter_ns``)."""
    response = await answer
    return response, time.perf_counter_ns()


async def _kill_runs(
    base_url: str, cert: Path, officer: _Operator, ledger: _Ledger, sock: Path, args: Any
) -> dict[str, Any]:
    kill_ms: list[float] = []
    reply_ms: list[float] = []
    node_ms: list[float] = []
    perf = time.perf_counter_ns
    why = {"why": "console bench"}
    async with httpx.AsyncClient(base_url=base_url, verify=str(cert), timeout=30) as client:
        signed_in = await _sign_in(client, officer)
        if signed_in.status_code != 200:
            raise SystemExit(f"sign-in refused: {signed_in.status_code} {signed_in.text}")
        client.headers["x-csrf-token"] = signed_in.json()["csrf"]
        stepped = await client.post("/api/step-up", json={"totp": officer.code()})
        if stepped.status_code != 200:
            raise SystemExit(f"step-up refused: {stepped.status_code} {stepped.text}")
        for run in range(args.runs):
            await asyncio.to_thread(
                _until,
                lambda: ledger.open_orders() == args.orders and _node_holds(sock, args.orders),
                30,
                f"{args.orders} orders resting (run {run})",
            )
            sent = perf()
            post = asyncio.create_task(_timed(client.post(f"/api/nodes/{NODE}/kill", json=why)))
            deadline = time.monotonic() + 10
            while ledger.open_orders():
                if time.monotonic() > deadline:
                    raise SystemExit(f"run {run}: orders still open at the venue after 10 s")
                await asyncio.sleep(0.001)
            canceled = perf()
            killed, replied = await post
            if killed.status_code != 200 or killed.json().get("cancels_sent") != args.orders:
                raise SystemExit(f"run {run}: kill answered {killed.status_code} {killed.text}")
            kill_ms.append((canceled - sent) / 1e6)
            node_ms.append(float(killed.json()["committed_ms"]))
            reply_ms.append((replied - sent) / 1e6)
            resumed = await client.post(f"/api/nodes/{NODE}/resume", json={"why": "bench run"})
            if resumed.status_code != 200 or resumed.json().get("state") != "ACTIVE":
                raise SystemExit(f"run {run}: resume answered {resumed.status_code} {resumed.text}")
    return {
        "bench": "console",
        "part": "kill",
        "runs": len(kill_ms),
        "orders": args.orders,
        "kill_p50_ms": _pct(kill_ms, 0.50),
        "kill_p99_ms": _pct(kill_ms, 0.99),
        "kill_max_ms": _pct(kill_ms, 1.0),
        "reply_p50_ms": _pct(reply_ms, 0.50),
        "reply_p99_ms": _pct(reply_ms, 0.99),
        "node_kill_p50_ms": _pct(node_ms, 0.50),
    }


def _part_kill(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    venue_cfg, node_cfg, key_file, officer = _desk(root, args.orders)
    env = _env(key_file)
    venue_port = int(venue_cfg.read_text().split("port = ")[1].split()[0])
    with contextlib.ExitStack() as stack:
        venue_log = root / "venue.log"
        venue = stack.enter_context(
            _bastion("venue", "sim", venue_cfg, cwd=root, log=venue_log, env=env)
        )
        _until(lambda: _alive(venue, venue_log) and _listening(venue_port), 30, "the venue")
        node_log = root / "node.log"
        node = stack.enter_context(_bastion("run", node_cfg, cwd=root, log=node_log, env=env))
        ledger = _Ledger(
            _until(lambda: _alive(node, node_log) and _ledger_file(root), 60, "a ledger")
        )
        stack.callback(ledger.close)
        console_dir = root / "console"
        init = subprocess.run(
            [sys.executable, "-m", "bastion", "console", "init", console_dir, "--config", node_cfg],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode != 0:
            raise SystemExit(f"bastion console init: {init.stderr}")
        port = _free_port()
        config = console_dir / "console.toml"
        text = config.read_text().replace("port = 8443", f"port = {port}")
        config.write_text(text.replace("step_up_s = 120", "step_up_s = 3600"))
        console_log = root / "console.log"
        console = stack.enter_context(
            _bastion("console", config, cwd=root, log=console_log, env=env)
        )
        _until(lambda: _alive(console, console_log) and _listening(port), 60, "the console")
        sock = root / "j" / "node.sqlite.sock"
        return asyncio.run(
            _kill_runs(
                f"https://127.0.0.1:{port}",
                console_dir / "tls" / "console.pem",
                officer,
                ledger,
                sock,
                args,
            )
        )
    raise AssertionError("unreachable")


def _ledger_file(root: Path) -> Path | None:
    path = root / "venue" / "ledger.sqlite"
    return path if path.exists() else None


# -- part streaming ----------------------------------------------------------------------
def _tick_to_order(args: argparse.Namespace, sock: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "tick_to_order.py"),
            "--quotes",
            str(args.quotes),
            "--control",
            str(sock),
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    for leftover in sock.parent.glob(sock.name.removesuffix(".sock") + "*"):
        leftover.unlink()  # the next run's journal is a fresh one at the same place
    if done.returncode != 0:
        raise SystemExit(f"tick_to_order.py: {done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextlib.contextmanager
def _streaming_console(
    root: Path, config: Path, port: int, viewer: _Operator, clients: int
) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[str]]]:
    """A console process and a process holding ``clients`` live-update streams, all
    reading; yields both (the clients' stdin: a line to stop)."""
    log = root / "console.log"
    with _bastion("console", config, cwd=root, log=log, env=_env()) as console:
        _until(lambda: _alive(console, log) and _listening(port), 60, "the console")
        cert = root / "console.pem"
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=str(cert)) as client:
            signed_in = _sign_in(client, viewer)
            if signed_in.status_code != 200:
                raise SystemExit(f"sign-in refused: {signed_in.status_code} {signed_in.text}")
            cookie = f"{COOKIE}={client.cookies[COOKIE]}"
        streams = subprocess.Popen(
            [sys.executable, "-c", CLIENTS, f"https://127.0.0.1:{port}", str(cert), str(clients)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert streams.stdin is not None and streams.stdout is not None
            streams.stdin.write(cookie + "\n")
            streams.stdin.flush()
            if streams.stdout.readline().strip() != "ready":
                raise SystemExit(
                    f"the live-update clients did not start:\n{log.read_text()[-2000:]}"
                )
            yield console, streams
        finally:
            if streams.poll() is None:
                streams.kill()
            streams.wait()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median_of(results: list[dict[str, Any]], key: str) -> float | None:
    """The median of ``key`` over the runs that have it (None: none has)."""
    values = [r[key] for r in results if key in r]
    return round(statistics.median(values), 1) if values else None


def _part_streaming(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    sock = root / "n" / "j.sqlite.sock"
    sock.parent.mkdir(mode=0o700)
    key = os.urandom(32)
    write_private(root / "users.key", (key.hex() + "\n").encode())
    users = UserStore(root / "users.bastion", key, clock=LiveClock())
    viewers = [_Operator(users, f"viewer-{n}", "viewer") for n in range(args.stream_runs)]
    create_server_cert(root / "console.pem", root / "console.key")
    port = _free_port()
    config = root / "console.toml"
    config.write_text(
        f'users = "users.bastion"\nusers_key = "users.key"\nmax_event_clients = {args.clients}\n'
        f"max_event_clients_per_operator = {args.clients}\n"
        f'[listen]\nport = {port}\n[tls]\ncert = "console.pem"\nkey = "console.key"\n'
        f'[[nodes]]\nname = "t2o"\nsocket = "{sock}"\n'
    )
    alone: list[dict[str, Any]] = []
    with_clients: list[dict[str, Any]] = []
    updates: list[int] = []
    console_cpu: list[float] = []
    clients_cpu: list[float] = []
    for viewer in viewers:
        alone.append(_tick_to_order(args, sock))
        with _streaming_console(root, config, port, viewer, args.clients) as (console, streams):
            started, cpu = time.monotonic(), (_cpu_s(console.pid), _cpu_s(streams.pid))
            with_clients.append(_tick_to_order(args, sock))
            wall = time.monotonic() - started
            console_cpu.append((_cpu_s(console.pid) - cpu[0]) / wall * 100)
            clients_cpu.append((_cpu_s(streams.pid) - cpu[1]) / wall * 100)
            assert streams.stdin is not None and streams.stdout is not None
            streams.stdin.write("stop\n")
            streams.stdin.flush()
            read = json.loads(streams.stdout.readline())
        if read["open"] != args.clients:
            raise SystemExit(f"{args.clients - read['open']} live-update streams ended early")
        updates.extend(read["updates"])
    p99_alone = _median_of(alone, "p99_us")
    p99_with = _median_of(with_clients, "p99_us")
    assert p99_alone is not None and p99_with is not None
    return {
        "bench": "console",
        "part": "streaming",
        "clients": args.clients,
        "runs": len(alone),
        "quotes": args.quotes,
        "tick_p99_us_alone": p99_alone,
        "tick_p99_us_with_clients": p99_with,
        "worse_pct": round((p99_with - p99_alone) / p99_alone * 100, 1),
        "tick_p50_us_alone": _median_of(alone, "p50_us"),
        "tick_p50_us_with_clients": _median_of(with_clients, "p50_us"),
        "p99_us_alone_runs": [r["p99_us"] for r in alone],
        "p99_us_with_clients_runs": [r["p99_us"] for r in with_clients],
        "views_served_alone": sum(r["control_requests"] for r in alone),
        "views_served_with_clients": sum(r["control_requests"] for r in with_clients),
        "view_p50_us": _median_of(with_clients, "control_p50_us"),
        "view_max_us": max((r.get("control_max_us", 0.0) for r in with_clients), default=0.0),
        "updates_per_client_min": min(updates),
        "console_cpu_pct": round(statistics.median(console_cpu), 1),
        "clients_cpu_pct": round(statistics.median(clients_cpu), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("kill", "streaming", "both"), default="both")
    parser.add_argument("--runs", type=int, default=30, help="kill: kills timed")
    parser.add_argument("--orders", type=int, default=20, help="kill: resting at each kill")
    parser.add_argument("--stream-runs", type=int, default=5, help="streaming: runs of each")
    parser.add_argument("--quotes", type=int, default=1_000_000, help="streaming: per run")
    parser.add_argument("--clients", type=int, default=50, help="streaming: live-update streams")
    parser.add_argument("--quick", action="store_true", help="a short run (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.orders, args.stream_runs, args.quotes = 3, 4, 1, 600_000
    parts = ("kill", "streaming") if args.part == "both" else (args.part,)
    for part in parts:
        # a short path: a Unix socket's path holds at most 107 bytes
        with tempfile.TemporaryDirectory(prefix="bastion-console-bench-", dir="/tmp") as tmp:
            run = _part_kill if part == "kill" else _part_streaming
            print(json.dumps(run(args, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
