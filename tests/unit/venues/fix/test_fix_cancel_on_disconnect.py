"""``fix_venue.cancel_on_disconnect`` on the node side: the Logon flag (8013=Y) for
``venue``, and ``DisconnectCancels`` after a reconnection, against the venue simulator
in this process over a real TCP FIX session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from bastion.clock import LiveClock
from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.journal import SqliteJournal
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.events import OrderCanceled
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.recovery.config import RecoveryConfig
from bastion.recovery.reconcile import reconcile
from bastion.venue_server.config import VenueSimConfig
from bastion.venue_server.ledger import VenueLedger
from bastion.venue_server.server import VenueSimServer
from bastion.venues.fix.adapter import FixVenueAdapter
from bastion.venues.fix.config import CancelOnDisconnect, FixVenueConfig
from bastion.venues.fix.disconnect import AfterReconnect, DisconnectCancels
from kit.fix_desk import listening_port, node_fix_venue_toml, venue_sim_toml
from kit.waiting import until

IID = "XYZ.SIM"
PASSWORD = "pw-cod-node-41"

NODE_TOML = """
strategies = []

[node]
id = "codnode"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

"""


class Run:
    """What a scenario leaves behind for the assertions."""

    def __init__(self) -> None:
        self.before: list[Order] = []
        self.after_logon: Order | None = None
        self.too_early: Order | None = None
        self.outcome: AfterReconnect | None = None
        self.canceled: dict[str, str] = {}  # client order id -> OrderCanceled reason


Scenario = Callable[[Kernel, FixVenueAdapter, DisconnectCancels, Run], Awaitable[None]]


def run(tmp_path: Path, mode: str, scenario: Scenario) -> tuple[Kernel, Run]:
    async def main() -> tuple[Kernel, Run]:
        (tmp_path / "venue-sim.toml").write_text(venue_sim_toml(0, feed_interval_ms=50))
        server = VenueSimServer(load_config(tmp_path / "venue-sim.toml", VenueSimConfig), tmp_path)
        venue_task = asyncio.create_task(server.run())
        await listening_port(server, venue_task)
        (tmp_path / "node.toml").write_text(
            NODE_TOML + node_fix_venue_toml(server.port, extra=f'cancel_on_disconnect = "{mode}"')
        )
        config = load_config(tmp_path / "node.toml", PaperConfig)
        journal = SqliteJournal(tmp_path / "journal.sqlite")
        kernel = Kernel(
            config=config, base_dir=tmp_path, clock=LiveClock(), epoch=1, journal=journal
        )
        venue = kernel.venue
        assert isinstance(venue, FixVenueAdapter)
        assert config.fix_venue is not None
        cancels = DisconnectCancels(venue, config.fix_venue.cancel_on_disconnect)
        result = Run()
        kernel.bus.subscribe(
            OrderCanceled, lambda e: result.canceled.setdefault(e.client_order_id, e.reason)
        )
        try:
            await venue.connect()
            assert await venue.wait_logged_on(10)
            venue.reconciled_logon = venue.logons  # as the node's start-up reconciliation
            await scenario(kernel, venue, cancels, result)
        finally:
            await venue.disconnect()
            server.stop_requested.set()
            await venue_task
            journal.close()
        return kernel, result

    return asyncio.run(main())


def resting(kernel: Kernel, price_raw: int = 100) -> Order:
    """A limit BUY far under the market (1.00), sent straight through the OMS."""
    order = kernel.execution.create_order(
        strategy_id="s",
        instrument_id=IID,
        venue="FIXSIM",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=2,
        price=price_raw,
    )
    kernel.execution.submit(order)
    return order


async def drop_and_reconcile(
    kernel: Kernel, venue: FixVenueAdapter, cancels: DisconnectCancels, result: Run
) -> None:
    """What the node's relogon task does: two resting orders, a dropped connection, the
    reconnect, the reconciliation, then ``after_reconcile``."""
    result.before = [resting(kernel), resting(kernel)]
    await until(lambda: all(o.status is OrderStatus.ACCEPTED for o in result.before))
    logons = venue.session.counters["logons"]
    venue.session.disconnect("network failure (test)")
    cancels.session_lost(kernel.execution.open_orders())
    await until(lambda: venue.session.counters["logons"] > logons and venue.session.logged_on)
    result.too_early = resting(kernel, price_raw=101)  # logged on, not reconciled yet
    report = await reconcile(
        kernel, epoch=1, config=RecoveryConfig(timeout_s=5), order_id_prefix="codnode-"
    )
    assert report.mismatches == []
    result.after_logon = resting(kernel, price_raw=101)  # a strategy trading again
    result.outcome = cancels.after_reconcile(
        kernel.execution.open_orders(), kernel.risk.cancel_order
    )
    await until(lambda: all(not o.is_open for o in result.before))
    assert result.after_logon is not None
    await until(lambda: result.after_logon is not None and result.after_logon.is_open)


def ledger_statuses(tmp_path: Path) -> dict[str, str]:
    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
        return {o.root_cl_ord_id: o.status for o in ledger.orders("acct")}


# -- the Logon flag ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "fields"),
    [("off", ()), ("venue", ((8013, "Y"),)), ("reconnect", ())],
)
def test_when_mode_set_then_logon_fields_follow(mode: str, fields: tuple[object, ...]) -> None:
    """Only ``venue`` asks the venue, with CancelOrdersOnDisconnect 8013=Y on the Logon."""
    config = msgspec.convert(
        {"port": 1, "sender_comp_id": "A", "target_comp_id": "B", "cancel_on_disconnect": mode},
        FixVenueConfig,
    )
    assert config.cancel_on_disconnect is CancelOnDisconnect(mode)
    assert config.settings().logon_fields == fields


def test_when_mode_unset_then_off() -> None:
    """The default keeps today's behaviour: orders survive a dropped session."""
    config = FixVenueConfig(port=1, sender_comp_id="A", target_comp_id="B")
    assert config.cancel_on_disconnect is CancelOnDisconnect.OFF


