"""The FIX acceptor's admission over real loopback sockets: bad Logons leave the session
untouched, connection caps, the per-address lockout, the logon timeout, the allowlist."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bastion.clock import LiveClock
from bastion.fix.admission import AcceptorLimits, AccessRule, AddressGuard
from bastion.fix.codec import encode
from bastion.fix.timestamps import format_utc_timestamp
from kit.fix_pair import ACC, INI, new_order, parse_all
from kit.fix_tcp import DEADLINE_S, acceptor, exchange, initiator, logon, nodes, run
from kit.waiting import until


class ShiftedClock(LiveClock):
    """Live time, with monotonic time the test can move forward."""

    def __init__(self) -> None:
        super().__init__()
        self.shift_s = 0.0

    def monotonic_s(self) -> float:
        return super().monotonic_s() + self.shift_s


def _bad_logons(expected: int) -> list[bytes]:
    """Logons a hostile peer might send, each at the sequence number the venue expects."""
    stamp = format_utc_timestamp(time.time_ns())
    header = [(35, "A"), (49, INI), (56, ACC), (34, str(expected)), (52, stamp)]
    return [
        logon(seq=expected, password="guess"),
        encode("FIX.4.4", [*header, (98, "0"), (108, "30"), (553, "trader"), (554, "")]),
        encode("FIX.4.4", [*header[:4], (52, "20000101-00:00:00"), (98, "0"), (108, "30")]),
        encode("FIX.4.4", [*header, (98, "0"), (108, "0"), (553, "trader"), (554, "x")]),
        encode("FIX.4.4", [*header, (98, "0"), (108, "30")]),  # no credentials at all
    ]


def test_when_3000_bad_logons_then_real_account_logs_on_with_sequence_numbers_unchanged(
    tmp_path: Path,
) -> None:
    """Wrong, malformed and credential-less Logons use no sequence number and store
    nothing; afterwards the real node logs on and continues its session."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            limits = AcceptorLimits(
                max_logon_failures=1_000_000,
                max_unauthenticated=64,
                max_unauthenticated_per_address=64,
            )
            server = acceptor(acc, limits=limits)
            port = await server.start()
            client = initiator(ini.session, port)
            task = asyncio.create_task(client.run())
            try:
                await until(lambda: acc.session.logged_on, timeout_s=DEADLINE_S)
                ini.session.send(new_order("O1"))
                await until(lambda: len(acc.app.messages) == 1, timeout_s=DEADLINE_S)
                await client.stop()
                await task
                await until(lambda: not acc.session.connected, timeout_s=DEADLINE_S)
                seqs = (acc.store.next_target_seq, acc.store.next_sender_seq)
                stored = acc.store.sent_messages(1, 1_000_000)

                bad = _bad_logons(acc.store.next_target_seq)
                answers: list[bytes] = []
                gate = asyncio.Semaphore(32)

                async def attack(n: int) -> None:
                    async with gate:
                        answers.append(await exchange(port, bad[n % len(bad)]))

                await asyncio.gather(*(attack(n) for n in range(3000)))
                assert (acc.store.next_target_seq, acc.store.next_sender_seq) == seqs
                assert acc.store.sent_messages(1, 1_000_000) == stored
                assert acc.session.counters["logons_refused"] == 3000
                assert server.counters["logon_failures"] == 3000
                assert all(m.msg_type == "5" for a in answers for m in parse_all(a))
                assert acc.app.logons == 1

                again = initiator(ini.session, port)
                task = asyncio.create_task(again.run())
                await until(lambda: acc.session.logged_on, timeout_s=DEADLINE_S)
                ini.session.send(new_order("O2"))
                await until(lambda: len(acc.app.messages) == 2, timeout_s=DEADLINE_S)
                assert acc.session.counters["fatal_errors"] == 0
                await again.stop()
                await task
            finally:
                await server.stop()

    run(main, timeout_s=120)


def test_when_unauthenticated_cap_reached_then_next_connection_closed_unread(
    tmp_path: Path,
) -> None:
    """With two connections waiting to log on, a third is closed at once, counted."""

    async def main() -> None:
        with nodes(tmp_path) as (_ini, acc):
            server = acceptor(acc, limits=AcceptorLimits(max_unauthenticated=2))
            port = await server.start()
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            try:
                await until(lambda: len(server._connections) == 2, timeout_s=DEADLINE_S)
                assert await exchange(port, logon()) == b""
                assert server.counters["over_capacity"] == 1
                assert not acc.session.connected and len(server._connections) == 2
            finally:
                for _, writer in idle:
                    writer.close()
                await server.stop()

    run(main)


