"""The asyncio FIX drivers over real loopback TCP: acceptor, initiator, reconnect, backoff."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog

from bastion.clock import LiveClock
from bastion.fix.codec import encode
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.fix.timestamps import format_utc_timestamp
from bastion.fix.transport import FixAcceptor, FixInitiator
from kit.fix_pair import (
    ACC,
    INI,
    PASSWORD,
    RecordingApp,
    execution_report,
    new_order,
    parse_all,
    settings,
)
from kit.waiting import until

DEADLINE_S = 5.0
CLOCK = LiveClock()


class Node:
    """One session with its store and recording application."""

    def __init__(self, path: Path, cfg: SessionSettings, app: RecordingApp) -> None:
        self.store = SqliteSessionStore(path, cfg.key, now_ns=time.time_ns())
        self.app = app
        self.session = FixSession(cfg, self.store, app, clock=CLOCK)


@contextmanager
def nodes(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """An initiator node (CLIENT) and an acceptor node (VENUE); stores closed at the end."""
    ini = Node(
        tmp_path / "ini.sqlite",
        settings(INI, ACC, heartbeat_s=30, username="trader", password=PASSWORD),
        RecordingApp(),
    )
    acc = Node(
        tmp_path / "acc.sqlite",
        settings(ACC, INI, heartbeat_s=30),
        RecordingApp(password=PASSWORD),
    )
    try:
        yield ini, acc
    finally:
        ini.store.close()
        acc.store.close()


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 20))  # type: ignore[arg-type]


def test_when_connection_dropped_then_initiator_reconnects_and_resend_delivers(
    tmp_path: Path,
) -> None:
    """After the acceptor drops the line, the initiator reconnects and a resend fills the gap."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            acceptor = FixAcceptor({(ACC, INI): acc.session}, "127.0.0.1", 0, clock=CLOCK)
            port = await acceptor.start()
            initiator = FixInitiator(
                ini.session,
                "127.0.0.1",
                port,
                backoff_initial_s=0.05,
                backoff_max_s=0.2,
                rng=random.Random(1),
                clock=CLOCK,
            )
            task = asyncio.create_task(initiator.run())
            try:
                await until(
                    lambda: ini.session.logged_on and acc.session.logged_on, timeout_s=DEADLINE_S
                )
                ini.session.send(new_order("O1"))
                acc.session.send(execution_report("E1"))
                await until(
                    lambda: len(acc.app.messages) == 1 and len(ini.app.messages) == 1,
                    timeout_s=DEADLINE_S,
                )

                acc.session.disconnect("venue drops the line")
                assert not acc.session.connected
                acc.session.send(execution_report("E2"))  # stored while down
                acc.session.send(execution_report("E3"))
                await until(
                    lambda: initiator.connects == 2 and ini.session.logged_on, timeout_s=DEADLINE_S
                )
                await until(lambda: len(ini.app.messages) == 3, timeout_s=DEADLINE_S)
                assert [m.get(17) for m in ini.app.messages] == ["E1", "E2", "E3"]
                assert [m.get(43) for m in ini.app.messages] == [None, "Y", "Y"]
                assert ini.app.logouts == ["connection closed by counterparty"]
                assert ini.session.counters["resend_requests_sent"] == 1

                ini.session.send(new_order("O2"))
                await until(lambda: len(acc.app.messages) == 2, timeout_s=DEADLINE_S)
                assert [m.get(11) for m in acc.app.messages] == ["O1", "O2"]
                assert acc.app.logons == 2
            finally:
                await initiator.stop(logout_timeout_s=2.0)
                await asyncio.wait_for(task, DEADLINE_S)
                await acceptor.stop()
            assert not ini.session.connected
            assert ini.session.disconnect_reason == "logout confirmed"

    run(main)


