"""NewOrderSingle -> ExecutionReport(fill) round trip over FIX 4.4 against the venue simulator.

Starts ``bastion venue sim`` as a separate process on loopback, logs on with
bastion's own FIX session layer and measures:

- latency: one marketable IOC order at a time; the time from handing the
  NewOrderSingle to the session until its Trade ExecutionReport is parsed
  (p50_us, p99_us over ``--orders``);
- throughput: orders pipelined with up to ``--window`` in flight for
  ``--seconds``; orders_per_s counts orders whose fill came back;
- the CPU time each process spends per order in the latency run
  (sim_cpu_us_per_order, client_cpu_us_per_order: both ends, all threads).

``--tls`` runs the same over mutual TLS (a fresh local CA from ``bastion.certs``; the
venue requires the client's certificate for the account), to compare with a plain run
on the same machine: alternate the two. ``--encrypt-stores``: the simulator's ledger
and session stores and the client's session store encrypted (SQLCipher), the
simulator's keys read from a vault as ``bastion venue sim`` reads them.

``--no-validation`` turns the FIX 4.4 data-dictionary check off at both ends, to compare
with a default run (alternate the two); ``validation_us_per_msg`` is the check's cost of
one NewOrderSingle or fill as received.

Prints one JSON line. Usage: python bench/fix_roundtrip.py [--orders 5000] [--tls]
[--encrypt-stores] [--no-validation]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bastion.certs import create_certs
from bastion.clock import LiveClock
from bastion.fix.codec import FixMessage
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.fix.tls import ClientTls, TlsClientConfig
from bastion.fix.transport import FixInitiator
from bastion.fix.validation import ValidationConfig
from bastion.logs import configure_logging

PASSWORD_ENV = "BASTION_BENCH_FIX_PASSWORD"

_CONFIG = """\
host = "127.0.0.1"
port = {port}
comp_id = "SIM"
ledger_path = "ledger.sqlite"
session_store_path = "sessions.sqlite"

[[accounts]]
name = "bench"
comp_id = "BENCH"
username = "bench"
password_env = "{env}"
{account_tls}
[matching]
name = "FIXSIM"

[[instruments]]
id = "XYZ"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[feeds]]
instrument = "XYZ"
seed = 7
start_price = "100"
volatility_bps = "1"
size = "1000000000"
interval_ms = 20
{tls}{validation}"""

_SERVER_TLS = """
[tls]
cert_file = "tls/venue.pem"
key_file = "tls/venue.key"
client_ca_file = "tls/ca.pem"
"""


class _Client:
    def __init__(self) -> None:
        self.sent_ns: dict[str, int] = {}
        self.latencies_ns: list[int] = []
        self.filled = 0
        self.waiters: dict[str, asyncio.Future[None]] = {}
        self.logged_on = asyncio.Event()
        self.last_fill: FixMessage | None = None

    def on_logon(self, session: FixSession) -> None:
        self.logged_on.set()

    def on_logout(self, session: FixSession, reason: str) -> None:
        self.logged_on.clear()

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        return None

    def on_message(self, session: FixSession, message: FixMessage) -> None:
        if message.msg_type != "8" or message.get(150) not in ("F", "8", "4"):
            return
        now = time.perf_counter_ns()
        cl_ord_id = message.get(11) or ""
        sent = self.sent_ns.pop(cl_ord_id, None)
        if sent is None:
            return
        if message.get(150) == "F":
            self.last_fill = message
            self.filled += 1
            self.latencies_ns.append(now - sent)
        waiter = self.waiters.pop(cl_ord_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _order(n: int) -> FixMessage:
    return FixMessage.of(
        "D",
        (11, f"B{n}"),
        (55, "XYZ"),
        (54, "1" if n % 2 else "2"),
        (60, "20260101-00:00:00.000"),
        (38, "1"),
        (40, "1"),
        (59, "3"),
    )


def _validation_us(messages: list[list[tuple[int, str]]], rounds: int = 20_000) -> float:
    """The data-dictionary check's mean cost of a NewOrderSingle and a fill, as a received
    message (header included), in microseconds."""
    validator = ValidationConfig().validator()
    assert validator is not None
    start = time.perf_counter_ns()
    for _ in range(rounds):
        for fields in messages:
            validator.check(fields)
    return round((time.perf_counter_ns() - start) / rounds / len(messages) / 1000, 2)


def _client_tls(workdir: Path) -> ClientTls:
    """Mutual TLS: certificates for the venue and for the client ``bench``."""
    create_certs(workdir / "tls", clients=("bench",))
    config = TlsClientConfig(
        ca_file="tls/ca.pem", client_cert="tls/bench.pem", client_key="tls/bench.key"
    )
    return config.client(workdir, "tls")


_ENCRYPTED = """\
ledger_encryption_key = "secret:venue/ledger"
store_encryption_key = "secret:venue/store"
"""


def _vault(workdir: Path) -> tuple[Path, bytes]:
    """A vault with the simulator's keys (cheap Argon2: the unlock is not timed here), its
    key file, and a key for the client's store."""
    from bastion.clock import LiveClock
    from bastion.vault.vault import KdfParams, Vault

    key_path = workdir / "vault.key"
    key_path.write_text("bench-only-passphrase\n")
    key_path.chmod(0o600)
    vault = Vault.create(
        workdir / "vault.bastion",
        "bench-only-passphrase",
        clock=LiveClock(),
        kdf=KdfParams(time_cost=1, memory_kib=64, parallelism=1),
    )
    for name in ("venue/ledger", "venue/store"):
        vault.ensure_key(name)
    return key_path, os.urandom(32)


