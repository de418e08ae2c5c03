"""What an alert rule may name: the node's metrics (with their labels) and the journal
events a rule can match.

The metric names are the monitoring plan's contract (every series a ``Sample`` holds);
the metric catalogue (``bastion.monitor.catalogue``) states them with their kinds and
help, and replaces ``METRIC_LABELS`` once both are in the same tree: this is the only
copy here.
"""

from __future__ import annotations

from typing import Final

from bastion.model.events import (
    EVENT_REGISTRY,
    AlertAcknowledged,
    AlertFired,
    AlertResolved,
    AlertSilenced,
    Event,
)

_VENUE = ("venue",)
_STRATEGY_VENUE = ("strategy", "venue")
_STRATEGY_INSTRUMENT = ("strategy", "instrument")
_INSTRUMENT = ("instrument",)
_ROUTE = ("route",)

METRIC_LABELS: Final[dict[str, tuple[str, ...]]] = {
    # venues
    "bastion_venue_connected": _VENUE,
    "bastion_venue_reconciled": _VENUE,
    "bastion_venue_halted": _VENUE,
    "bastion_venue_logons_total": _VENUE,
    "bastion_venue_disconnects_total": _VENUE,
    "bastion_venue_heartbeat_rtt_seconds": _VENUE,
    "bastion_venue_last_message_age_seconds": _VENUE,
    "bastion_venue_resend_requests_total": _VENUE,
    "bastion_venue_gap_fills_total": _VENUE,
    # orders
    "bastion_orders_submitted_total": _STRATEGY_VENUE,
    "bastion_orders_accepted_total": _STRATEGY_VENUE,
    "bastion_orders_denied_total": ("strategy", "reason"),
    "bastion_orders_rejected_total": _STRATEGY_VENUE,
    "bastion_orders_canceled_total": _STRATEGY_VENUE,
    "bastion_orders_filled_total": _STRATEGY_VENUE,
    "bastion_fills_total": _STRATEGY_VENUE,
    "bastion_orders_fill_ratio": ("strategy",),
    "bastion_orders_open": _VENUE,
    # risk
    "bastion_trading_state": ("state",),
    "bastion_risk_limit_utilisation": ("limit", "scope"),
    "bastion_kill_switch_activations_total": (),
    "bastion_strategy_disabled": ("strategy",),
    "bastion_strategies_disabled": (),
    "bastion_instrument_paused": _INSTRUMENT,
    "bastion_instruments_paused": (),
    # portfolio
    "bastion_position": _STRATEGY_INSTRUMENT,
    "bastion_realized_pnl": _STRATEGY_INSTRUMENT,
    "bastion_unrealized_pnl": _STRATEGY_INSTRUMENT,
    "bastion_fees": _STRATEGY_INSTRUMENT,
    "bastion_cash": (),
    "bastion_equity": (),
    "bastion_pnl": (),
    "bastion_exposure_gross": (),
    "bastion_exposure_net": (),
    # market data
    "bastion_quotes_total": _INSTRUMENT,
    "bastion_quotes_per_second": _INSTRUMENT,
    "bastion_quote_age_seconds": _INSTRUMENT,
    "bastion_md_rejects_total": ("feed", "reason"),
    # journal
    "bastion_journal_events_total": (),
    "bastion_journal_events_per_second": (),
    "bastion_journal_commit_lag_events": (),
    "bastion_journal_commit_lag_seconds": (),
    "bastion_journal_queue_depth": (),
    "bastion_journal_bytes": (),
    "bastion_journal_snapshot_age_seconds": (),
    "bastion_journal_writable": (),
    # host and process
    "bastion_process_cpu_percent": (),
    "bastion_process_memory_rss_bytes": (),
    "bastion_process_open_fds": (),
    "bastion_disk_free_bytes": (),
    "bastion_disk_free_ratio": (),
    "bastion_event_loop_lag_seconds": (),
    "bastion_clock_offset_seconds": (),
    "bastion_clock_synchronized": (),
    # node
    "bastion_node_ready": (),
    "bastion_node_info": ("node", "mode", "version", "epoch"),
    "bastion_node_up_seconds": (),
    # alerting (this package's own, through ``AlertEngine.sources``)
    "bastion_alerts_firing": ("severity",),
    "bastion_notifications_sent_total": _ROUTE,
    "bastion_notifications_failed_total": _ROUTE,
    "bastion_notification_queue_depth": (),
    "bastion_notifications_dropped_total": (),
    "bastion_deadman_pings_total": (),
    "bastion_deadman_failures_total": (),
}
"""Every metric a rule may watch (gauges and counters: a histogram has no one value),
with its label names."""

ALERT_EVENTS: Final = (AlertFired, AlertResolved, AlertAcknowledged, AlertSilenced)

RULE_EVENTS: Final[dict[str, type[Event]]] = {
    kind.tag: kind.type for kind in EVENT_REGISTRY if kind.type not in ALERT_EVENTS
}
"""Every journal event a rule may match, by its journal tag (the alerts' own events are
left out: an alert about alerts would feed itself)."""
