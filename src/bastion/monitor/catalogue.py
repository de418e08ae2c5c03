"""Every metric a bastion process exposes, stated once: its name, kind, help and label
names. The exposition serves exactly these (``bastion.monitor.exposition``), a test
checks that every series a sample holds is here with exactly its labels, and the
dashboards, alerting rules and runbooks name them: a metric is renamed here or nowhere.

Counters end in ``_total`` and count since the process started (Prometheus handles the
reset at a restart); gauges are the value at the sample; histograms are observed by the
sampler from the latencies the loop noted. Money is in the account currency, positions
in instrument units; both are exact in the node and become floats only here, at the
exposition's edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


LATENCY_BUCKETS_S: Final = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Buckets of the latency histograms, in seconds (10 µs to 5 s)."""

GC_BUCKETS_S: Final = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

_G: Final = "gauge"
_C: Final = "counter"
_H: Final = "histogram"

_ALL: Final = (
    # -- venues ---------------------------------------------------------------------------
    Metric("bastion_venue_connected", _G, "1 while the venue's session is logged on", ("venue",)),
    Metric(
        "bastion_venue_reconciled",
        _G,
        "1 once the node has reconciled the venue since its last logon (orders only then)",
        ("venue",),
    ),
    Metric("bastion_venue_halted", _G, "1 while an operator halted the venue", ("venue",)),
    Metric("bastion_venue_logons_total", _C, "Session logons since the node started", ("venue",)),
    Metric(
        "bastion_venue_disconnects_total",
        _C,
        "Logged-on sessions that dropped since the node started",
        ("venue",),
    ),
    Metric(
        "bastion_venue_slow_consumer_drops_total",
        _C,
        "Connections dropped because the venue stopped reading what the node sent",
        ("venue",),
    ),
    Metric(
        "bastion_venue_heartbeat_rtt_seconds",
        _G,
        "Last round trip measured: a TestRequest to the venue's Heartbeat",
        ("venue",),
    ),
    Metric(
        "bastion_venue_last_message_age_seconds",
        _G,
        "Time since the venue last sent anything",
        ("venue",),
    ),
    Metric(
        "bastion_venue_resend_requests_total",
        _C,
        "ResendRequests exchanged with the venue (sent for gaps in its messages, and received)",
        ("venue",),
    ),
    Metric(
        "bastion_venue_gap_fills_total",
        _C,
        "SequenceReset-GapFills exchanged with the venue (sent and received)",
        ("venue",),
    ),
    # -- orders ---------------------------------------------------------------------------
    Metric(
        "bastion_orders_submitted_total",
        _C,
        "Orders the risk gate passed and the node sent to a venue",
        ("strategy", "venue"),
    ),
    Metric(
        "bastion_orders_accepted_total",
        _C,
        "Orders the venue acknowledged",
        ("strategy", "venue"),
    ),
    Metric(
        "bastion_orders_denied_total",
        _C,
        "Orders the risk gate denied, by reason",
        ("strategy", "reason"),
    ),
    Metric(
        "bastion_orders_rejected_total",
        _C,
        "Orders the venue (or the node for a venue that cannot take them) rejected",
        ("strategy", "venue"),
    ),
    Metric("bastion_orders_canceled_total", _C, "Orders canceled", ("strategy", "venue")),
    Metric(
        "bastion_orders_filled_total",
        _C,
        "Orders completely filled",
        ("strategy", "venue"),
    ),
    Metric("bastion_fills_total", _C, "Fill events (executions)", ("strategy", "venue")),
    Metric(
        "bastion_orders_fill_ratio",
        _G,
        "Orders completely filled over orders submitted, since the node started",
        ("strategy",),
    ),
    Metric("bastion_orders_open", _G, "Orders working at the venue now", ("venue",)),
    Metric(
        "bastion_tick_to_order_seconds",
        _H,
        "From the quote an order answered (stamped on receipt) to the order sent; the "
        "first 64 orders of each sample interval",
    ),
    Metric(
        "bastion_order_to_ack_seconds",
        _H,
        "From an order's creation to the venue's acknowledgement",
        ("venue",),
    ),
    Metric(
        "bastion_order_to_fill_seconds",
        _H,
        "From an order's creation to its first fill",
        ("venue",),
    ),
    # -- risk -----------------------------------------------------------------------------
    Metric(
        "bastion_trading_state",
        _G,
        "1 for the node's trading state (ACTIVE, REDUCING, HALTED), 0 for the others",
        ("state",),
    ),
    Metric(
        "bastion_risk_limit_utilisation",
        _G,
        "What counts against a configured risk limit over the limit (1 = at the limit); "
        "limit is its config key, scope an instrument, strategy, account, venue or node",
        ("limit", "scope"),
    ),
    Metric(
        "bastion_kill_switch_activations_total",
        _C,
        "Times the node went HALTED since it started",
    ),
    Metric(
        "bastion_strategy_disabled",
        _G,
        "1 while the risk gate has the strategy disabled",
        ("strategy",),
    ),
    Metric("bastion_strategies_disabled", _G, "Strategies disabled now"),
    Metric(
        "bastion_instrument_paused",
        _G,
        "1 while the risk gate has new orders on the instrument paused",
        ("instrument",),
    ),
    Metric("bastion_instruments_paused", _G, "Instruments paused now"),
    # -- portfolio ------------------------------------------------------------------------
    Metric(
        "bastion_position",
        _G,
        "Net position, in instrument units",
        ("strategy", "instrument"),
    ),
    Metric(
        "bastion_realized_pnl",
        _G,
        "Realized PnL before fees, in the account currency",
        ("strategy", "instrument"),
    ),
    Metric(
        "bastion_unrealized_pnl",
        _G,
        "Unrealized PnL, marked at the last quote, in the account currency",
        ("strategy", "instrument"),
    ),
    Metric("bastion_fees", _G, "Fees paid, in the account currency", ("strategy", "instrument")),
    Metric("bastion_cash", _G, "Account cash: starting cash, fills' cash flows, less fees"),
    Metric("bastion_equity", _G, "Cash plus positions marked at the last quotes"),
    Metric("bastion_pnl", _G, "Node PnL: realized + unrealized - fees, in the account currency"),
    Metric("bastion_exposure_gross", _G, "Sum of the positions' absolute marked values"),
    Metric("bastion_exposure_net", _G, "Sum of the positions' signed marked values"),
    # -- market data ----------------------------------------------------------------------
    Metric("bastion_quotes_total", _C, "Quotes the feeds delivered", ("instrument",)),
    Metric(
        "bastion_quotes_per_second",
        _G,
        "Quotes delivered per second over about the last second",
        ("instrument",),
    ),
    Metric(
        "bastion_quote_age_seconds",
        _G,
        "Time since the instrument's last quote was received",
        ("instrument",),
    ),
    Metric(
        "bastion_md_rejects_total",
        _C,
        "Market data a feed dropped as bad, by reason",
        ("feed", "reason"),
    ),
    Metric(
        "bastion_feed_rejected_total",
        _C,
        "Quotes and trades a validator stopped before the node (drop or pause), by reason",
        ("feed", "instrument", "reason"),
    ),
    Metric(
        "bastion_feed_flagged_total",
        _C,
        "Quotes and trades a validator flagged and let through, by reason",
        ("feed", "instrument", "reason"),
    ),
    Metric(
        "bastion_feed_active",
        _G,
        "1 for the feed the arbiter follows for the instrument, 0 for its other feeds",
        ("instrument", "feed"),
    ),
    Metric(
        "bastion_feed_healthy",
        _G,
        "1 while the feed ticks within arbitration.stale_ms and is not outvoted",
        ("instrument", "feed"),
    ),
    Metric(
        "bastion_feed_failed_over",
        _G,
        "1 while the instrument's quotes come from a feed other than its preferred one, "
        "or from none",
        ("instrument",),
    ),
    Metric(
        "bastion_feed_switches_total",
        _C,
        "Switches of the instrument's followed feed (failovers and returns)",
        ("instrument",),
    ),
    # -- journal --------------------------------------------------------------------------
    Metric("bastion_journal_events_total", _C, "Events appended to the journal (its last seq)"),
    Metric(
        "bastion_journal_events_per_second",
        _G,
        "Events appended per second over about the last second",
    ),
    Metric("bastion_journal_commit_lag_events", _G, "Events appended and not committed yet"),
    Metric(
        "bastion_journal_commit_lag_seconds",
        _G,
        "Age of the oldest event appended and not committed yet",
    ),
    Metric("bastion_journal_queue_depth", _G, "Events and snapshots waiting for the writer"),
    Metric("bastion_journal_bytes", _G, "Size of the journal file and its write-ahead log"),
    Metric("bastion_journal_snapshot_age_seconds", _G, "Time since the last snapshot"),
    Metric("bastion_journal_writable", _G, "1 while the journal accepts events"),
    # -- host and process -----------------------------------------------------------------
    Metric("bastion_process_cpu_percent", _G, "CPU used by the process (100 = one core)"),
    Metric("bastion_process_memory_rss_bytes", _G, "Resident memory of the process"),
    Metric("bastion_process_open_fds", _G, "File descriptors the process holds open"),
    Metric("bastion_disk_free_bytes", _G, "Free space on the journal's file system"),
    Metric("bastion_disk_free_ratio", _G, "Free share of the journal's file system"),
    Metric(
        "bastion_event_loop_lag_seconds",
        _G,
        "How late the trading loop woke the sampler for its last sample",
    ),
    Metric("bastion_gc_pause_seconds", _H, "Pauses of Python's cyclic garbage collector"),
    Metric(
        "bastion_clock_offset_seconds",
        _G,
        "System clock minus the time source's (positive: ahead), as the host's NTP daemon "
        "reports it; absent when it reports none",
    ),
    Metric(
        "bastion_clock_synchronized",
        _G,
        "1 when the host's NTP daemon says the clock is synchronized",
    ),
    # -- node -----------------------------------------------------------------------------
    Metric("bastion_node_ready", _G, "1 when /readyz answers 200"),
    Metric(
        "bastion_node_info",
        _G,
        "Always 1; the node's identity",
        ("node", "mode", "version", "epoch"),
    ),
    Metric("bastion_node_up_seconds", _G, "Time since the node process started its run"),
    # -- high availability (bastion.ha.metrics.HaReadings through NodeMonitor.add_source) -
    Metric(
        "bastion_ha_role",
        _G,
        "1 for this HA member's role now (leader, standby), 0 for the other",
        ("role",),
    ),
    Metric(
        "bastion_ha_applied_seq",
        _G,
        "The last journal event a standby applied to its state (the standby only)",
    ),
    Metric(
        "bastion_ha_lag_events",
        _G,
        "Events committed to the journal that a standby has not applied yet (the standby only)",
    ),
    Metric(
        "bastion_ha_lag_seconds",
        _G,
        "How far behind a standby's state is: 0 when caught up, else the age of its last "
        "applied event (the standby only)",
    ),
    Metric("bastion_ha_epoch", _G, "The leader's fencing epoch (the leader only)"),
    Metric(
        "bastion_ha_lease_remaining_seconds",
        _G,
        "Until the leader's own deadline (lease_ms - margin_ms after its last renewal "
        "began) passes and it stops sending; 0 once passed (the leader only)",
    ),
    Metric(
        "bastion_ha_standby_lag_events",
        _G,
        "Events a standby has still to apply, as its last heartbeat said (the leader only)",
        ("member",),
    ),
    Metric(
        "bastion_ha_standby_lag_seconds",
        _G,
        "How far behind a standby's state is, as its last heartbeat said, plus that "
        "report's age (the leader only)",
        ("member",),
    ),
    Metric(
        "bastion_ha_standby_heartbeat_age_seconds",
        _G,
        "Time since a standby's last heartbeat, on the database's clock (the leader only)",
        ("member",),
    ),
    Metric(
        "bastion_ha_standbys",
        _G,
        "Standbys heartbeating within ha.standby_lost_s (the leader only)",
    ),
    Metric(
        "bastion_ha_takeovers_total",
        _C,
        "Times this process took the lead of its HA group (LeaderTookOver), by reason: "
        "failover, switchover, first_start",
        ("reason",),
    ),
    Metric(
        "bastion_ha_step_downs_total",
        _C,
        "Times this process stopped leading its HA group (LeaderStepDown)",
    ),
    Metric(
        "bastion_ha_heartbeat_failures_total",
        _C,
        "Heartbeats of this member to the members table that failed",
    ),
    Metric(
        "bastion_ha_members_read_failures_total",
        _C,
        "Reads of the members table by the leader that failed",
    ),
    # -- journal shipping by the node ([backup] ship_interval_s; bastion.backup.scheduled) -
    Metric(
        "bastion_backup_segments_total",
        _C,
        "Journal segments the node's shipping stored at the backup destination",
    ),
    Metric(
        "bastion_backup_failures_total",
        _C,
        "Backup rounds that failed (backup_failed), by command",
        ("command",),
    ),
    Metric("bastion_backup_shipped_seq", _G, "The last journal seq at the backup destination"),
    # -- alerting (added by the alert engine through NodeMonitor.add_source) -------------
    Metric("bastion_alerts_firing", _G, "Alerts firing now", ("severity",)),
    Metric("bastion_notifications_sent_total", _C, "Notifications delivered", ("route",)),
    Metric(
        "bastion_notifications_failed_total",
        _C,
        "Notifications that failed after their retries",
        ("route",),
    ),
    Metric("bastion_notification_queue_depth", _G, "Notifications waiting to be delivered"),
    Metric(
        "bastion_notifications_dropped_total",
        _C,
        "Notifications dropped because the queue was full",
    ),
    Metric("bastion_deadman_pings_total", _C, "Dead-man's switch pings delivered"),
    Metric("bastion_deadman_failures_total", _C, "Dead-man's switch pings that failed"),
    # -- the venue simulator process ------------------------------------------------------
    Metric(
        "bastion_venuesim_sessions",
        _G,
        "Account sessions of the simulator by state (logged_on, connected, disconnected)",
        ("state",),
    ),
    Metric("bastion_venuesim_orders_total", _C, "Orders the simulator received"),
    Metric("bastion_venuesim_fills_total", _C, "Fills the simulator made"),
    Metric("bastion_venuesim_resting_orders", _G, "Orders resting in the simulator's books"),
    Metric("bastion_venuesim_quotes_total", _C, "Quotes the simulator's feeds produced"),
    Metric("bastion_venuesim_up_seconds", _G, "Time since the simulator started"),
)

METRICS: Final[dict[str, Metric]] = {m.name: m for m in _ALL}
"""Every metric by name."""

HISTOGRAMS: Final = tuple(m for m in _ALL if m.kind == "histogram")
"""The histograms (served from prometheus_client ``Histogram`` s, not from samples)."""


def check_series(name: str, label_names: tuple[str, ...]) -> str | None:
    """Why a sample's series does not fit the catalogue (None: it does)."""
    metric = METRICS.get(name)
    if metric is None:
        return f"{name}: not in the catalogue"
    if metric.kind == "histogram":
        return f"{name}: a histogram, observed, not sampled"
    if tuple(sorted(metric.labels)) != tuple(sorted(label_names)):
        return f"{name}: labels {sorted(label_names)}, the catalogue says {sorted(metric.labels)}"
    return None


if len(METRICS) != len(_ALL):  # pragma: no cover - a duplicate name is a programming error
    raise RuntimeError("a metric is listed twice in the catalogue")