async def _run(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    from bastion.vault.keysource import KEY_FILE_ENV

    port = _free_port()
    tls = _client_tls(workdir) if args.tls else None
    config = _CONFIG.format(
        port=port,
        env=PASSWORD_ENV,
        account_tls='client_cert_cn = "bench"\n' if args.tls else "",
        tls=_SERVER_TLS if args.tls else "",
        validation="" if args.validation else "\n[validation]\nenabled = false\n",
    )
    env = dict(os.environ, **{PASSWORD_ENV: "bench-only-password"})
    client_key = None
    if args.encrypt_stores:
        key_path, client_key = _vault(workdir)
        config = _ENCRYPTED + config
        env[KEY_FILE_ENV] = str(key_path)
    (workdir / "venue.toml").write_text(config)
    launcher = ["-m", "cProfile", "-o", args.profile_sim] if args.profile_sim else []
    sim = subprocess.Popen(
        [
            sys.executable,
            *launcher,
            "-m",
            "bastion",
            "venue",
            "sim",
            str(workdir / "venue.toml"),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "sim.log", "wb"),  # noqa: SIM115 - lives as long as the process
    )
    try:
        settings = SessionSettings(
            sender_comp_id="BENCH",
            target_comp_id="SIM",
            heartbeat_s=30,
            username="bench",
            password="bench-only-password",
            validation=ValidationConfig(enabled=args.validation),
        )
        store = SqliteSessionStore(
            workdir / "client.sqlite",
            settings.key,
            now_ns=time.time_ns(),
            encryption_key=client_key,
        )
        client = _Client()
        clock = LiveClock()
        session = FixSession(settings, store, client, clock=clock)
        initiator = FixInitiator(
            session,
            "127.0.0.1",
            port,
            backoff_initial_s=0.05,
            backoff_max_s=0.2,
            tls=tls,
            clock=clock,
        )
        task = asyncio.create_task(initiator.run())
        await asyncio.wait_for(client.logged_on.wait(), 20)
        await asyncio.sleep(0.3)  # the first quotes reach the book
        loop = asyncio.get_running_loop()
        n = 0
        # warm-up
        for _ in range(args.warmup):
            n += 1
            fut = loop.create_future()
            client.waiters[f"B{n}"] = fut
            client.sent_ns[f"B{n}"] = time.perf_counter_ns()
            session.send(_order(n))
            await asyncio.wait_for(fut, 5)
        client.latencies_ns.clear()
        sim_proc, me = psutil.Process(sim.pid), psutil.Process()
        sim_cpu0, my_cpu0 = _cpu_s(sim_proc), _cpu_s(me)
        for _ in range(args.orders):
            n += 1
            fut = loop.create_future()
            client.waiters[f"B{n}"] = fut
            client.sent_ns[f"B{n}"] = time.perf_counter_ns()
            session.send(_order(n))
            await asyncio.wait_for(fut, 5)
        latencies = sorted(client.latencies_ns)
        sim_cpu_us = (_cpu_s(sim_proc) - sim_cpu0) / args.orders * 1e6
        client_cpu_us = (_cpu_s(me) - my_cpu0) / args.orders * 1e6
        # throughput: keep `window` orders in flight
        filled_before = client.filled
        in_flight: set[asyncio.Future[None]] = set()
        t0 = time.perf_counter()
        deadline = t0 + args.seconds
        while time.perf_counter() < deadline:
            while len(in_flight) < args.window:
                n += 1
                fut = loop.create_future()
                client.waiters[f"B{n}"] = fut
                client.sent_ns[f"B{n}"] = time.perf_counter_ns()
                session.send(_order(n))
                in_flight.add(fut)
            _done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait_for(asyncio.gather(*in_flight), 10)
        elapsed = time.perf_counter() - t0
        orders_per_s = (client.filled - filled_before) / elapsed
        assert client.last_fill is not None
        order = [(35, "D"), *client.last_fill.fields[1:5], *_order(1).fields[1:]]
        validation_us = _validation_us([order, client.last_fill.fields])
        await initiator.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(10)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000, 1)

    return {
        "bench": "fix_roundtrip",
        "orders": len(latencies),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "max_us": round(latencies[-1] / 1000, 1),
        "orders_per_s": round(orders_per_s),
        "sim_cpu_us_per_order": round(sim_cpu_us),
        "client_cpu_us_per_order": round(client_cpu_us),
        "window": args.window,
        "throughput_seconds": args.seconds,
        "sessions_stored": "sqlite",
        "tls": args.tls,
        "encrypted_stores": args.encrypt_stores,
        "validation": args.validation,
        "validation_us_per_msg": validation_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5000, help="orders in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput run length")
    parser.add_argument("--window", type=int, default=32, help="orders in flight (throughput)")
    parser.add_argument(
        "--profile-sim", metavar="FILE", help="run the simulator under cProfile, stats to FILE"
    )
    parser.add_argument("--tls", action="store_true", help="over mutual TLS (default: plain)")
    parser.add_argument(
        "--encrypt-stores",
        action="store_true",
        help="the simulator's ledger and session stores and the client's store encrypted",
    )
    parser.add_argument(
        "--no-validation",
        dest="validation",
        action="store_false",
        help="no data-dictionary validation at either end (to compare with the default)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short run (300 orders, 1 s): a smoke test"
    )
    args = parser.parse_args()
    args.warmup = 200
    if args.quick:
        args.orders, args.seconds, args.warmup = 300, 1.0, 50
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(prefix="bastion-fix-bench-") as tmp:
        result = asyncio.run(_run(args, Path(tmp)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
