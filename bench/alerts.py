#!/usr/bin/env python3
"""How long an alert takes: from the moment its condition becomes true to the
notification arriving at a local receiver. Prints one JSON line.

Three conditions, each set off ``--cycles`` times (and cleared, its resolution awaited,
before the next):

- ``venue``: a FIX paper node (``bastion run``, a process) trading on the venue
  simulator (``bastion venue sim``, a process) through a TCP relay in this process;
  the relay cuts the session (both ends see it drop), the node journals
  ``VenueSessionLost`` and venue-disconnected fires; the node reconnects by itself
  (the resolution). Timed from the cut.
- ``quote_gap``: in process, the node's kernel and alert engine on an asyncio loop with
  a sampler every 250 ms (``monitoring.sample_interval_ms``'s default) reading the
  quote ages; quotes every 20 ms stop, and stale-market-data
  (``quote_stale_s = 0.5``) fires. Timed from the moment the last quote became older
  than ``quote_stale_s``. Each gap starts at a random moment of the sampler's interval.
- ``loss``: same engine and sampler; the node's PnL falls by more than pnl-drop's
  ``drop`` (at a random moment of the sampler's interval). Timed from the fall.

Every alert goes to two routes through apprise: a webhook (``json://``) to an aiohttp
receiver and an e-mail (``mailto://``, plain SMTP) to an aiosmtpd server, both on
loopback. ``alert_p50_ms`` / ``alert_p99_ms``: the webhook's, over all alerts;
``smtp_p50_ms`` / ``smtp_p99_ms``: the e-mail's; ``<condition>_p50_ms`` / ``_p99_ms``:
the webhook's per condition. The sampler's interval is in the quote-gap and loss
figures (a condition waits up to one interval to be seen); the venue one has none (an
event).

    python bench/alerts.py [--quick] [--cycles 34]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from bastion.bus import MessageBus
from bastion.clock import LiveClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.logs import configure_logging
from bastion.model.data import QuoteTick
from bastion.monitor.alerts.config import AlertRouteConfig
from bastion.monitor.alerts.engine import AlertEngine
from bastion.monitor.alerts.rules import alert_rules
from bastion.monitor.notify import Notifier
from bastion.monitor.sample import SampleBuilder
from bastion.node.control import request, socket_path
from bastion.node.kernel import Kernel
from bastion.vault.refs import Secret
from bastion.vault.vault import KdfParams, Vault

SAMPLE_INTERVAL_S = 0.25
QUOTE_STALE_S = 0.5
QUOTE_INTERVAL_S = 0.02
PNL_DROP = 100.0
WAIT_S = 30.0
PASSWORD = "bench-fix-password"
PASSPHRASE = "bench-vault-passphrase"
ROUTES = """
[[alert_routes]]
name = "http"
urls = ["secret:notify/http"]

[[alert_routes]]
name = "mail"
urls = ["secret:notify/mail"]
min_interval_s = 0
"""


# -- receivers ------------------------------------------------------------------------------


class Arrivals:
    """What a receiver got: ``(time.monotonic(), title, body)``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[float, str, str]] = []

    def add(self, title: str, body: str) -> None:
        with self.lock:
            self.items.append((time.monotonic(), title, body))

    def about(self, alert: str, status: str) -> list[tuple[float, str, str]]:
        with self.lock:
            return [i for i in self.items if f"] {alert} {status} on " in i[1]]


class HttpReceiver(Arrivals):
    def __init__(self) -> None:
        super().__init__()
        self.port = _free_port()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)

    async def _handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.add(payload.get("title", ""), payload.get("message", ""))
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"


