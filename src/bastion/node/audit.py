"""The audit trail a console searches: the control socket's ``audit``.

``AuditTrail.read`` answers from the node's own journal, opened for reading with its
own connection (``bastion.journal.readable``: the SQLite file ``mode=ro``, an encrypted
one with its key; a PostgreSQL journal through ``PostgresJournalReader``, selects only),
on a worker thread so the trading loop never waits on it. It reads only the
audit events (``AUDIT_TYPES``: operators' commands and refusals, approvals, overrides
and ceilings, trading-state changes, kills and resumes of venues and instruments,
strategies disabled and enabled, alerts fired, resolved, acknowledged and silenced,
console sign-ins), newest first, and examines at most ``MAX_SCAN`` sequence numbers
per call: ``more`` and ``next_before_seq`` say where the next page starts.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any, Final

import msgspec

from bastion.journal.locator import JournalLocator
from bastion.model import events as ev
from bastion.node.view import iso

__all__ = ["AUDIT_TYPES", "MAX_SCAN", "AuditTrail"]

MAX_SCAN: Final = 20_000
"""Sequence numbers one ``audit`` call looks through at most (whatever their type)."""

AUDIT_TYPES: Final[tuple[type[ev.Event], ...]] = (
    ev.OperatorCommand,
    ev.OperatorRefused,
    ev.OperatorAuth,
    ev.ApprovalRequested,
    ev.ApprovalGranted,
    ev.RiskCeilingRaised,
    ev.RiskOverrideSet,
    ev.RiskOverrideEnded,
    ev.RiskLimitsChanged,
    ev.TradingStateChanged,
    ev.VenueHalted,
    ev.VenueResumed,
    ev.InstrumentPaused,
    ev.InstrumentResumed,
    ev.StrategyDisabled,
    ev.StrategyEnabled,
    ev.AlertFired,
    ev.AlertResolved,
    ev.AlertAcknowledged,
    ev.AlertSilenced,
    ev.LiveArmed,
)
_TAGS: Final = tuple(str(t.__struct_config__.tag) for t in AUDIT_TYPES)
_WHO: Final = ("operator", "who")
_NOT_SUMMARY: Final = frozenset(
    {"ts_ns", "operator", "who", "source", "roles", "uid", "pid", "config", "runbook"}
)


class AuditTrail:
    """The audit records of the journal ``journal`` locates (SQLite or PostgreSQL)."""

    def __init__(self, journal: JournalLocator) -> None:
        self.journal = journal

    def __repr__(self) -> str:
        return f"AuditTrail({self.journal.where!r})"

    def read(self, *, query: str, limit: int, before_seq: int | None) -> dict[str, Any]:
        """Up to ``limit`` records older than ``before_seq`` (None: from the newest),
        newest first, whose type, operator, source or summary holds ``query`` (any
        case). Blocking: call it off the trading loop."""
        needle = query.casefold()
        records: list[dict[str, Any]] = []
        with closing(self.journal.open()) as journal:
            if before_seq is None:
                before_seq = journal.committed_seq() + 1
            floor = max(1, before_seq - MAX_SCAN)
            found = journal.events_of(_TAGS, after=floor - 1, before=before_seq, newest_first=True)
            for seq, ts_ns, type_name, event in found:
                record = _record(seq, ts_ns, type_name, event)
                if needle and not any(
                    needle in (record[k] or "").casefold()
                    for k in ("type", "operator", "source", "summary")
                ):
                    continue
                if len(records) == limit:
                    return {"records": records, "more": True, "next_before_seq": records[-1]["seq"]}
                records.append(record)
        more = floor > 1
        return {"records": records, "more": more, "next_before_seq": floor if more else None}


def _record(seq: int, ts_ns: int, type_name: str, event: ev.Event | None) -> dict[str, Any]:
    if event is None:
        return {
            "seq": seq,
            "ts": iso(ts_ns),
            "type": type_name,
            "operator": None,
            "source": None,
            "summary": "undecodable record",
        }
    fields = msgspec.structs.asdict(event)
    who = next((fields[k] for k in _WHO if fields.get(k)), None)
    source = fields.get("source") or None
    summary = " ".join(
        f"{k}={_text(v)}"
        for k, v in fields.items()
        if k not in _NOT_SUMMARY and v not in ("", None, [], {})
    )
    return {
        "seq": seq,
        "ts": iso(ts_ns),
        "type": type_name,
        "operator": who,
        "source": source,
        "summary": summary,
    }


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "value"):  # an enum
        return str(value.value)
    return msgspec.json.encode(value).decode()