def test_when_initiator_down_then_sent_messages_delivered_after_reconnect(
    tmp_path: Path,
) -> None:
    """Messages the initiator sends while it cannot connect reach the acceptor after logon."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            acceptor = FixAcceptor({(ACC, INI): acc.session}, "127.0.0.1", 0, clock=CLOCK)
            port = await acceptor.start()
            await acceptor.stop()  # nobody listens on `port` for now
            initiator = FixInitiator(
                ini.session,
                "127.0.0.1",
                port,
                backoff_initial_s=0.02,
                backoff_max_s=0.05,
                rng=random.Random(2),
                clock=CLOCK,
            )
            ini.session.send(new_order("early-1"))
            ini.session.send(new_order("early-2"))
            task = asyncio.create_task(initiator.run())
            try:
                await until(lambda: initiator.failures >= 2, timeout_s=DEADLINE_S)
                assert initiator.connects == 0
                acceptor = FixAcceptor({(ACC, INI): acc.session}, "127.0.0.1", port, clock=CLOCK)
                await acceptor.start()
                await until(lambda: len(acc.app.messages) == 2, timeout_s=DEADLINE_S)
                assert [m.get(11) for m in acc.app.messages] == ["early-1", "early-2"]
            finally:
                await initiator.stop()
                await asyncio.wait_for(task, DEADLINE_S)
                await acceptor.stop()

    run(main)


async def _exchange(port: int, data: bytes) -> bytes:
    """Connect, write ``data``, return whatever comes back until the peer closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), DEADLINE_S)
    finally:
        writer.close()
        await writer.wait_closed()


def _logon(sender: str, target: str, msg_type: str = "A", *extra: tuple[int, str]) -> bytes:
    return encode(
        "FIX.4.4",
        [
            (35, msg_type),
            (49, sender),
            (56, target),
            (34, "1"),
            (52, format_utc_timestamp(time.time_ns())),
            (98, "0"),
            (108, "30"),
            *extra,
        ],
    )


@pytest.mark.parametrize(
    ("sender", "target", "msg_type"),
    [("STRANGER", ACC, "A"), (INI, "OTHERVENUE", "A"), (INI, ACC, "D")],
    ids=["unknown-sender", "unknown-target", "not-a-logon"],
)
def test_when_first_message_not_a_known_logon_then_connection_refused(
    tmp_path: Path, sender: str, target: str, msg_type: str
) -> None:
    """An unknown session or a first message that is no Logon is closed unanswered, counted."""

    async def main() -> None:
        with nodes(tmp_path) as (_ini, acc):
            acceptor = FixAcceptor({(ACC, INI): acc.session}, "127.0.0.1", 0, clock=CLOCK)
            port = await acceptor.start()
            try:
                answer = await _exchange(port, _logon(sender, target, msg_type))
                assert answer == b""
                await until(lambda: acceptor.refused == 1, timeout_s=DEADLINE_S)
                assert not acc.session.connected
                assert acc.app.logons == 0
            finally:
                await acceptor.stop()

    run(main)


