"""What the core does with whatever a strategy process sends (``isolation.host``), with
the test playing the strategy process on the other end of its channel
(``kit.fake_worker``).

A message a well-behaved process never sends (bytes that are no message, a frame over
the limit, a tag or a type that is wrong, another strategy's id, a client order id not
granted or used, another strategy's order) fails the process: ``StrategyFailed`` with
the cause, journaled, its open orders canceled, nothing it sent later handled, the
other process untouched. An order the risk gate refuses (too large, an unknown
instrument or venue, the wrong venue, while HALTED) is denied, and the process goes
on. Throughout: what reached a venue is exactly what the gate let through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from bastion.isolation import protocol as p
from bastion.model.enums import OrderSide, OrderType, TimeInForce, TradingState
from bastion.model.events import CommandDenied, OrderDenied, StrategyFailed
from kit.fake_worker import BID, IID, MAX_LOTS, OTHER_IID, FakeWorker, IsolatedCore, submit
from kit.journal_reading import read_journal
from kit.waiting import until


def run(
    tmp_path: Path, body: Callable[[IsolatedCore], Awaitable[None]], *, journal: bool = False
) -> None:
    """Start a core whose processes the test plays, run ``body``, stop it all."""

    async def main() -> None:
        core = IsolatedCore(tmp_path, journal=journal)
        try:
            await core.start()
            await body(core)
        finally:
            await core.close()
        core.assert_nothing_around_the_gate()

    asyncio.run(main())


@dataclass
class Scene:
    """Two processes, each with one resting order: ``s1_order`` (process ``g1``, the
    one under test) and ``s2_order`` (``g2``)."""

    g1: FakeWorker
    g2: FakeWorker
    s1_order: str
    s2_order: str
    g2_unused_id: str


async def scene(core: IsolatedCore) -> Scene:
    g1, g2 = core.workers["g1"], core.workers["g2"]
    s1_order, s2_order = g1.next_id(), g2.next_id()
    await g2.send(submit("s2", s2_order))
    await g1.send(submit("s1", s1_order))
    await until(lambda: len(core.venues["SIM"].submitted) == 2, what="both orders at the venue")
    return Scene(g1, g2, s1_order, s2_order, g2.next_id())


def raw(*fields: object) -> bytes:
    """A frame of any msgpack value (``fields`` as an array)."""
    payload = msgspec.msgpack.encode(list(fields))
    return p.HEADER.pack(len(payload)) + payload


def prefix(s: Scene) -> str:
    assert s.g1.start_msg is not None
    return s.g1.start_msg.id_prefix


def last_granted(s: Scene) -> int:
    assert s.g1.start_msg is not None
    return s.g1.start_msg.ids[1]


Bad = Callable[[Scene], bytes]
VIOLATIONS: list[tuple[str, Bad, str]] = [
    ("not msgpack", lambda s: p.HEADER.pack(3) + b"\xc1\xc1\xc1", "protocol violation"),
    ("not an array", lambda s: p.HEADER.pack(1) + b"\x80", "Expected `array`"),
    ("a string not UTF-8", lambda s: p.HEADER.pack(4) + b"\x92\x15\xa1\x80", "protocol violation"),
    ("unknown tag", lambda s: raw(99, "s1"), "Invalid value 99"),
    ("a core's message", lambda s: p.frame(p.Ping()), "Invalid value 6"),
    (
        "quantity of the wrong type",
        lambda s: raw(21, "s1", s.g1.next_id(), IID, "SIM", "BUY", "LIMIT", "1", BID, "GTC", 0),
        "Expected `int`, got `str`",
    ),
    (
        "fields missing",
        lambda s: raw(21, "s1", s.g1.next_id()),
        "Expected `array` of at least length 11",
    ),
    (
        "side unknown",
        lambda s: raw(21, "s1", s.g1.next_id(), IID, "SIM", "SHORT", "LIMIT", 1, BID, "GTC", 0),
        "Invalid enum value 'SHORT'",
    ),
    ("frame over the limit", lambda s: p.HEADER.pack(p.MAX_WORKER_FRAME + 1), "more than the"),
    ("a 4 GiB frame", lambda s: p.HEADER.pack(2**32 - 1), "more than the 1048576 allowed"),
    (
        "another process's strategy",
        lambda s: p.frame(submit("s2", s.g1.next_id())),
        "strategy 's2' is not one of this process's",
    ),
    (
        "an unknown strategy",
        lambda s: p.frame(submit("nobody", s.g1.next_id())),
        "strategy 'nobody' is not one of this process's",
    ),
    (
        "an id past its grant",
        lambda s: p.frame(submit("s1", f"{prefix(s)}{last_granted(s) + 1}")),
        "was not granted to it",
    ),
    (
        "an id granted to the other process",
        lambda s: p.frame(submit("s1", s.g2_unused_id)),
        "was not granted to it",
    ),
    ("an id used", lambda s: p.frame(submit("s1", s.s1_order)), "or is used"),
    ("an id of its own making", lambda s: p.frame(submit("s1", "mine-1")), "not granted"),
    (
        "an id with a superscript digit",
        lambda s: p.frame(submit("s1", f"{prefix(s)}²")),
        "was not granted to it",
    ),
    (
        "an id in Arabic-Indic digits",
        lambda s: p.frame(submit("s1", f"{prefix(s)}{_arabic(s.g1.next_id())}")),
        "was not granted to it",
    ),
    (
        "an id with a leading zero",
        lambda s: p.frame(submit("s1", s.g1.next_id().replace(prefix(s), prefix(s) + "0"))),
        "was not granted to it",
    ),
    (
        "a limit order without a price",
        lambda s: p.frame(
            p.Submit(
                "s1",
                s.g1.next_id(),
                IID,
                "SIM",
                OrderSide.BUY,
                OrderType.LIMIT,
                1,
                None,
                TimeInForce.GTC,
                False,
            )
        ),
        "a limit order needs a price",
    ),
    (
        "cancel another strategy's order",
        lambda s: p.frame(p.Cancel("s1", s.s2_order)),
        "is not one of s1's",
    ),
    (
        "cancel in another strategy's name",
        lambda s: p.frame(p.Cancel("s2", s.s2_order)),
        "strategy 's2' is not one of this process's",
    ),
    (
        "modify another strategy's order",
        lambda s: p.frame(p.Modify("s1", s.s2_order, MAX_LOTS, BID)),
        "is not one of s1's",
    ),
    ("cancel an unknown order", lambda s: p.frame(p.Cancel("s1", "core-1-0")), "not one of"),
    (
        "subscribe to an unknown instrument",
        lambda s: p.frame(p.Subscribe("s1", "NOPE.SIM", False)),
        "unknown instrument 'NOPE.SIM'",
    ),
    (
        "another strategy's state",
        lambda s: p.frame(p.State("s2", b"{}")),
        "strategy 's2' is not one of this process's",
    ),
    (
        "another strategy's failure",
        lambda s: p.frame(p.Failed("s2", "boom")),
        "strategy 's2' is not one of this process's",
    ),
    ("more handled than sent", lambda s: p.frame(p.Done(10**9)), "inputs, of"),
    ("fewer handled than before", lambda s: p.frame(p.Done(-1)), "inputs, of"),
    ("goodbye unasked", lambda s: p.frame(p.Bye()), "goodbye"),
]


def _arabic(coid: str) -> str:
    digits = coid.rsplit("-", 1)[1]
    return "".join(chr(0x660 + int(d)) for d in digits)


@pytest.mark.parametrize(
    ("bad", "cause"), [(b, c) for _, b, c in VIOLATIONS], ids=[n for n, _, _ in VIOLATIONS]
)
def test_when_a_process_breaks_the_protocol_then_it_fails_and_nothing_after_is_handled(
    tmp_path: Path, bad: Bad, cause: str
) -> None:
    """The violation fails the process (journaled, with the cause), its order is canceled,
    the order it sends next never exists, and the other process trades on."""
    after = ""

    async def body(core: IsolatedCore) -> None:
        nonlocal after
        s = await scene(core)
        after = s.g1.next_id()
        await s.g1.send_raw(bad(s) + p.frame(submit("s1", after)))
        failure = await core.failed_with("g1")
        assert cause in failure
        assert [(e.strategy_id, e.error) for e in core.failed] == [("s1", failure)]
        assert core.venues["SIM"].canceled == [s.s1_order]
        assert core.process("g2").state == "running"
        await s.g2.send(submit("s2", s.g2.next_id()))
        await until(lambda: len(core.venues["SIM"].submitted) == 3, what="g2's next order")

    run(tmp_path, body, journal=True)
    journal = read_journal(tmp_path / "journal.sqlite")
    failed = [e for _, e in journal if isinstance(e, StrategyFailed)]
    assert [(e.strategy_id, cause in e.error) for e in failed[:1]] == [("s1", True)]
    assert after not in {getattr(e, "client_order_id", None) for _, e in journal}


DENIALS: list[tuple[str, Callable[[FakeWorker], p.Submit], str]] = [
    ("5,000 lots", lambda w: submit("s1", w.next_id(), 5_000, price=None), "MAX_ORDER_QUANTITY"),
    ("one lot over", lambda w: submit("s1", w.next_id(), MAX_LOTS + 1), "MAX_ORDER_QUANTITY"),
    ("zero lots", lambda w: submit("s1", w.next_id(), 0), "INVALID_QUANTITY"),
    ("negative lots", lambda w: submit("s1", w.next_id(), -5), "INVALID_QUANTITY"),
    ("a negative price", lambda w: submit("s1", w.next_id(), price=-1), "INVALID_PRICE"),
    (
        "an unknown instrument",
        lambda w: submit("s1", w.next_id(), instrument_id="NOPE.SIM"),
        "UNKNOWN_INSTRUMENT",
    ),
    ("an unknown venue", lambda w: submit("s1", w.next_id(), venue="NOPE"), "UNKNOWN_VENUE"),
    (
        "another instrument's venue",
        lambda w: submit("s1", w.next_id(), venue="OTHER"),
        "WRONG_VENUE",
    ),
    (
        "the other instrument at this one's venue",
        lambda w: submit("s1", w.next_id(), instrument_id=OTHER_IID, venue="SIM"),
        "WRONG_VENUE",
    ),
]


@pytest.mark.parametrize(
    ("order", "reason"), [(o, r) for _, o, r in DENIALS], ids=[n for n, _, _ in DENIALS]
)
def test_when_the_gate_refuses_an_order_then_denied_and_the_process_goes_on(
    tmp_path: Path, order: Callable[[FakeWorker], p.Submit], reason: str
) -> None:
    """Denied with the reason, answered to the process, nothing at a venue; its next order,
    one lot at the limit, goes through."""

    async def body(core: IsolatedCore) -> None:
        g1 = core.workers["g1"]
        await g1.send(order(g1), submit("s1", g1.next_id(), MAX_LOTS))
        await until(lambda: core.at_venues(), what="the next order at a venue")
        denied = [e for e in g1.events() if isinstance(e, OrderDenied)]
        assert [e.reason for e in denied] == [reason]
        assert len(core.at_venues()) == 1
        assert core.process("g1").state == "running" and core.failed == []

    run(tmp_path, body)


def test_when_halted_then_every_order_denied_and_amends_refused(tmp_path: Path) -> None:
    """While HALTED: a new order is denied TRADING_HALTED and an amend refused; nothing
    reaches a venue, and the process is not failed for sending them."""
    commands: list[CommandDenied] = []

    async def body(core: IsolatedCore) -> None:
        core.bus.subscribe(CommandDenied, commands.append)
        s = await scene(core)
        core.gate.set_trading_state(TradingState.HALTED, "test")
        await s.g1.send(
            submit("s1", s.g1.next_id()),
            p.Modify("s1", s.s1_order, 2, BID - 50),
            submit("s1", s.g1.next_id(), price=None),
            p.State("s1", b"last"),
        )
        await until(lambda: core.host.restored_states.get("s1") == b"last", what="all handled")
        denied = [e for e in s.g1.events() if isinstance(e, OrderDenied)]
        assert [e.reason for e in denied] == ["TRADING_HALTED"] * 2
        assert [c.reason for c in commands] == ["TRADING_HALTED"]
        assert len(core.at_venues()) == 2 and core.venues["SIM"].modified == []
        assert core.process("g1").state == "running"

    run(tmp_path, body)
