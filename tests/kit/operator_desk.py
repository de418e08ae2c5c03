"""A kernel with the node's operator commands behind the control channel's guard, asked
as the operators of ``kit.control`` (what a console's commands run on), journaling to
the journal a test gives it (SQLite or PostgreSQL) and reading its audit trail back
from it; and the audit trail's drill, whose answers a test compares across backends."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from bastion.clock import SimClock
from bastion.journal.base import Journal
from bastion.journal.locator import JournalLocator
from bastion.model.enums import OrderSide, OrderType
from bastion.model.orders import Order
from bastion.node.actions import NodeOperator
from bastion.node.approvals import Approvals
from bastion.node.audit import AuditTrail
from bastion.node.authz import CommandGuard
from bastion.node.control import handle_line
from bastion.node.identity import Identities
from bastion.risk.config import RiskConfig
from kit.control import UIDS, desk_store, peer
from kit.risk_kernel import IID, build
from kit.strategies import IDLE_STRATEGY


class Desk:
    """The kernel (strategies ``a`` and ``b``), its operator and the guard before it."""

    def __init__(
        self,
        tmp_path: Path,
        journal: Journal,
        readable: JournalLocator,
        *,
        risk: RiskConfig | None = None,
    ) -> None:
        (tmp_path / "idle.py").write_text(IDLE_STRATEGY)
        if risk is None:
            risk = RiskConfig(max_order_quantity=Decimal(10), max_long_quantity=Decimal(4))
        self.kernel = build(tmp_path, journal, risk)
        self.kernel.start()
        self.journal = journal
        self.operator = NodeOperator(self.kernel)
        self.operator.audit_trail = AuditTrail(readable)
        users = desk_store(tmp_path / "users", SimClock(self.kernel.clock.timestamp_ns()))
        self.guard = CommandGuard(
            commands=self.operator,
            identities=Identities(users, now_ns=self.kernel.clock.timestamp_ns),
            approvals=Approvals(clock=self.kernel.clock, id_prefix="1."),
            window_s=lambda _action: 60.0,
            publish=self.kernel.bus.publish,
            commit=self.operator.committed,
            clock=self.kernel.clock,
        )

    def ask(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        """``request`` on the control channel as operator ``name``; the answer."""
        line = json.dumps(request).encode()
        answer = asyncio.run(handle_line(line, self.guard, peer(UIDS[name])))
        decoded: dict[str, Any] = json.loads(answer)
        return decoded

    def limit_buy(self, strategy: str) -> Order | None:
        """A resting limit buy of one lot by ``strategy`` (None: the gate denied it)."""
        order = self.kernel.execution.create_order(
            strategy_id=strategy,
            instrument_id=IID,
            venue="SIM",
            side=OrderSide.BUY,
            order_type=OrderType.LIMIT,
            quantity=1,
            price=9_000,
        )
        sent = self.kernel.risk.submit_order(order)
        self.kernel.venue.flush()
        return order if sent else None


def audit_drill(desk: Desk) -> dict[str, Any]:
    """vic (a viewer: refused) and then rita (a risk officer) kill the node, then the
    audit trail as a console asks for it: ``all`` of it, the ``refused`` records, the
    ``first`` page of one and the page ``older`` than it, and ``bad`` limits (0, 501)."""
    for name in ("vic", "rita"):
        desk.ask(name, {"cmd": "kill", "why": f"drill by {name}"})
    answers: dict[str, Any] = {
        "all": desk.ask("vic", {"cmd": "audit", "query": "", "limit": 500}),
        "refused": desk.ask("vic", {"cmd": "audit", "query": "REFUSED", "limit": 10}),
        "first": desk.ask("vic", {"cmd": "audit", "query": "", "limit": 1}),
    }
    newest = answers["first"]["records"][0]["seq"] if answers["first"].get("records") else None
    answers["older"] = desk.ask(
        "vic", {"cmd": "audit", "query": "", "limit": 1, "before_seq": newest}
    )
    answers["bad"] = [desk.ask("vic", {"cmd": "audit", "limit": bad}) for bad in (0, 501)]
    return answers
