"""The audit trail a console searches: the control socket's ``audit``.

``AuditTrail.read`` answers from the node's own journal, opened read-only with its
own connection (``bastion.journal.reader.open_readonly``; an encrypted journal with
its key), on a worker thread so the trading loop never waits on it. It reads only the
audit events (``AUDIT_TYPES``: operators' commands and refusals, approvals, overrides
and ceilings, trading-state changes, kills and resumes of venues and instruments,
strategies disabled and enabled, alerts fired, resolved, acknowledged and silenced,
console sign-ins), newest first, and examines at most ``MAX_SCAN`` sequence numbers
per call: ``more`` and ``next_before_seq`` say where the next page starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import msgspec

from bastion.journal._codec import new_decoder
from bastion.journal.reader import open_readonly
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
    """The audit records of the journal at ``path`` (``key``: its encryption key)."""

    def __init__(self, path: Path, key: bytes | None) -> None:
        self.path = path
        self._key = key

    def __repr__(self) -> str:
        return f"AuditTrail({str(self.path)!r})"

    def read(self, *, query: str, limit: int, before_seq: int | None) -> dict[str, Any]:
        """Up to ``limit`` records older than ``before_seq`` (None: from the newest),
        newest first, whose type, operator, source or summary holds ``query`` (any
        case). Blocking: call it off the trading loop."""
        needle = query.casefold()
        decoder = new_decoder()
        records: list[dict[str, Any]] = []
        marks = ",".join("?" * len(_TAGS))
        with open_readonly(self.path, self._key) as (db, _version):
            if before_seq is None:
                (last,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
                before_seq = last + 1
            floor = max(1, before_seq - MAX_SCAN)
            rows = db.execute(
                f"SELECT seq, ts_ns, type, payload FROM events WHERE seq < ? AND seq >= ? "
                f"AND type IN ({marks}) ORDER BY seq DESC",
                (before_seq, floor, *_TAGS),
            )
            for seq, ts_ns, type_name, payload in rows:
                try:
                    event = decoder.decode(payload)
                except (msgspec.DecodeError, TypeError):
                    event = None
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
