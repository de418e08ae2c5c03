"""The FIX venue adapter's connection loop over loopback TCP: a loop that dies is not the
end of the venue (it is down, logged, and started again after the backoff)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import structlog

from bastion.clock import LiveClock
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.fix.transport import FixAcceptor
from bastion.venues.fix.adapter import FixVenueAdapter
from kit.fix_link import INSTRUMENT, PASSWORD, VENUE, VenueApp
from kit.waiting import until

DEADLINE_S = 10.0


def test_when_connection_loop_fails_then_venue_down_logged_and_loop_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session store fails once as the Logon is stored: the connection loop dies. The
    venue is reported down, the failure is logged as an error naming the venue, and the
    loop starts again after the backoff and logs on."""

    async def main() -> None:
        clock = LiveClock()
        venue_settings = SessionSettings(sender_comp_id="EXCH", target_comp_id="NODE")
        venue_store = SqliteSessionStore(
            tmp_path / "venue.sqlite", venue_settings.key, now_ns=clock.timestamp_ns()
        )
        venue_app = VenueApp()
        venue_session = FixSession(venue_settings, venue_store, venue_app, clock=clock)
        acceptor = FixAcceptor({("EXCH", "NODE"): venue_session}, "127.0.0.1", 0, clock=clock)
        port = await acceptor.start()
        adapter = FixVenueAdapter(
            name=VENUE,
            epoch=1,
            settings=SessionSettings(
                sender_comp_id="NODE",
                target_comp_id="EXCH",
                username="trader",
                password=PASSWORD,
            ),
            store_path=tmp_path / "node.sqlite",
            host="127.0.0.1",
            port=port,
            clock=clock,
            instruments={INSTRUMENT.id: INSTRUMENT},
            backoff_initial_s=0.02,
            backoff_max_s=0.05,
        )
        store_sent = adapter.store.store_sent
        failures: list[int] = []

        def failing_store_sent(seq: int, raw: bytes | None) -> None:
            if not failures:
                failures.append(seq)
                raise sqlite3.OperationalError("disk I/O error (injected)")
            store_sent(seq, raw)

        monkeypatch.setattr(adapter.store, "store_sent", failing_store_sent)
        try:
            with structlog.testing.capture_logs() as logs:
                await adapter.connect()
                await until(lambda: failures, timeout_s=DEADLINE_S)
                assert not adapter.connected
                await until(lambda: adapter.connected, timeout_s=DEADLINE_S)
            (failed,) = [e for e in logs if e["event"] == "fix_connection_loop_failed"]
            assert failed["log_level"] == "error" and failed["venue"] == VENUE
            assert "disk I/O error" in str(failed["error"])
            assert adapter.counters["connection_loop_failures"] == 1
            assert adapter.status()["connection_loop_failures"] == 1
            assert venue_session.logged_on
        finally:
            await adapter.disconnect()
            await acceptor.stop()
            venue_store.close()

    asyncio.run(asyncio.wait_for(main(), 30))
