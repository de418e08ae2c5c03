"""The catalogue is the one list of metric names: every series a node's sample holds is
in it with exactly its labels, and a scrape exposes only what it names."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bastion.model.enums import OrderSide, OrderType
from bastion.monitor.catalogue import HISTOGRAMS, METRICS, check_series
from bastion.monitor.sample import Sample
from bastion.node.kernel import Kernel
from bastion.risk.config import RiskConfig
from kit.fix_link import IID, VENUE
from kit.fix_venue_node import X, buy, fix_venue_kernel
from kit.journal_samples import fills
from kit.monitored import journal_at, watching
from kit.waiting import until

NOT_IN_THIS_NODE = {
    "bastion_md_rejects_total": "no feed here dropped anything",
    "bastion_feed_rejected_total": "no validator stopped a quote here",
    "bastion_feed_flagged_total": "no validator flagged a quote here",
    "bastion_feed_active": "one feed per instrument here: no arbiter",
    "bastion_feed_healthy": "one feed per instrument here: no arbiter",
    "bastion_feed_failed_over": "one feed per instrument here: no arbiter",
    "bastion_feed_switches_total": "one feed per instrument here: no arbiter",
    "bastion_clock_offset_seconds": "only when the host reports it",
    "bastion_clock_synchronized": "only when the host reports it",
    "bastion_orders_rejected_total": "no venue rejected an order",
}


def market(kernel: Kernel, iid: str, lots: int = 1) -> None:
    order = kernel.execution.create_order(
        strategy_id="s",
        instrument_id=iid,
        venue=kernel.instruments[iid].venue,
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=lots * kernel.instruments[iid].lot_raw,
    )
    kernel.risk.submit_order(order)
    kernel.flush()


async def busy_node_sample(tmp_path: Path) -> Sample:
    """A node that did a bit of everything: both venues traded, an order denied, one
    canceled, a strategy disabled, a snapshot, the kill switch; sampled once its host
    reading and the FIX venue's round trip are in."""
    kernel, link = fix_venue_kernel(tmp_path)
    kernel.apply_risk_config(
        RiskConfig(
            max_long_quantity=Decimal(5),
            max_new_orders_per_s=50,
            max_daily_loss_node=Decimal(1_000),
            max_total_exposure=Decimal(1_000_000),
        )
    )
    kernel.risk.check_post_trade()
    journal = journal_at(tmp_path / "journal.sqlite")
    try:
        link.connect()
        async with watching(kernel, journal) as monitor:
            market(kernel, X)  # filled by the in-process venue
            market(kernel, X, lots=10)  # beyond max_long_quantity: denied
            resting = buy(kernel, X)
            kernel.risk.cancel_order(resting)
            kernel.flush()
            buy(kernel, IID)
            link.pump()  # the FIX venue acknowledges
            kernel.risk.disable_strategy("s", "drill")
            journal.append(fills(1)[0])
            journal.snapshot(b"state", kernel.clock.timestamp_ns())
            kernel.clock.advance_to(kernel.clock.timestamp_ns() + 5_000_000_000)  # type: ignore[attr-defined]
            link.session.tick()  # the round-trip probe
            link.pump()
            kernel.kill("drill")
            await asyncio.sleep(0)
            return await until(
                lambda: (
                    (s := monitor.sample_now()).get("bastion_process_open_fds") is not None and s
                ),
                what="a sample with the host's reading",
            )
    finally:
        link.close()
        journal.close()


def test_when_node_sampled_then_every_series_is_in_the_catalogue_with_its_labels(
    tmp_path: Path,
) -> None:
    """Every series fits its catalogue entry; every node metric is there (bar the ones
    this node has no reason to report), none of the alerting, HA, backup or simulator ones."""
    sample = asyncio.run(busy_node_sample(tmp_path))
    problems = [
        problem
        for name, series in sample.values.items()
        for labels in series
        if (problem := check_series(name, tuple(k for k, _ in labels))) is not None
    ]
    assert problems == []
    node_metrics = {
        name
        for name, metric in METRICS.items()
        if metric.kind != "histogram"
        and not re.match(r"bastion_(venuesim|alerts|notification|deadman|ha_|backup_)", name)
    }
    assert node_metrics - set(sample.values) == set(NOT_IN_THIS_NODE)
    assert sample.get("bastion_venue_heartbeat_rtt_seconds", venue=VENUE) == 0.0
    assert sample.get("bastion_kill_switch_activations_total") == 1
    assert sample.get("bastion_orders_denied_total", strategy="s", reason="POSITION_LIMIT") == 1


def test_when_catalogue_read_then_names_kinds_and_labels_follow_the_conventions() -> None:
    """Every name is bastion_..., counters and only counters end in _total, label names
    are Prometheus identifiers and none repeats."""
    for name, metric in METRICS.items():
        assert name == metric.name and name.startswith("bastion_")
        assert name.endswith("_total") == (metric.kind == "counter"), name
        assert len(set(metric.labels)) == len(metric.labels), name
        assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", label) for label in metric.labels), name
    assert {m.name for m in HISTOGRAMS} == {
        "bastion_tick_to_order_seconds",
        "bastion_order_to_ack_seconds",
        "bastion_order_to_fill_seconds",
        "bastion_gc_pause_seconds",
    }


def test_when_sample_has_a_name_not_in_the_catalogue_then_exposition_leaves_it_out(
    tmp_path: Path,
) -> None:
    """A source adding an unknown name (or a histogram's) does not reach the scrape; the
    scrape's families are all catalogue names."""

    async def main() -> bytes:
        kernel, link = fix_venue_kernel(tmp_path)
        try:
            async with watching(kernel, None) as monitor:
                monitor.add_source(lambda b: b.set("bastion_made_up", 1))
                monitor.add_source(lambda b: b.set("bastion_tick_to_order_seconds", 1))
                monitor.sample_now()
                return generate_latest(monitor.registry)
        finally:
            link.close()

    text = asyncio.run(main()).decode()
    families = {family.name for family in text_string_to_metric_families(text)}
    assert "bastion_made_up" not in text
    assert families <= {name.removesuffix("_total") for name in METRICS}
    assert "bastion_node_info" in families