class SmtpReceiver(Arrivals):
    def __init__(self) -> None:
        super().__init__()
        self.port = _free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email
        import email.policy

        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.add(str(message["subject"]), "")
        return "250 OK"

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?mode=insecure&from=node@bench.example&to=ops@bench.example"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Relay:
    """TCP between the node and the venue simulator; ``cut`` drops the session."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


def _wait_for(what: str, predicate: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.002)


async def _until(what: str, predicate: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


# -- in process: quote gap and loss ---------------------------------------------------------


async def in_process(
    cycles: int, http: HttpReceiver, mail: SmtpReceiver, base_dir: Path
) -> dict[str, list[tuple[float, float]]]:
    """(webhook, e-mail) latencies in seconds for the quote-gap and loss conditions."""
    clock = LiveClock()
    config = BacktestConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="unused.csv", instrument="XYZ.SIM")],
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=base_dir, clock=clock, epoch=1)
    routes = [
        AlertRouteConfig(name="http", urls=["secret:notify/http"]),
        AlertRouteConfig(name="mail", urls=["secret:notify/mail"], min_interval_s=0.0),
    ]
    notifier = Notifier(
        routes,
        {"http": [Secret("notify/http", http.url)], "mail": [Secret("notify/mail", mail.url)]},
    )
    rules = [
        r
        for r in alert_rules([], quote_stale_s=QUOTE_STALE_S, daily_loss=Decimal(2 * PNL_DROP))
        if r.name in ("stale-market-data", "pnl-drop")
    ]
    engine = AlertEngine(
        bus=MessageBus(),
        clock=clock,
        rules=rules,
        routes=routes,
        notifier=notifier,
        node="bench",
        id_prefix="1.",
    )
    notifier.start()
    state: dict[str, Any] = {"feeding": True, "pnl": 0.0, "last_quote": 0.0}

    async def feed() -> None:
        price = 10_000
        while True:
            if state["feeding"]:
                price += 1 if price < 10_050 else -50
                kernel.on_quote(QuoteTick("XYZ.SIM", clock.timestamp_ns(), price, price + 1, 5, 5))
                state["last_quote"] = time.monotonic()
            await asyncio.sleep(QUOTE_INTERVAL_S)

    async def sampler() -> None:
        while True:
            now_ns = clock.timestamp_ns()
            builder = SampleBuilder()
            for iid, quote in kernel.last_quotes.items():
                builder.set(
                    "bastion_quote_age_seconds", (now_ns - quote.ts_ns) / 1e9, instrument=iid
                )
            builder.set("bastion_pnl", state["pnl"])
            engine.on_sample(builder.build(now_ns, clock.monotonic_s()))
            engine.tick()
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    rng = random.Random(7)
    tasks = [asyncio.create_task(feed()), asyncio.create_task(sampler())]
    results: dict[str, list[tuple[float, float]]] = {"quote_gap": [], "loss": []}
    try:
        await asyncio.sleep(1.0)  # the delivery threads load apprise
        for _ in range(cycles):
            before = len(http.about("stale-market-data", "resolved"))
            await asyncio.sleep(rng.uniform(0, SAMPLE_INTERVAL_S))  # any phase of the sampler
            state["feeding"] = False
            await asyncio.sleep(0.001)
            became_true = state["last_quote"] + QUOTE_STALE_S
            results["quote_gap"].append(
                await _arrived("stale-market-data", became_true, http, mail)
            )
            state["feeding"] = True
            await _until(
                "stale-market-data resolved",
                lambda b=before: len(http.about("stale-market-data", "resolved")) > b,
            )
        for _ in range(cycles):
            before = len(http.about("pnl-drop", "resolved"))
            # the window has seen 0; then any phase of the sampler
            await asyncio.sleep(SAMPLE_INTERVAL_S * (1 + rng.uniform(0, 1)))
            state["pnl"] = -1.5 * PNL_DROP
            became_true = time.monotonic()
            results["loss"].append(await _arrived("pnl-drop", became_true, http, mail))
            state["pnl"] = 0.0
            await _until(
                "pnl-drop resolved", lambda b=before: len(http.about("pnl-drop", "resolved")) > b
            )
    finally:
        for task in tasks:
            task.cancel()
        notifier.close()
    return results


async def _arrived(
    alert: str, became_true: float, http: HttpReceiver, mail: SmtpReceiver
) -> tuple[float, float]:
    def new(receiver: Arrivals) -> float | None:
        times = [at for at, _, _ in receiver.about(alert, "firing") if at > became_true]
        return times[0] if times else None

    web_at = await _until(f"{alert} at the webhook", lambda: new(http))
    mail_at = await _until(f"{alert} by e-mail", lambda: new(mail))
    return web_at - became_true, mail_at - became_true


# -- processes: the venue session -----------------------------------------------------------

VENUE_TOML = """
host = "127.0.0.1"
port = {port}
comp_id = "SIM"
ledger_path = "venue/ledger.sqlite"
session_store_path = "venue/sessions.sqlite"

[[accounts]]
name = "acct"
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
seed = 5
size = "1000"
interval_ms = 20
"""

NODE_TOML = """
strategies = []

[node]
id = "bench"
log_format = "json"
log_level = "warning"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[fix_venue]
name = "FIXSIM"
port = {port}
sender_comp_id = "NODE"
target_comp_id = "SIM"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"
store_path = "fix/session.sqlite"
reconnect_initial_ms = 20
reconnect_max_ms = 100

