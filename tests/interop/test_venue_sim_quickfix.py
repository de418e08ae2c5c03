"""bastion's venue simulator (its FIX acceptor) against a QuickFIX initiator it did not write.

Each test runs ``python -m bastion venue sim CONFIG`` and ``qf_initiator.py`` as child
processes and talks to QuickFIX over its JSON-lines control channel. QuickFIX validates every
message the venue sends against its own FIX44.xml dictionary; a message it refuses is answered
with a Reject, which the tests look for on both sides.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bastion.venue_server.ledger import VenueLedger
from kit.net import free_tcp_port
from kit.quickfix import QfPeer
from kit.waiting import eventually

INITIATOR_SCRIPT = Path(__file__).with_name("qf_initiator.py")
VENUE_COMP_ID = "BASTION-SIM"
ACCOUNT = "qftrader"
ACCOUNT_COMP_ID = "QFTRADER"
USERNAME = "qf-user"
PASSWORD = "qf-venue-pw-5b1e"
PASSWORD_ENV = "BASTION_TEST_QF_VENUE_PASSWORD"
SYMBOL = "XYZ.SIM"
BUY, SELL = "1", "2"
REJECT_LOG_EVENTS = ("account_reject_received", "fix_reject_received")

Status = dict[str, Any]


def write_venue_config(directory: Path, port: int, *, cancel_on_disconnect: bool) -> Path:
    """A venue-sim TOML: one account for QuickFIX, XYZ.SIM with a fast synthetic feed."""
    path = directory / "venue-sim.toml"
    path.write_text(
        f"""\
host = "127.0.0.1"
port = {port}
comp_id = "{VENUE_COMP_ID}"
ledger_path = "venue-ledger.sqlite"
session_store_path = "venue-sessions.sqlite"
cancel_on_disconnect = {"true" if cancel_on_disconnect else "false"}

[[accounts]]
name = "{ACCOUNT}"
comp_id = "{ACCOUNT_COMP_ID}"
username = "{USERNAME}"
password_env = "{PASSWORD_ENV}"

[matching]
name = "FIXSIM"

[[instruments]]
id = "{SYMBOL}"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"
quote_currency = "USD"

[[feeds]]
instrument = "{SYMBOL}"
seed = 7
start_price = "100"
volatility_bps = "2"
spread_ticks = 1
size = "1000000"
interval_ms = 20
"""
    )
    return path


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class VenueSim:
    """A ``python -m bastion venue sim CONFIG`` child process (JSON logs to a stderr file)."""

    def __init__(self, config: Path, port: int, stderr_path: Path) -> None:
        self.config = config
        self.port = port
        self.stderr_path = stderr_path
        self.ledger_path = config.parent / "venue-ledger.sqlite"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the simulator and wait until its port accepts connections."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("the venue simulator is already running")
        env = {**os.environ, PASSWORD_ENV: PASSWORD, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        args = [sys.executable, "-m", "bastion", "venue", "sim", str(self.config)]
        with self.stderr_path.open("ab") as stderr:
            self._proc = subprocess.Popen(
                [*args, "--log-format", "json"],
                cwd=self.config.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        proc = self._proc

        def listening() -> bool:
            assert proc.poll() is None, f"venue sim exited rc={proc.returncode}{self.tail()}"
            return port_accepts(self.port)

        eventually(listening, timeout_s=timeout_s, interval_s=0.05)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then wait for the exit; returns the exit code."""
        proc, self._proc = self._proc, None
        assert proc is not None, "the venue simulator is not running"
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(
                f"venue sim ignored SIGTERM for {timeout_s} s{self.tail()}"
            ) from None

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def log_events(self) -> list[dict[str, Any]]:
        """The simulator's structured log lines so far (non-JSON lines are skipped)."""
        events = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def events(self, *names: str) -> list[dict[str, Any]]:
        return [e for e in self.log_events() if e.get("event") in names]

    def tail(self, max_chars: int = 4000) -> str:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return f"\n--- venue sim stderr (tail) ---\n{text[-max_chars:]}" if text else ""


