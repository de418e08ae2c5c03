"""What an alert rule may name: the node's metrics (with their labels) and the journal
events a rule can match.

The metrics are the node's catalogue (``bastion.monitor.catalogue``), where each is
stated once; ``METRIC_LABELS`` is its view for rules.
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
from bastion.monitor.catalogue import METRICS

METRIC_LABELS: Final[dict[str, tuple[str, ...]]] = {
    m.name: m.labels
    for m in METRICS.values()
    if m.kind != "histogram" and not m.name.startswith("bastion_venuesim_")
}
"""Every metric a rule may watch (gauges and counters of the node's catalogue: a
histogram has no one value; the venue simulator's are not the node's), with their label
names."""

ALERT_EVENTS: Final = (AlertFired, AlertResolved, AlertAcknowledged, AlertSilenced)

RULE_EVENTS: Final[dict[str, type[Event]]] = {
    kind.tag: kind.type for kind in EVENT_REGISTRY if kind.type not in ALERT_EVENTS
}
"""Every journal event a rule may match, by its journal tag (the alerts' own events are
left out: an alert about alerts would feed itself)."""
