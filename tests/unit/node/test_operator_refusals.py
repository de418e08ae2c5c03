"""An operator command the node cannot do as asked raises ``CommandRefused`` (nothing
changes), and the control channel answers it as ``ok: false`` with the reason."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.errors import CommandRefused
from bastion.node.actions import NodeOperator
from bastion.node.approvals import Approvals
from bastion.node.authz import CommandGuard
from bastion.node.control import handle_line
from bastion.node.identity import Identities
from bastion.node.kernel import Kernel
from kit.control import me


@pytest.fixture
def operator(tmp_path: Path) -> NodeOperator:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="unused.csv", instrument="XYZ.SIM")],
        progress=False,
    )
    return NodeOperator(Kernel(config=config, base_dir=tmp_path, clock=SimClock(1), epoch=1))


def test_when_enabling_an_unknown_strategy_then_command_refused(operator: NodeOperator) -> None:
    """An unknown strategy is refused, naming it."""
    with pytest.raises(CommandRefused, match="no strategy 'nope' on this node"):
        asyncio.run(operator.enable(strategy="nope", who="ops", why="x"))


def test_when_resuming_an_unknown_instrument_then_command_refused(operator: NodeOperator) -> None:
    """An unknown instrument is refused, naming it."""
    with pytest.raises(CommandRefused, match="no instrument 'ABC' on this node"):
        asyncio.run(operator.resume(who="ops", why="x", instrument="ABC"))


def test_when_a_risk_override_names_a_bad_key_then_command_refused(
    operator: NodeOperator,
) -> None:
    """The risk overrides' configuration error is translated at the operator's edge;
    no override is set."""
    with pytest.raises(CommandRefused, match="not a limit that can be set"):
        asyncio.run(operator.risk_set(path="max_order_qty", value="2", for_s=60, who="o", why="y"))
    with pytest.raises(CommandRefused, match="no active override"):
        asyncio.run(operator.risk_clear(override_id="1.9", who="o", why="y"))
    assert operator.kernel.risk_overrides.active == {}


def test_when_a_command_is_refused_then_the_channel_answers_ok_false(
    operator: NodeOperator,
) -> None:
    """The refusal's reason goes back to the operator; the channel does not raise."""
    guard = CommandGuard(
        commands=operator,
        identities=Identities(None, now_ns=operator.kernel.clock.timestamp_ns),
        approvals=Approvals(clock=operator.kernel.clock, id_prefix="1."),
        window_s=lambda _action: 0.0,
        publish=operator.kernel.bus.publish,
        commit=operator.committed,
        clock=operator.kernel.clock,
    )
    line = asyncio.run(handle_line(b'{"cmd":"enable","strategy":"nope"}', guard, me()))
    response = msgspec.json.decode(line)
    assert response == {
        "ok": False,
        "error": "command failed: no strategy 'nope' on this node (strategies: none)",
    }