[journal]
path = "journal.sqlite"

[monitoring]
listen = "127.0.0.1:0"
{routes}
"""


def venue_sessions(
    cycles: int, http: HttpReceiver, mail: SmtpReceiver, root: Path
) -> list[tuple[float, float]]:
    """(webhook, e-mail) latencies in seconds of venue-disconnected, from the cut."""
    venue_port = _free_port()
    (root / "venue.toml").write_text(VENUE_TOML.format(port=venue_port))
    relay = Relay(venue_port)
    (root / "node.toml").write_text(NODE_TOML.format(port=relay.port, routes=ROUTES))
    vault = Vault.create(
        root / "vault.bastion",
        PASSPHRASE,
        clock=LiveClock(),
        kdf=KdfParams(time_cost=1, memory_kib=64, parallelism=1),
    )
    vault.set("notify/http", http.url)
    vault.set("notify/mail", mail.url)
    key = root / "vault.key"
    key.write_text(PASSPHRASE)
    key.chmod(0o600)
    env = {
        **os.environ,
        "BASTION_FIX_PASSWORD": PASSWORD,
        "BASTION_VAULT_KEY_FILE": str(key),
        "PYTHONUNBUFFERED": "1",
    }
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(*args: str, log: str) -> subprocess.Popen[bytes]:
        with (root / log).open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bastion", *args],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        procs.append(proc)
        return proc

    control = socket_path(root / "journal.sqlite")

    def reconciled() -> bool:
        try:
            status = request(control, {"cmd": "status"}, timeout_s=5)
        except Exception:
            return False
        venue = status.get("venues", {}).get("FIXSIM", {})
        return bool(venue.get("connected")) and not status.get("unavailable_instruments")

    latencies = []
    try:
        spawn("venue", "sim", "venue.toml", log="venue.log")
        _wait_for("the venue simulator", lambda: _listening(venue_port))
        node = spawn("run", "node.toml", log="node.log")
        _wait_for("the node's logon", lambda: node.poll() is None and reconciled(), 60)
        time.sleep(1.0)  # the delivery threads load apprise
        for _ in range(cycles):
            before = len(http.about("venue-disconnected", "resolved"))
            cut_at = time.monotonic()
            relay.cut()

            def new(receiver: Arrivals, after: float = cut_at) -> float | None:
                times = [at for at, _, _ in receiver.about("venue-disconnected", "firing")]
                later = [t for t in times if t > after]
                return later[0] if later else None

            web_at = _wait_for("venue-disconnected at the webhook", lambda: new(http))
            mail_at = _wait_for("venue-disconnected by e-mail", lambda: new(mail))
            latencies.append((web_at - cut_at, mail_at - cut_at))
            _wait_for(
                "the resolution",
                lambda b=before: len(http.about("venue-disconnected", "resolved")) > b,
            )
            _wait_for("the venue reconciled", reconciled)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        relay.listener.close()
    return latencies


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- report ---------------------------------------------------------------------------------


def _ms(samples_s: list[float], q: float) -> float:
    ordered = sorted(samples_s)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 cycles of each (a smoke test)")
    parser.add_argument("--cycles", type=int, default=34, help="alerts per condition (34)")
    args = parser.parse_args()
    cycles = 3 if args.quick else args.cycles
    configure_logging("error", "json")
    http, mail = HttpReceiver(), SmtpReceiver()
    with tempfile.TemporaryDirectory(prefix="bastion-alerts-") as tmp:
        root = Path(tmp)
        by_kind = asyncio.run(in_process(cycles, http, mail, root))
        by_kind["venue"] = venue_sessions(cycles, http, mail, root)
    mail.controller.stop()
    web = [w for kind in by_kind.values() for w, _ in kind]
    smtp = [m for kind in by_kind.values() for _, m in kind]
    result: dict[str, Any] = {
        "alerts": len(web),
        "alert_p50_ms": _ms(web, 0.5),
        "alert_p99_ms": _ms(web, 0.99),
        "smtp_p50_ms": _ms(smtp, 0.5),
        "smtp_p99_ms": _ms(smtp, 0.99),
        "sample_interval_ms": round(SAMPLE_INTERVAL_S * 1000),
    }
    for kind, pairs in by_kind.items():
        result[f"{kind}_p50_ms"] = _ms([w for w, _ in pairs], 0.5)
        result[f"{kind}_p99_ms"] = _ms([w for w, _ in pairs], 0.99)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