def test_when_session_already_connected_then_second_connection_refused(tmp_path: Path) -> None:
    """A second connection for a session that is connected is refused; the first stays up."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            acceptor = FixAcceptor({(ACC, INI): acc.session}, "127.0.0.1", 0, clock=CLOCK)
            port = await acceptor.start()
            initiator = FixInitiator(
                ini.session,
                "127.0.0.1",
                port,
                backoff_initial_s=0.05,
                rng=random.Random(3),
                clock=CLOCK,
            )
            task = asyncio.create_task(initiator.run())
            try:
                await until(lambda: acc.session.logged_on, timeout_s=DEADLINE_S)
                credentials = ((553, "trader"), (554, PASSWORD))
                answer = await _exchange(port, _logon(INI, ACC, "A", *credentials))
                assert answer == b""
                assert acceptor.refused == 1
                assert acc.session.logged_on and ini.session.logged_on
            finally:
                await initiator.stop()
                await asyncio.wait_for(task, DEADLINE_S)
                await acceptor.stop()

    run(main)


def test_when_logon_refused_over_tcp_then_logout_text_reaches_initiator(
    tmp_path: Path,
) -> None:
    """A wrong password gets a Logout with the reason on the wire, then the close."""

    async def main() -> None:
        with nodes(tmp_path) as (_ini, acc):
            acceptor = FixAcceptor({(ACC, INI): acc.session}, "127.0.0.1", 0, clock=CLOCK)
            port = await acceptor.start()
            fields = [(35, "A"), (49, INI), (56, ACC), (34, "1")]
            fields += [(52, format_utc_timestamp(time.time_ns())), (98, "0"), (108, "30")]
            fields += [(553, "trader"), (554, "wrong")]
            logon = encode("FIX.4.4", fields)
            try:
                (logout,) = parse_all(await _exchange(port, logon))
                assert logout.msg_type == "5"
                assert logout.get(58) == "invalid username or password"
                assert acc.session.counters["logons_refused"] == 1
            finally:
                await acceptor.stop()

    run(main)


def test_when_backoff_computed_then_doubles_capped_with_jitter() -> None:
    """Backoff doubles from the initial delay to the cap, times a seeded jitter in [0.5, 1.5]."""
    initiator = FixInitiator(
        None,  # type: ignore[arg-type]
        "127.0.0.1",
        1,
        backoff_initial_s=0.5,
        backoff_max_s=4.0,
        rng=random.Random(42),
        clock=CLOCK,
    )
    replica = random.Random(42)
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for attempt, base in enumerate(bases, start=1):
        delay = initiator.backoff_s(attempt)
        assert 0.5 * base <= delay <= 1.5 * base
        assert delay == pytest.approx(base * replica.uniform(0.5, 1.5), rel=1e-12)
    many = [initiator.backoff_s(30) for _ in range(200)]
    assert min(many) >= 2.0 and max(many) <= 6.0
    assert max(many) - min(many) > 2.0  # the jitter really spreads


def test_when_session_timer_fails_then_connection_dropped_and_initiator_reconnects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session whose timer task dies would send no heartbeat and never notice a dead
    peer: the connection is dropped instead (logged as an error) and the initiator
    connects again."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            acceptor = FixAcceptor({(ACC, INI): acc.session}, "127.0.0.1", 0, clock=CLOCK)
            port = await acceptor.start()
            initiator = FixInitiator(
                ini.session,
                "127.0.0.1",
                port,
                backoff_initial_s=0.02,
                backoff_max_s=0.05,
                rng=random.Random(3),
                clock=CLOCK,
            )
            task = asyncio.create_task(initiator.run())
            try:
                await until(lambda: ini.session.logged_on, timeout_s=DEADLINE_S)
                original_tick = ini.session.tick
                failures: list[int] = []

                def failing_tick() -> None:
                    if not failures:
                        failures.append(1)
                        raise RuntimeError("injected timer failure")
                    original_tick()

                with structlog.testing.capture_logs() as logs:
                    monkeypatch.setattr(ini.session, "tick", failing_tick)
                    await until(
                        lambda: initiator.connects == 2 and ini.session.logged_on,
                        timeout_s=DEADLINE_S,
                    )
                assert failures == [1]
                (failed,) = [e for e in logs if e["event"] == "fix_timer_failed"]
                assert failed["log_level"] == "error" and "injected" in str(failed["error"])
                assert "session timer failed" in ini.app.logouts[0]
            finally:
                await initiator.stop(logout_timeout_s=2.0)
                await asyncio.wait_for(task, DEADLINE_S)
                await acceptor.stop()

    run(main)


def test_when_started_loop_dies_then_reported_and_started_again_after_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``start``: a connection loop that dies (here the store fails as the Logon is
    stored) is reported with its restart delay and runs again; ``stop`` ends it."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            acceptor = FixAcceptor({(ACC, INI): acc.session}, "127.0.0.1", 0, clock=CLOCK)
            port = await acceptor.start()
            initiator = FixInitiator(
                ini.session,
                "127.0.0.1",
                port,
                backoff_initial_s=0.02,
                backoff_max_s=0.05,
                rng=random.Random(4),
                clock=CLOCK,
            )
            store_sent = ini.store.store_sent
            reported: list[tuple[str, float]] = []

            def failing_store_sent(seq: int, raw: bytes | None) -> None:
                if not reported:
                    raise OSError("injected store failure")
                store_sent(seq, raw)

            monkeypatch.setattr(ini.store, "store_sent", failing_store_sent)
            initiator.start(
                "fix-test", on_failure=lambda error, delay: reported.append((str(error), delay))
            )
            try:
                await until(lambda: ini.session.logged_on, timeout_s=DEADLINE_S)
                assert len(reported) == 1 and reported[0][0] == "injected store failure"
                assert 0.01 <= reported[0][1] <= 0.03  # first backoff: 0.02 s, +-50%
                assert initiator.connects == 2
            finally:
                await initiator.stop(logout_timeout_s=2.0)
                await acceptor.stop()
            assert not ini.session.connected
            assert not [t for t in asyncio.all_tasks() if t.get_name() == "fix-test"]

    run(main)
