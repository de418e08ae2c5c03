"""The node's alerts as its journal records them: which are firing (``AlertFired`` not
yet followed by its ``AlertResolved``), which of those an operator acknowledged, and
the silences still running (``AlertSilenced``).

The kernel keeps one ``AlertBook`` up to date from the bus while the node runs, the
recovery replay applies the journaled alert events to it, and the snapshot stores it:
on start the alert engine takes the firing alerts over (``AlertEngine.take_over``), so
an alert keeps its id and its start across a restart and is neither announced again nor
left without its resolution. It holds plain data only, never a rule: the engine decides
what each recovered alert has become.
"""

from __future__ import annotations

import msgspec

from bastion.bus import MessageBus
from bastion.model.events import (
    AlertAcknowledged,
    AlertFired,
    AlertResolved,
    AlertSilenced,
    Event,
)
from bastion.monitor.alerts.known import ALERT_EVENTS


class FiringAlert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert journaled as fired and not as resolved (a snapshot holds these)."""

    alert_id: str
    alert: str
    """Its rule's name."""
    severity: str
    labels: dict[str, str]
    summary: str
    value: float
    runbook: str
    fired_ns: int
    silenced: bool = False
    """A silence covered it when it fired: nobody was notified then."""
    acknowledged_by: str | None = None
    acknowledged_why: str = ""
    acknowledged_ns: int | None = None


class SilenceState(msgspec.Struct, frozen=True, kw_only=True):
    """A silence journaled (``AlertSilenced``) that has not run out."""

    silence_id: str
    alert: str
    labels: dict[str, str]
    until_ns: int
    who: str
    why: str


class AlertBook:
    """The firing alerts (by id) and the running silences (by id) of the journal."""

    def __init__(self) -> None:
        self.firing: dict[str, FiringAlert] = {}
        self.silences: dict[str, SilenceState] = {}

    def __repr__(self) -> str:
        return f"AlertBook(firing={sorted(self.firing)}, silences={sorted(self.silences)})"

    def attach(self, bus: MessageBus) -> None:
        """Follow the alert events published on ``bus`` (those the node journals)."""
        for kind in ALERT_EVENTS:
            bus.subscribe(kind, self.apply)

    def apply(self, event: Event) -> None:
        """Take one journaled alert event into account (any other event is ignored)."""
        if isinstance(event, AlertFired):
            self.firing[event.alert_id] = FiringAlert(
                alert_id=event.alert_id,
                alert=event.alert,
                severity=event.severity,
                labels=dict(event.labels),
                summary=event.summary,
                value=event.value,
                runbook=event.runbook,
                fired_ns=event.ts_ns,
                silenced=event.silenced,
            )
        elif isinstance(event, AlertResolved):
            self.firing.pop(event.alert_id, None)
        elif isinstance(event, AlertAcknowledged):
            firing = self.firing.get(event.alert_id)
            if firing is not None:
                self.firing[event.alert_id] = msgspec.structs.replace(
                    firing,
                    acknowledged_by=event.who,
                    acknowledged_why=event.why,
                    acknowledged_ns=event.ts_ns,
                )
        elif isinstance(event, AlertSilenced):
            self._drop_silences_ended(event.ts_ns)
            self.silences[event.silence_id] = SilenceState(
                silence_id=event.silence_id,
                alert=event.alert,
                labels=dict(event.labels),
                until_ns=event.until_ns,
                who=event.who,
                why=event.why,
            )

    def restore(self, firing: list[FiringAlert], silences: list[SilenceState]) -> None:
        """Start from a snapshot's alerts and silences."""
        self.firing = {f.alert_id: f for f in firing}
        self.silences = {s.silence_id: s for s in silences}

    def running_silences(self, now_ns: int) -> list[SilenceState]:
        """The silences that have not run out by ``now_ns``."""
        self._drop_silences_ended(now_ns)
        return list(self.silences.values())

    def _drop_silences_ended(self, now_ns: int) -> None:
        for silence_id in [k for k, s in self.silences.items() if s.until_ns <= now_ns]:
            del self.silences[silence_id]
