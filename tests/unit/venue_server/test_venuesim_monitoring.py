"""The venue simulator's own monitoring: its [monitoring] table (no dead-man's switch),
its sample (sessions by state, orders, fills, quotes, resting orders, the acceptor's
unsent bytes and slow consumers) and readiness."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.config import load_config
from bastion.errors import ConfigError
from bastion.fix.session import SessionState
from bastion.fix.transport import FixAcceptor
from bastion.monitor.config import MonitoringConfig
from bastion.monitor.sample import Sample
from bastion.venue_server.config import VenueSimConfig
from bastion.venue_server.monitoring import NOT_LISTENING, VenueSimMonitor
from kit.fix_desk import venue_sim_toml

T0 = 1_704_205_800_000_000_000


def test_when_venue_sim_monitoring_has_a_deadman_then_refused(tmp_path: Path) -> None:
    """The simulator pings no dead-man's switch: the key is an error, named."""
    path = tmp_path / "venue.toml"
    path.write_text(
        venue_sim_toml(0)
        + '[monitoring]\nlisten = "127.0.0.1:0"\n[monitoring.deadman]\nurl = "secret:d"\n'
    )
    with pytest.raises(ConfigError, match=r"monitoring\.deadman"):
        load_config(path, VenueSimConfig)


def test_when_simulator_sampled_then_sessions_by_state_and_counters_reported() -> None:
    """Two sessions logged on, one down; the counters as the simulator keeps them; no
    resting orders before its engine runs; ready only once its acceptor listens."""
    counters: Counter[str] = Counter(orders_received=4, fills=2, quotes=10)
    states = [SessionState.ACTIVE, SessionState.ACTIVE, SessionState.DISCONNECTED]
    resting: list[int | None] = [None]
    acceptor = FixAcceptor({}, "127.0.0.1", 0, clock=SimClock(T0))
    acceptor.counters["slow_consumers"] = 2

    async def main() -> tuple[Sample, Sample, list[str], list[str]]:
        monitor = VenueSimMonitor(
            MonitoringConfig(listen="127.0.0.1:0"),
            clock=SimClock(T0),
            sessions=lambda: states,
            counters=counters,
            resting=lambda: resting[0],
            acceptor=acceptor,
        )
        monitor.start()
        try:
            before = monitor.latest
            assert before is not None
            not_listening = monitor.readiness()
            monitor.listening = True
            resting[0] = 3
            after = monitor.sample_now()
            return before, after, not_listening, monitor.readiness()
        finally:
            await monitor.stop()

    before, after, not_listening, listening = asyncio.run(main())
    assert before.get("bastion_venuesim_sessions", state="logged_on") == 2
    assert before.get("bastion_venuesim_sessions", state="disconnected") == 1
    assert before.get("bastion_venuesim_sessions", state="connected") == 0
    assert before.get("bastion_venuesim_orders_total") == 4
    assert before.get("bastion_venuesim_fills_total") == 2
    assert before.get("bastion_venuesim_resting_orders") is None
    assert before.get("bastion_venuesim_slow_consumers_total") == 2
    assert before.get("bastion_venuesim_unsent_bytes") == 0
    assert after.get("bastion_venuesim_resting_orders") == 3
    assert (not_listening, listening) == ([NOT_LISTENING], [])