def test_when_connection_cap_reached_then_next_connection_closed(tmp_path: Path) -> None:
    """``max_connections`` counts logged-on connections too: one past it is closed."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            server = acceptor(acc, limits=AcceptorLimits(max_connections=1))
            port = await server.start()
            client = initiator(ini.session, port)
            task = asyncio.create_task(client.run())
            try:
                await until(lambda: acc.session.logged_on, timeout_s=DEADLINE_S)
                assert await exchange(port, logon()) == b""
                assert server.counters["over_capacity"] == 1
                assert acc.session.logged_on
            finally:
                await client.stop()
                await task
                await server.stop()

    run(main)


def test_when_failures_reach_limit_then_address_locked_out_until_lockout_ends(
    tmp_path: Path,
) -> None:
    """Three failures lock 127.0.0.1 out: even the right password is closed unread; once
    the lockout has run (clock moved), the right password logs on."""

    async def main() -> None:
        with nodes(tmp_path) as (_ini, acc):
            clock = ShiftedClock()
            limits = AcceptorLimits(max_logon_failures=3, lockout_s=30.0)
            server = acceptor(acc, limits=limits, clock=clock)
            port = await server.start()
            try:
                for _ in range(3):
                    (logout,) = parse_all(await exchange(port, logon(password="guess")))
                    assert logout.get(58) == "invalid username or password"
                assert server.counters["lockouts"] == 1
                assert await exchange(port, logon()) == b""
                assert server.counters["locked_out"] == 1 and acc.app.logons == 0
                other = await exchange(port, logon(password="guess"), source="127.0.0.2")
                assert [m.msg_type for m in parse_all(other)] == ["5"]  # others not locked

                clock.shift_s = 29.0
                assert await exchange(port, logon()) == b""
                clock.shift_s = 30.5
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(logon())
                await until(lambda: acc.session.logged_on, timeout_s=DEADLINE_S)
                first = await asyncio.wait_for(reader.read(4096), DEADLINE_S)
                assert parse_all(first)[0].msg_type == "A"
                writer.close()
            finally:
                await server.stop()

    run(main)


def test_when_no_logon_within_timeout_then_connection_closed_and_counted(
    tmp_path: Path,
) -> None:
    """A connection that sends nothing is closed at the logon timeout, as a failure."""

    async def main() -> None:
        with nodes(tmp_path) as (_ini, acc):
            server = acceptor(acc, limits=AcceptorLimits(logon_timeout_ms=200))
            port = await server.start()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert await asyncio.wait_for(reader.read(), DEADLINE_S) == b""
                assert server.counters["logon_failures"] == 1
                writer.close()
            finally:
                await server.stop()

    run(main)


@pytest.mark.parametrize(
    ("source", "allowed"), [("127.0.0.1", True), ("127.0.0.2", False)], ids=["in", "out"]
)
def test_when_account_has_allowlist_then_other_addresses_refused(
    tmp_path: Path, source: str, allowed: bool
) -> None:
    """``allowed_ips = ["127.0.0.1/32"]``: the right password from 127.0.0.2 is refused."""

    async def main() -> None:
        with nodes(tmp_path) as (_ini, acc):
            rule = AccessRule.parse(["127.0.0.1/32", "10.0.0.0/8"], "accounts[0]")
            server = acceptor(acc, access={(ACC, INI): rule})
            port = await server.start()
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)
                )
                writer.write(logon())
                answer = parse_all(await asyncio.wait_for(reader.read(4096), DEADLINE_S))
                writer.close()
                if allowed:
                    assert answer[0].msg_type == "A" and acc.app.logons == 1
                else:
                    assert [(m.msg_type, m.get(58)) for m in answer] == [
                        ("5", "source address not allowed")
                    ]
                    assert acc.app.logons == 0 and server.counters["logon_failures"] == 1
            finally:
                await server.stop()

    run(main)


def test_when_bad_logons_come_from_many_addresses_then_failure_table_stays_bounded(
    tmp_path: Path,
) -> None:
    """40 addresses (127.0.0.10-49) each send a wrong Logon: the acceptor remembers the 8
    latest, the oldest are evicted, and each refusal was still answered and counted."""

    async def main() -> None:
        with nodes(tmp_path) as (_ini, acc):
            limits = AcceptorLimits(max_tracked_addresses=8, max_logon_failures=3)
            server = acceptor(acc, limits=limits)
            port = await server.start()
            sources = [f"127.0.0.{n}" for n in range(10, 50)]
            try:
                for source in sources:
                    answer = await exchange(port, logon(password="guess"), source=source)
                    assert [m.msg_type for m in parse_all(answer)] == ["5"], source
                    assert len(server.guard) <= 8
                assert server.counters["logon_failures"] == len(sources)
                assert len(server.guard) == 8 and server.guard.evicted == len(sources) - 8
                assert all(s in server.guard for s in sources[-8:])
                assert not any(s in server.guard for s in sources[:-8])
            finally:
                await server.stop()

    run(main)


def test_when_failures_age_past_lockout_then_records_purged_on_next_admission() -> None:
    """Records are dropped ``lockout_s`` after their last failure, at the next call: a
    lockout ends, a count of failures in a row starts again from zero."""
    guard = AddressGuard(AcceptorLimits(max_logon_failures=2, lockout_s=10.0))
    assert guard.failed("10.0.0.1", 0.0) is False
    assert guard.failed("10.0.0.2", 1.0) is False
    assert guard.failed("10.0.0.2", 2.0) is True  # the second in a row locks it out
    assert guard.locked("10.0.0.2", 11.9) and len(guard) == 1  # 10.0.0.1 expired at 10.0
    assert not guard.locked("10.0.0.2", 12.0) and len(guard) == 0
    assert guard.failed("10.0.0.2", 12.0) is False  # a fresh count
    assert guard.lockouts == 1
