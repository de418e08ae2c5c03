"""``NodeMonitor`` on a node's kernel: readiness reasons (recovering, a venue down or not
reconciled, a stale feed, the journal not writable), health (the loop sampling), the
sources and listeners other parts plug in, and the order counts and latencies."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType
from bastion.monitor.node import NOT_RECOVERED, STANDBY, NodeMonitor
from bastion.monitor.sample import Sample, SampleBuilder
from kit.fix_link import IID, VENUE
from kit.fix_venue_node import T0, X, fix_venue_kernel
from kit.monitored import MONITORING, journal_at, watching
from kit.waiting import until

S = 1_000_000_000


def test_when_node_recovering_or_venue_down_then_not_ready_with_each_reason(
    tmp_path: Path,
) -> None:
    """Before the first reconciliation: not ready; then the FIX venue not logged on, and
    once logged on, not reconciled on that logon; reconciled and quotes fresh: ready."""

    async def main() -> list[list[str]]:
        kernel, link = fix_venue_kernel(tmp_path)
        seen = []
        try:
            async with watching(kernel, None) as monitor:
                seen.append(monitor.readiness())
                monitor.trading_started()
                monitor.sample_now()
                seen.append(monitor.readiness())
                link.connect(reconciled=False)
                monitor.sample_now()
                seen.append(monitor.readiness())
                link.adapter.reconciled_logon = link.adapter.logons
                monitor.sample_now()
                seen.append(monitor.readiness())
        finally:
            link.close()
        return seen

    recovering, down, unreconciled, ready = asyncio.run(main())
    assert recovering == [NOT_RECOVERED, f"venue {VENUE}: session not logged on"]
    assert down == [f"venue {VENUE}: session not logged on"]
    assert unreconciled == [f"venue {VENUE}: not reconciled since its last logon"]
    assert ready == []


def test_when_quotes_stop_then_feed_stale_past_quote_stale_s(tmp_path: Path) -> None:
    """At quote_stale_s the feed is still fresh; one step past, each of its instruments
    is a reason; a new quote makes it fresh again."""

    async def main() -> list[list[str]]:
        kernel, link = fix_venue_kernel(tmp_path)
        clock = kernel.clock
        link.connect()
        seen = []
        try:
            async with watching(kernel, None) as monitor:
                monitor.trading_started()
                stale_ns = int(MONITORING.quote_stale_s * S)
                clock.advance_to(T0 + stale_ns)  # type: ignore[attr-defined]
                monitor.sample_now()
                seen.append(monitor.readiness())
                clock.advance_to(T0 + stale_ns + 1_000_000)  # type: ignore[attr-defined]
                monitor.sample_now()
                seen.append(monitor.readiness())
                kernel.on_quote(QuoteTick(X, clock.timestamp_ns(), 10_000, 10_002, 5, 5))
                monitor.sample_now()
                seen.append(monitor.readiness())
        finally:
            link.close()
        return seen

    at_limit, past, one_fresh = asyncio.run(main())
    assert at_limit == []
    assert past == [
        f"feed house: no quote for {X} for 5.0 s (monitoring.quote_stale_s 5)",
        f"feed house: no quote for {IID} for 5.0 s (monitoring.quote_stale_s 5)",
    ]
    assert one_fresh == [past[1]]


def test_when_journal_not_writable_then_not_ready(tmp_path: Path) -> None:
    """A journal that accepts no more events (closed here) is a reason."""

    async def main() -> list[str]:
        kernel, link = fix_venue_kernel(tmp_path)
        link.connect()
        journal = journal_at(tmp_path / "j.sqlite")
        try:
            async with watching(kernel, journal) as monitor:
                monitor.trading_started()
                journal.close()
                monitor.sample_now()
                return monitor.readiness()
        finally:
            link.close()

    (reason,) = asyncio.run(main())
    assert reason.startswith("journal ") and "not writable" in reason


def test_when_loop_stops_sampling_then_health_says_stalled(tmp_path: Path) -> None:
    """Alive while samples are recent; the clock moving on without a sample (the loop
    wedged) is a problem naming how long."""

    async def main() -> tuple[str | None, str | None]:
        kernel, link = fix_venue_kernel(tmp_path)
        try:
            async with watching(kernel, None) as monitor:
                alive = monitor.health()
                kernel.clock.advance_to(T0 + 3 * S)  # type: ignore[attr-defined]
                return alive, monitor.health()
        finally:
            link.close()

    alive, wedged = asyncio.run(main())
    assert alive is None
    assert wedged == "the event loop has not sampled for 3.0 s: it is stalled"


def test_when_sources_and_listeners_added_then_every_sample_has_them(tmp_path: Path) -> None:
    """A source's series join the node's in every sample; each listener gets each sample,
    on the loop; a failing source or listener does not stop the others."""

    async def main() -> tuple[Sample, list[Sample]]:
        kernel, link = fix_venue_kernel(tmp_path)
        heard: list[Sample] = []

        def alerts(builder: SampleBuilder) -> None:
            builder.set("bastion_alerts_firing", 2, severity="critical")

        def broken(builder: SampleBuilder) -> None:
            raise RuntimeError("a broken source")

        def deaf(sample: Sample) -> None:
            raise RuntimeError("a broken listener")

        try:
            async with watching(kernel, None) as monitor:
                for source in (broken, alerts):
                    monitor.add_source(source)
                monitor.add_listener(deaf)
                monitor.add_listener(heard.append)
                await until(lambda: len(heard) >= 2, what="two periodic samples")
                return monitor.sample_now(), heard
        finally:
            link.close()

    sample, heard = asyncio.run(main())
    assert sample.get("bastion_alerts_firing", severity="critical") == 2
    assert sample.get("bastion_node_up_seconds") is not None
    assert heard[-1] is sample
    assert all(s.get("bastion_alerts_firing", severity="critical") == 2 for s in heard)


def test_when_orders_flow_then_counted_and_timed_from_their_events(tmp_path: Path) -> None:
    """A market order at the in-process venue: submitted, accepted and filled once each,
    timed from the quote it answered (tick-to-order), from its creation to the ack and
    to its first fill."""

    async def main() -> tuple[Sample, dict[str, float]]:
        kernel, link = fix_venue_kernel(tmp_path)
        clock = kernel.clock
        try:
            async with watching(kernel, None) as monitor:
                clock.advance_to(T0 + 1_000_000)  # type: ignore[attr-defined]
                kernel.on_quote(QuoteTick(X, clock.timestamp_ns(), 10_000, 10_002, 5, 5))
                clock.advance_to(T0 + 3_000_000)  # type: ignore[attr-defined]
                order = kernel.execution.create_order(
                    strategy_id="s",
                    instrument_id=X,
                    venue="A",
                    side=OrderSide.BUY,
                    order_type=OrderType.MARKET,
                    quantity=1,
                )
                kernel.risk.submit_order(order)
                clock.advance_to(T0 + 4_000_000)  # type: ignore[attr-defined]
                kernel.flush()
                sample = monitor.sample_now()
                sums: dict[str, float] = {}
                for family in monitor.registry.collect():
                    for s in family.samples:
                        if s.name.endswith("_sum") and "gc_pause" not in s.name:
                            sums[s.name] = s.value
                return sample, sums
        finally:
            link.close()

    sample, sums = asyncio.run(main())
    for metric in ("submitted", "accepted", "filled"):
        assert sample.get(f"bastion_orders_{metric}_total", strategy="s", venue="A") == 1
    assert sample.get("bastion_fills_total", strategy="s", venue="A") == 1
    assert sample.get("bastion_orders_fill_ratio", strategy="s") == 1.0
    assert sums["bastion_tick_to_order_seconds_sum"] == 0.002
    assert sums["bastion_order_to_ack_seconds_sum"] == 0.001
    assert sums["bastion_order_to_fill_seconds_sum"] == 0.001


def test_when_standby_then_served_without_a_kernel_never_ready_until_it_leads(
    tmp_path: Path,
) -> None:
    """An HA standby's monitor: started with no kernel, its sources sampled, alive and
    not ready (standby); attached and started again once it leads, the kernel's series
    join and the standby reason is gone."""

    async def main() -> tuple[Sample, list[str], str | None, Sample, list[str]]:
        kernel, link = fix_venue_kernel(tmp_path)
        monitor = NodeMonitor(MONITORING, node_id="node-1", mode="paper", clock=kernel.clock)

        def ha(builder: SampleBuilder) -> None:
            builder.set("bastion_ha_role", 1, role="standby")

        try:
            monitor.add_source(ha)
            monitor.standing_by()
            monitor.start()
            standby = monitor.sample_now()
            reasons, health = monitor.readiness(), monitor.health()
            monitor.attach(kernel, journal=None, epoch=2)
            monitor.start()
            leading = monitor.sample_now()
            return standby, reasons, health, leading, monitor.readiness()
        finally:
            await monitor.stop()
            link.close()

    standby, reasons, health, leading, after = asyncio.run(main())
    assert reasons == [STANDBY]
    assert health is None
    assert standby.get("bastion_ha_role", role="standby") == 1
    assert standby.get("bastion_node_ready") == 0
    assert set(leading.values) - set(standby.values), "the kernel's series join"
    assert leading.get("bastion_ha_role", role="standby") == 1
    assert STANDBY not in after
    assert NOT_RECOVERED in after