def test_when_mode_unknown_then_config_error_names_key_and_choices(tmp_path: Path) -> None:
    """A typo is a usage error naming ``fix_venue.cancel_on_disconnect`` and the values."""
    (tmp_path / "node.toml").write_text(
        NODE_TOML + node_fix_venue_toml(1, extra='cancel_on_disconnect = "yes"')
    )
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "node.toml", PaperConfig)
    assert "fix_venue.cancel_on_disconnect" in str(error.value)
    assert "off, venue, reconnect" in str(error.value)


# -- after a reconnection --------------------------------------------------------------------
def test_when_venue_mode_and_session_drops_then_venue_cancels_and_resend_brings_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``venue``: the simulator honours 8013=Y; the node learns the cancels by resend and
    sends none itself."""
    monkeypatch.setenv("BASTION_FIX_PASSWORD", PASSWORD)
    kernel, result = run(tmp_path, "venue", drop_and_reconcile)
    assert [o.status for o in result.before] == [OrderStatus.CANCELED] * 2
    # the venue's own reports, resent, not the reconciliation's order status answers
    assert [result.canceled[o.client_order_id] for o in result.before] == [
        "cancel on disconnect"
    ] * 2
    assert result.outcome is not None
    assert (result.outcome.open_at_drop, result.outcome.canceled_while_away) == (2, 2)
    assert (result.outcome.cancels_sent, result.outcome.open_after_reconcile) == (0, [])
    statuses = ledger_statuses(tmp_path)
    assert [statuses[o.client_order_id] for o in result.before] == ["4", "4"]
    assert kernel.venue.counters["disconnect_canceled_while_away"] == 2


def test_when_reconnect_mode_then_node_cancels_what_the_drop_left_open_not_new_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reconnect``: after the reconciliation the node cancels the orders from before the
    drop; an order sent on the new logon keeps working."""
    monkeypatch.setenv("BASTION_FIX_PASSWORD", PASSWORD)
    kernel, result = run(tmp_path, "reconnect", drop_and_reconcile)
    assert [o.status for o in result.before] == [OrderStatus.CANCELED] * 2
    assert result.outcome is not None
    assert (result.outcome.open_at_drop, result.outcome.canceled_while_away) == (2, 0)
    assert result.outcome.cancels_sent == 2
    assert result.outcome.open_after_reconcile == sorted(o.client_order_id for o in result.before)
    assert result.after_logon is not None and result.after_logon.is_open
    # an order sent between the logon and its reconciliation never reached the venue
    assert result.too_early is not None and result.too_early.status is OrderStatus.REJECTED
    assert result.too_early.client_order_id not in ledger_statuses(tmp_path)
    # answers to the node's own OrderCancelRequests (no text), not the venue's doing
    assert [result.canceled[o.client_order_id] for o in result.before] == ["canceled"] * 2
    statuses = ledger_statuses(tmp_path)
    assert [statuses[o.client_order_id] for o in result.before] == ["4", "4"]
    assert statuses[result.after_logon.client_order_id] == "0"  # New, resting
    assert kernel.venue.counters["disconnect_cancels_sent"] == 2