class QfInitiator(QfPeer):
    """qf_initiator.py as a child process; start/stop and the control channel are QfPeer's.

    The password reaches the child through an environment variable, never its command line.
    """

    script = INITIATOR_SCRIPT
    what = "initiator"

    def ok(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Run a command that must succeed."""
        reply = self.command(cmd, **fields)
        assert reply.get("ok") is True, f"{cmd} failed: {reply}{self._stderr_tail()}"
        return reply

    def status(self) -> Status:
        return self.ok("status")

    def wait_logon(self, min_logons: int = 1, timeout_s: float = 8.0) -> None:
        """Wait until QuickFIX is logged on, with at least ``min_logons`` logons so far."""
        self.ok("wait_logon", timeout_s=timeout_s, min_logons=min_logons)


StartVenue = Callable[..., VenueSim]
StartInitiator = Callable[..., QfInitiator]


@pytest.fixture
def start_venue(tmp_path: Path) -> Iterator[StartVenue]:
    """Starts the venue simulator on a free port; kills it at teardown."""
    sims: list[VenueSim] = []

    def start(*, cancel_on_disconnect: bool = False) -> VenueSim:
        port = free_tcp_port()
        config = write_venue_config(tmp_path, port, cancel_on_disconnect=cancel_on_disconnect)
        sim = VenueSim(config, port, tmp_path / "venue-sim.stderr")
        sims.append(sim)
        sim.start()
        return sim

    yield start
    for sim in sims:
        sim.kill()


@pytest.fixture
def start_initiator(tmp_path: Path) -> Iterator[StartInitiator]:
    """Starts a QuickFIX initiator for the test account; kills it at teardown."""
    initiators: list[QfInitiator] = []

    def start(venue: VenueSim, *, password: str = PASSWORD) -> QfInitiator:
        initiator = QfInitiator(
            port=venue.port,
            store_dir=tmp_path / "qf-store",
            stderr_path=tmp_path / "qf-initiator.stderr",
            sender_comp_id=ACCOUNT_COMP_ID,
            target_comp_id=VENUE_COMP_ID,
            username=USERNAME,
            password=password,
            heartbeat_s=1,
        )
        initiators.append(initiator)
        initiator.start()
        return initiator

    yield start
    for initiator in initiators:
        initiator.kill()


def exec_reports(status: Status, **tags: str) -> list[dict[str, str]]:
    """QuickFIX's ExecutionReports whose tags equal ``tags`` (``t11="A"`` means 11=A)."""
    want = {name.removeprefix("t"): value for name, value in tags.items()}
    return [r for r in status["exec_reports"] if all(r.get(t) == v for t, v in want.items())]


def wait_exec_reports(qf: QfInitiator, n: int, **tags: str) -> list[dict[str, str]]:
    """Poll until QuickFIX holds at least ``n`` ExecutionReports matching ``tags``."""

    def arrived() -> list[dict[str, str]]:
        found = exec_reports(qf.status(), **tags)
        assert len(found) >= n, f"{len(found)} of {n} reports with {tags}"
        return found

    found: list[dict[str, str]] = eventually(arrived, timeout_s=5.0)
    return found


def messages(status: Status, direction: str, msg_type: str) -> list[dict[str, Any]]:
    """Messages QuickFIX ``received`` or ``sent`` of one MsgType, in order."""
    return [m for m in status[direction] if m["msg_type"] == msg_type]


def assert_no_rejects(status: Status, venue: VenueSim) -> None:
    """Neither side refused a message of the other: no Reject/BusinessReject either way."""
    for direction in ("sent", "received"):
        for msg_type in ("3", "j"):
            assert messages(status, direction, msg_type) == [], f"QuickFIX {direction} {msg_type}"
    assert venue.events(*REJECT_LOG_EVENTS, "fix_reject_sent", "fix_business_reject_sent") == []


def assert_no_sequence_reset(status: Status) -> None:
    """No Logon with ResetSeqNumFlag and no SequenceReset-Reset, in either direction."""
    for direction in ("sent", "received"):
        logons = messages(status, direction, "A")
        assert all(m["tags"].get("141") != "Y" for m in logons), (direction, logons)
        resets = [m for m in messages(status, direction, "4") if m["tags"].get("123") != "Y"]
        assert resets == [], (direction, resets)


def assert_secrets_hidden(qf: QfInitiator, venue: VenueSim, status: Status, *secrets: str) -> None:
    """No password in QuickFIX's status, file store or log, nor in the venue's log.

    Call it after ``qf.stop()``: QuickFIX stores each Logon it sends, and the initiator masks
    the stored copy only once the venue has answered.
    """
    texts = {
        "QuickFIX status": json.dumps(status),
        "QuickFIX log": qf.stderr_path.read_text(errors="replace"),
        "venue log": venue.stderr_path.read_text(errors="replace"),
    }
    for path in sorted(qf.store_dir.iterdir()):
        texts[str(path)] = path.read_bytes().decode(errors="replace")
    leaks = [name for name, text in texts.items() if any(secret in text for secret in secrets)]
    assert leaks == [], f"a password leaked into {leaks}"


def new_order(qf: QfInitiator, cl_ord_id: str, side: str, qty: str, price: str, tif: str) -> None:
    qf.ok(
        "new_order",
        cl_ord_id=cl_ord_id,
        symbol=SYMBOL,
        side=side,
        qty=qty,
        ord_type="2",
        price=price,
        tif=tif,
    )


def test_order_flow_when_quickfix_trades_then_ledger_holds_exactly_its_fills(
    start_venue: StartVenue, start_initiator: StartInitiator
) -> None:
    """IOC fill, resting New, replace, cancel, empty mass status; the ledger matches QuickFIX."""
    venue = start_venue()
    qf = start_initiator(venue)
    qf.wait_logon()

    new_order(qf, "IOC-1", BUY, "10", "1000.00", tif="3")
    ioc = wait_exec_reports(qf, 2, t11="IOC-1")
    assert [r["150"] for r in ioc] == ["0", "F"]
    trade = ioc[1]
    assert (trade["39"], trade["32"], trade["14"], trade["151"]) == ("2", "10", "10", "0")
    assert Decimal(50) < Decimal(trade["31"]) < Decimal(150), "filled far from the market"
    assert trade["17"] != ioc[0]["17"]

    new_order(qf, "REST-1", BUY, "5", "1.00", tif="1")
    (accepted,) = wait_exec_reports(qf, 1, t11="REST-1")
    assert (accepted["150"], accepted["39"], accepted["151"]) == ("0", "0", "5")

    qf.ok(
        "replace",
        cl_ord_id="REST-1-R",
        orig_cl_ord_id="REST-1",
        symbol=SYMBOL,
        side=BUY,
        qty="7",
        price="2.00",
    )
    (replaced,) = wait_exec_reports(qf, 1, t11="REST-1-R")
    assert (replaced["150"], replaced["39"], replaced["41"]) == ("5", "0", "REST-1")
    assert (Decimal(replaced["38"]), Decimal(replaced["44"])) == (Decimal(7), Decimal(2))
    assert replaced["37"] == accepted["37"]

    qf.ok("cancel", cl_ord_id="REST-1-C", orig_cl_ord_id="REST-1-R", symbol=SYMBOL, side=BUY)
    (canceled,) = wait_exec_reports(qf, 1, t11="REST-1-C")
    assert (canceled["150"], canceled["39"], canceled["41"]) == ("4", "4", "REST-1-R")

    qf.ok("mass_status", req_id="MS-1")
    (none_open,) = wait_exec_reports(qf, 1, t584="MS-1")
    assert (none_open["150"], none_open["911"], none_open["912"]) == ("I", "0", "Y")

    status = qf.status()
    assert_no_rejects(status, venue)
    assert messages(status, "received", "9") == []
    assert venue.stop() == 0, venue.tail()
    with VenueLedger(venue.ledger_path) as ledger:
        fills = ledger.fills(ACCOUNT)
        assert [f.exec_id for f in fills] == [trade["17"]]
        assert (fills[0].qty, fills[0].px) == (Decimal(trade["32"]), Decimal(trade["31"]))
        assert ledger.open_orders(ACCOUNT) == []
        assert sorted(o.status for o in ledger.orders(ACCOUNT)) == ["2", "4"]
        assert ledger.verify() == []


def test_market_data_when_quickfix_subscribes_then_snapshot_and_increments_pass_its_dictionary(
    start_venue: StartVenue, start_initiator: StartInitiator
) -> None:
    """V (263=1) → a W snapshot then X increments for XYZ.SIM, none refused by QuickFIX."""
    venue = start_venue()
    qf = start_initiator(venue)
    qf.wait_logon()
    qf.ok("subscribe", req_id="MD-1", symbol=SYMBOL)

    def market_data() -> Status:
        status = qf.status()
        assert messages(status, "received", "W"), "no snapshot yet"
        assert len(messages(status, "received", "X")) >= 5, "fewer than 5 increments yet"
        return status

    status = eventually(market_data, timeout_s=5.0)
    (snapshot,) = messages(status, "received", "W")
    increments = messages(status, "received", "X")
    assert snapshot["seq"] < increments[0]["seq"]
    assert snapshot["tags"] == {"262": "MD-1", "55": SYMBOL, "268": "2"}
    bid, ask = snapshot["entries"]
    assert (bid["269"], ask["269"]) == ("0", "1")
    assert 0 < Decimal(bid["270"]) < Decimal(ask["270"])
    assert Decimal(bid["271"]) == Decimal(ask["271"]) == 1_000_000
    for increment in increments:
        assert increment["tags"] == {"262": "MD-1", "268": "2"}
        assert [e["269"] for e in increment["entries"]] == ["0", "1"]
        assert {e["55"] for e in increment["entries"]} == {SYMBOL}
        assert {e["279"] for e in increment["entries"]} == {"1"}
    assert messages(status, "received", "Y") == []
    assert_no_rejects(status, venue)


def test_logon_when_password_is_wrong_then_quickfix_gets_logout_and_never_logs_on(
    start_venue: StartVenue, start_initiator: StartInitiator
) -> None:
    """Logout "invalid username or password" on every attempt; no logon; no password leaks."""
    venue = start_venue()
    wrong = "not-the-venue-password-91c"
    qf = start_initiator(venue, password=wrong)

    def refused_twice() -> Status:
        status = qf.status()
        assert len(status["logout_texts"]) >= 2, status["logout_texts"]
        return status

    status = eventually(refused_twice, timeout_s=6.0)
    assert set(status["logout_texts"]) == {"invalid username or password"}
    assert status["logons"] == 0 and not status["logged_on"]
    assert messages(status, "received", "A") == []
    assert len(venue.events("fix_logon_refused")) >= 2
    assert venue.events("account_logged_on") == []
    assert qf.stop() == 0
    assert_secrets_hidden(qf, venue, status, wrong, PASSWORD)


def test_venue_stop_when_quickfix_is_logged_on_then_it_exits_0_and_logs_no_error(
    start_venue: StartVenue, start_initiator: StartInitiator
) -> None:
    """SIGTERM with a session up: Logout to QuickFIX, exit 0, no error or traceback logged."""
    venue = start_venue()
    qf = start_initiator(venue)
    qf.wait_logon()
    assert venue.stop() == 0, venue.tail()
    eventually(lambda: "venue shutting down" in qf.status()["logout_texts"], timeout_s=5.0)
    assert [e["exit_code"] for e in venue.events("venue_sim_stopped")] == [0]
    assert [e for e in venue.log_events() if e.get("level") in ("error", "critical")] == []
    text = venue.stderr_path.read_text()
    assert "[ERROR]" not in text and "Traceback" not in text, venue.tail()


def test_sequence_numbers_when_venue_restarts_then_quickfix_resumes_without_reset(
    start_venue: StartVenue, start_initiator: StartInitiator
) -> None:
    """SIGTERM the venue, start it again: QuickFIX reconnects alone; the order is still open."""
    venue = start_venue()
    qf = start_initiator(venue)
    qf.wait_logon()
    new_order(qf, "REST-1", BUY, "5", "1.00", tif="1")
    (accepted,) = wait_exec_reports(qf, 1, t11="REST-1")
    assert accepted["150"] == "0"

    assert venue.stop() == 0, venue.tail()
    eventually(lambda: not qf.status()["logged_on"], timeout_s=5.0)
    venue.start()
    qf.wait_logon(min_logons=2)

    qf.ok("mass_status", req_id="MS-1")
    (still_open,) = wait_exec_reports(qf, 1, t584="MS-1")
    assert (still_open["11"], still_open["37"]) == ("REST-1", accepted["37"])
    assert (still_open["150"], still_open["39"], still_open["151"]) == ("I", "0", "5")
    assert (still_open["911"], still_open["912"]) == ("1", "Y")

    status = qf.status()
    assert status["logons"] == 2
    assert "venue shutting down" in status["logout_texts"]
    assert_no_sequence_reset(status)
    received_logons = messages(status, "received", "A")
    sent_logons = messages(status, "sent", "A")
    assert received_logons[0]["seq"] == sent_logons[0]["seq"] == 1
    assert received_logons[-1]["seq"] > received_logons[0]["seq"] + 1
    assert sent_logons[-1]["seq"] > sent_logons[0]["seq"] + 1
    # QuickFIX's Logout answer (and a Logon into the closing listener) never reached the old
    # venue: the new one may see a gap, which QuickFIX must have filled.
    assert len(venue.events("fix_gap_filled")) == len(venue.events("fix_gap"))
    assert_no_rejects(status, venue)
    assert venue.events("fix_session_error") == []


def test_initiator_restart_when_quickfix_is_killed_then_venue_accepts_its_persisted_seqnums(
    start_venue: StartVenue, start_initiator: StartInitiator
) -> None:
    """SIGKILL QuickFIX; restarted on its file store, it logs on without reset or refusal."""
    venue = start_venue()
    qf = start_initiator(venue)
    qf.wait_logon()
    new_order(qf, "ASK-1", SELL, "3", "1000.00", tif="1")
    (accepted,) = wait_exec_reports(qf, 1, t11="ASK-1")
    assert accepted["150"] == "0"
    before = qf.status()

    qf.kill()
    eventually(lambda: venue.events("account_logged_out"), timeout_s=5.0)
    qf = start_initiator(venue)
    qf.wait_logon()

    status = qf.status()
    (sent_logon,) = messages(status, "sent", "A")
    (received_logon,) = messages(status, "received", "A")
    assert sent_logon["seq"] >= before["next_sender_seq"] > 1
    assert received_logon["seq"] >= before["next_target_seq"] > 1
    assert status["logout_texts"] == []
    assert_no_sequence_reset(status)

    qf.ok("mass_status", req_id="MS-1")
    (still_open,) = wait_exec_reports(qf, 1, t584="MS-1")
    assert (still_open["11"], still_open["150"], still_open["39"]) == ("ASK-1", "I", "0")
    status = qf.status()
    assert status["logons"] == 1 and status["logged_on"]
    assert_no_rejects(status, venue)
    assert venue.events("fix_session_error") == []
    assert qf.stop() == 0
    assert_secrets_hidden(qf, venue, status, PASSWORD)


def test_cancel_on_disconnect_when_quickfix_is_killed_then_report_arrives_by_resend(
    start_venue: StartVenue, start_initiator: StartInitiator
) -> None:
    """The venue cancels while QuickFIX is down; QuickFIX's ResendRequest brings the report."""
    venue = start_venue(cancel_on_disconnect=True)
    qf = start_initiator(venue)
    qf.wait_logon()
    new_order(qf, "ASK-1", SELL, "3", "1000.00", tif="1")
    (accepted,) = wait_exec_reports(qf, 1, t11="ASK-1")
    before = qf.status()

    qf.kill()
    eventually(lambda: venue.events("cancel_on_disconnect"), timeout_s=5.0)
    qf = start_initiator(venue)
    qf.wait_logon()

    (canceled,) = wait_exec_reports(qf, 1, t11="ASK-1", t150="4")
    assert (canceled["39"], canceled["37"], canceled["43"]) == ("4", accepted["37"], "Y")
    status = qf.status()
    (resend_request,) = messages(status, "sent", "2")
    (resent,) = [m for m in messages(status, "received", "8") if m["tags"]["150"] == "4"]
    # the gap starts where QuickFIX stopped reading (a Heartbeat may precede the report)
    assert resent["seq"] >= int(resend_request["tags"]["7"]) >= before["next_target_seq"]
    assert resent["poss_dup"]

    qf.ok("mass_status", req_id="MS-1")
    (none_open,) = wait_exec_reports(qf, 1, t584="MS-1")
    assert (none_open["911"], none_open["912"]) == ("0", "Y")
    status = qf.status()
    assert status["logout_texts"] == []
    assert_no_sequence_reset(status)
    assert_no_rejects(status, venue)
    assert venue.events("fix_session_error") == []