def test_when_off_then_orders_survive_and_are_reported_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``off``: nothing is canceled by anyone; the outcome lists them as still open."""
    monkeypatch.setenv("BASTION_FIX_PASSWORD", PASSWORD)

    async def scenario(
        kernel: Kernel, venue: FixVenueAdapter, cancels: DisconnectCancels, result: Run
    ) -> None:
        result.before = [resting(kernel), resting(kernel)]
        await until(lambda: all(o.status is OrderStatus.ACCEPTED for o in result.before))
        logons = venue.session.counters["logons"]
        venue.session.disconnect("network failure (test)")
        cancels.session_lost(kernel.execution.open_orders())
        await until(lambda: venue.session.counters["logons"] > logons and venue.session.logged_on)
        await reconcile(
            kernel, epoch=1, config=RecoveryConfig(timeout_s=5), order_id_prefix="codnode-"
        )
        result.outcome = cancels.after_reconcile(
            kernel.execution.open_orders(), kernel.risk.cancel_order
        )

    _, result = run(tmp_path, "off", scenario)
    assert [o.status for o in result.before] == [OrderStatus.ACCEPTED] * 2
    assert result.outcome is not None
    assert result.outcome.cancels_sent == 0
    assert result.outcome.open_after_reconcile == sorted(o.client_order_id for o in result.before)
    assert set(ledger_statuses(tmp_path).values()) == {"0"}


def test_when_session_down_again_then_cancels_deferred_to_next_logon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reconnect`` with the session gone again: nothing is sent (it would be refused);
    the orders are still remembered and canceled after the next logon."""
    monkeypatch.setenv("BASTION_FIX_PASSWORD", PASSWORD)

    async def scenario(
        kernel: Kernel, venue: FixVenueAdapter, cancels: DisconnectCancels, result: Run
    ) -> None:
        result.before = [resting(kernel)]
        await until(lambda: result.before[0].status is OrderStatus.ACCEPTED)
        logons = venue.session.counters["logons"]
        venue.session.disconnect("network failure (test)")
        cancels.session_lost(kernel.execution.open_orders())
        # the reconnection's reconciliation ends with the session down again (the backoff
        # has not even elapsed): nothing can be sent now
        deferred = cancels.after_reconcile(kernel.execution.open_orders(), kernel.risk.cancel_order)
        assert deferred is None
        assert result.before[0].status is OrderStatus.ACCEPTED
        await until(lambda: venue.session.counters["logons"] > logons and venue.session.logged_on)
        result.outcome = cancels.after_reconcile(
            kernel.execution.open_orders(), kernel.risk.cancel_order
        )
        await until(lambda: not result.before[0].is_open)

    _, result = run(tmp_path, "reconnect", scenario)
    assert result.outcome is not None
    assert (result.outcome.open_at_drop, result.outcome.cancels_sent) == (1, 1)
    assert result.before[0].status is OrderStatus.CANCELED
