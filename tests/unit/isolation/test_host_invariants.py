"""Whatever a strategy process sends, no order reaches a venue without the risk gate,
and the core stays responsive (``isolation.host``, the process played by the test:
``kit.fake_worker``).

- Any sequence of messages, good and bad, with the node HALTED at some point: the
  orders the gate let through are exactly those an independent model of the protocol
  and the limits expects, the venues got exactly those, and the process is failed
  (``protocol violation``) if and only if it sent a message it must never send, with
  nothing after that message handled.
- A flood of thousands of commands in one write: a kill asked meanwhile is served
  within 100 ms, and nothing passes the gate after it.
- A flood with a violation in its middle: exactly the commands before it are handled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.isolation import protocol as p
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce, TradingState
from kit.fake_worker import (
    BID,
    CONFINED,
    IID,
    MAX_LOTS,
    OTHER_IID,
    FakeWorker,
    IsolatedCore,
    submit,
)
from kit.waiting import until

VENUE_OF = {IID: "SIM", OTHER_IID: "OTHER"}


# -- what a process may send, as a test draws it ----------------------------------------


@dataclass(frozen=True)
class SubmitCmd:
    strategy: str
    coid: str
    """fresh, used, past_grant, other_process, foreign, leading_zero or arabic"""
    instrument: str
    venue: str
    quantity: int
    form: str
    """limit, market, limit_without_price, market_with_price or negative_price"""


@dataclass(frozen=True)
class CancelCmd:
    strategy: str
    target: str
    """resting (its order from the start), last (its last order), other (the other
    process's order) or unknown"""


@dataclass(frozen=True)
class ModifyCmd:
    strategy: str
    target: str
    quantity: int
    price: int | None


@dataclass(frozen=True)
class ControlCmd:
    kind: str


@dataclass(frozen=True)
class Junk:
    data: bytes


Command = SubmitCmd | CancelCmd | ModifyCmd | ControlCmd | Junk

CONTROLS = {
    "done_past_sent": True,
    "done_negative": True,
    "bye": True,
    "subscribe_unknown": True,
    "state_other": True,
    "failed_other": True,
    "oversized": True,
    "subscribe": False,
    "state": False,
    "ready": False,
}
"""Control messages and whether each is a violation."""


def _not_a_message(data: bytes) -> bool:
    try:
        p.WORKER_DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return True
    return False


strategy_ids = st.sampled_from(("s1", "s1", "s1", "s2", "nobody"))
targets = st.sampled_from(("resting", "last", "other", "unknown"))
routes = st.sampled_from(
    ((IID, "SIM"),) * 5
    + ((OTHER_IID, "OTHER"),) * 2
    + ((IID, "OTHER"), (OTHER_IID, "SIM"), ("NOPE.SIM", "SIM"), (IID, "NOPE"))
)
"""(instrument, venue): mostly right, sometimes the wrong or an unknown one."""
quantities = st.one_of(
    st.integers(1, MAX_LOTS),
    st.integers(1, MAX_LOTS),
    st.integers(-2, 0),
    st.sampled_from((MAX_LOTS + 1, 5_000, 2**64 - 1)),
)
"""Mostly within ``max_order_quantity``."""
well_formed: st.SearchStrategy[Command] = st.one_of(
    st.builds(
        lambda route, quantity, form: SubmitCmd("s1", "fresh", route[0], route[1], quantity, form),
        routes,
        quantities,
        st.sampled_from(("limit", "limit", "market", "market", "negative_price")),
    ),
    st.builds(CancelCmd, strategy=st.just("s1"), target=st.sampled_from(("resting", "last"))),
    st.builds(
        ModifyCmd,
        strategy=st.just("s1"),
        target=st.sampled_from(("resting", "last")),
        quantity=quantities,
        price=st.sampled_from((BID - 10, BID - 20, -5, None)),
    ),
)
"""Commands within the protocol (the gate may still deny them)."""
COID_KINDS: tuple[str, ...] = ("fresh", "fresh", "used", "past_grant", "other_process")
COID_KINDS += ("foreign", "leading_zero", "arabic")
anything: st.SearchStrategy[Command] = st.one_of(
    st.builds(
        lambda strategy, coid, route, quantity, form: SubmitCmd(
            strategy, coid, route[0], route[1], quantity, form
        ),
        strategy_ids,
        st.sampled_from(COID_KINDS),
        routes,
        quantities,
        st.sampled_from(
            ("limit", "market", "limit_without_price", "market_with_price", "negative_price")
        ),
    ),
    st.builds(CancelCmd, strategy=strategy_ids, target=targets),
    st.builds(
        ModifyCmd,
        strategy=strategy_ids,
        target=targets,
        quantity=st.integers(-1, 130),
        price=st.sampled_from((BID - 10, -5, None)),
    ),
    st.builds(ControlCmd, kind=st.sampled_from(sorted(CONTROLS))),
    st.builds(Junk, data=st.binary(max_size=24).filter(_not_a_message)),
)
"""Any command, within the protocol or not."""


# -- the model: what the host must do with each ------------------------------------------


class Model:
    """Plays process ``g1`` (strategy ``s1``): turns each drawn command into bytes, and
    says independently of the host what must come of it: a violation (the process
    fails), an order the gate lets through, or neither."""

    def __init__(
        self, worker: FakeWorker, resting: str, other: str, other_id: str, *, passed: list[str]
    ) -> None:
        assert worker.start_msg is not None
        self.worker = worker
        self.prefix = worker.start_msg.id_prefix
        self.last_granted = worker.start_msg.ids[1]
        self.resting = resting
        self.other = other
        self.other_id = other_id
        self.last = resting
        self.used = [resting]
        self.halted = False
        self.passed = list(passed)
        """The orders the gate must have let through (from the start: ``passed``)."""
        self.violation: Command | None = None

    def frame(self, cmd: Command) -> bytes:
        """``cmd``'s bytes; records what the host must do with it."""
        data, violation = self._frame(cmd)
        if violation and self.violation is None:
            self.violation = cmd
        return data

    def _frame(self, cmd: Command) -> tuple[bytes, bool]:
        if isinstance(cmd, Junk):
            return p.HEADER.pack(len(cmd.data)) + cmd.data, True
        if isinstance(cmd, ControlCmd):
            return self._control(cmd.kind), CONTROLS[cmd.kind]
        if isinstance(cmd, CancelCmd | ModifyCmd):
            coid = {"resting": self.resting, "last": self.last, "other": self.other}.get(
                cmd.target, "core-1-0"
            )
            bad = cmd.strategy != "s1" or cmd.target in ("other", "unknown")
            if isinstance(cmd, CancelCmd):
                return p.frame(p.Cancel(cmd.strategy, coid)), bad
            return p.frame(p.Modify(cmd.strategy, coid, cmd.quantity, cmd.price)), bad
        return self._submit(cmd)

    def _submit(self, cmd: SubmitCmd) -> tuple[bytes, bool]:
        coid = self._coid(cmd.coid)
        price = {
            "limit": BID - 10,
            "limit_without_price": None,
            "market": None,
            "market_with_price": BID,
            "negative_price": -5,
        }[cmd.form]
        limit = cmd.form in ("limit", "limit_without_price", "negative_price")
        message = p.Submit(
            cmd.strategy,
            coid,
            cmd.instrument,
            cmd.venue,
            OrderSide.BUY,
            OrderType.LIMIT if limit else OrderType.MARKET,
            cmd.quantity,
            price,
            TimeInForce.GTC,
            False,
        )
        bad = (
            cmd.strategy != "s1"
            or cmd.coid != "fresh"
            or cmd.form in ("limit_without_price", "market_with_price")
        )
        if not bad and self.violation is None:
            self.last = coid
            passes = (
                not self.halted
                and VENUE_OF.get(cmd.instrument) == cmd.venue
                and 0 < cmd.quantity <= MAX_LOTS
                and (price is None or price > 0)
            )
            if passes:
                self.passed.append(coid)
        return p.frame(message), bad

    def _coid(self, kind: str) -> str:
        if kind == "fresh":
            coid = self.worker.next_id()
            self.used.append(coid)
            return coid
        number = self.used[-1].rsplit("-", 1)[1]
        return {
            "used": self.used[-1],
            "past_grant": f"{self.prefix}{self.last_granted + 1}",
            "other_process": self.other_id,
            "foreign": "mine-1",
            "leading_zero": f"{self.prefix}0{number}",
            "arabic": self.prefix + "".join(chr(0x660 + int(d)) for d in number),
        }[kind]

    def _control(self, kind: str) -> bytes:
        if kind == "oversized":
            return p.HEADER.pack(p.MAX_WORKER_FRAME + 1)
        messages: dict[str, p.WorkerMessage] = {
            "done_past_sent": p.Done(10**12),
            "done_negative": p.Done(-1),
            "bye": p.Bye(),
            "subscribe_unknown": p.Subscribe("s1", "NOPE.SIM", False),
            "state_other": p.State("s2", b"x"),
            "failed_other": p.Failed("s2", "boom"),
            "subscribe": p.Subscribe("s1", IID, False),
            "state": p.State("s1", b"x"),
            "ready": p.Ready(CONFINED),
        }
        return p.frame(messages[kind])


async def handled(core: IsolatedCore, worker: FakeWorker, mark: bytes) -> None:
    """Send a ``State`` mark and wait until the host has it (all before it handled), or
    the process is failed."""
    await worker.send(p.State("s1", mark))
    proc = core.process("g1")
    await until(
        lambda: proc.state == "failed" or core.host.restored_states.get("s1") == mark,
        what="the host through the commands",
    )


@settings(max_examples=80, derandomize=True, database=None, deadline=None)
@given(
    before=st.lists(well_formed, max_size=15),
    odd=st.none() | anything,
    after=st.lists(well_formed, max_size=10),
    halt_at=st.none() | st.integers(0, 27),
)
def test_whatever_a_process_sends_then_only_what_the_gate_passed_reaches_a_venue(
    tmp_path_factory: pytest.TempPathFactory,
    before: list[Command],
    odd: Command | None,
    after: list[Command],
    halt_at: int | None,
) -> None:
    """Commands within the protocol around one drawn from anything (or none), the node
    HALTED after ``halt_at`` of them (None: never): the orders through the gate are
    exactly the model's; the process fails if and only if it broke the protocol, and
    nothing after the break is handled."""
    sequence = [*before, *([] if odd is None else [odd]), *after]
    split = len(sequence) if halt_at is None else halt_at
    base = tmp_path_factory.mktemp("host")

    async def main() -> None:
        core = IsolatedCore(base)
        try:
            workers = await core.start()
            g1, g2 = workers["g1"], workers["g2"]
            resting, other = g1.next_id(), g2.next_id()
            await g2.send(submit("s2", other))
            await g1.send(submit("s1", resting))
            await until(lambda: len(core.at_venues()) == 2, what="the resting orders")
            model = Model(g1, resting, other, g2.next_id(), passed=core.counted.passed)
            await g1.send_raw(b"".join(model.frame(cmd) for cmd in sequence[:split]))
            await handled(core, g1, b"mid")
            core.gate.set_trading_state(TradingState.HALTED, "test")
            model.halted = True
            await g1.send_raw(b"".join(model.frame(cmd) for cmd in sequence[split:]))
            await handled(core, g1, b"end")

            proc = core.process("g1")
            assert core.counted.passed == model.passed
            if model.violation is None:
                assert proc.state == "running", proc.failure
                assert core.failed == []
            else:
                assert proc.state == "failed"
                assert proc.failure.startswith("protocol violation"), (
                    model.violation,
                    proc.failure,
                )
                assert [e.strategy_id for e in core.failed] == ["s1"]
            assert core.process("g2").state == "running"
            other_order = core.execution.order(other)
            assert other_order is not None and other_order.is_open
            assert other not in core.venues["SIM"].canceled
            core.assert_nothing_around_the_gate()
        finally:
            await core.close()

    asyncio.run(main())


# -- floods -----------------------------------------------------------------------------

FLOOD_ORDERS = 4_000
"""Submits in a flood: the first range the host grants holds 4,096 ids."""


def flood(worker: FakeWorker) -> tuple[bytes, int]:
    """Thousands of commands, all within the protocol: 1-lot orders, one in 7 of them
    5,000 lots, a cancel after every 3rd and an amend after every 5th of an order sent
    before. Returns the bytes and how many of the orders the gate would pass."""
    frames = []
    sent: list[str] = []
    small = 0
    for i in range(FLOOD_ORDERS):
        coid = worker.next_id()
        big = i % 7 == 6
        small += not big
        frames.append(p.frame(submit("s1", coid, 5_000 if big else 1)))
        sent.append(coid)
        if i % 3 == 2:
            frames.append(p.frame(p.Cancel("s1", sent[i - 2])))
        if i % 5 == 4:
            frames.append(p.frame(p.Modify("s1", sent[i - 1], 2, BID - 20)))
    return b"".join(frames), small


def test_when_a_process_floods_commands_then_a_kill_meanwhile_is_served_within_100_ms(
    tmp_path: Path,
) -> None:
    """Kill asked once the first flood order has passed: served within 100 ms while the
    flood is still being handled; afterwards nothing passes and every open order was
    canceled; the process, within the protocol, runs on."""

    async def main() -> None:
        core = IsolatedCore(tmp_path)
        try:
            g1 = (await core.start())["g1"]
            data, small = flood(g1)
            sending = asyncio.create_task(g1.send_raw(data))
            await until(lambda: core.counted.passed, interval_s=0.001, what="the flood handled")
            loop = asyncio.get_running_loop()
            served: asyncio.Future[tuple[float, int, list[str]]] = loop.create_future()
            asked = time.perf_counter()

            def kill() -> None:
                open_orders = [o.client_order_id for o in core.execution.open_orders()]
                core.kill("flood")
                served.set_result(
                    (time.perf_counter() - asked, len(core.counted.passed), open_orders)
                )

            loop.call_soon(kill)
            kill_s, passed_at_kill, open_at_kill = await served
            await asyncio.wait_for(sending, timeout=10)
            await handled(core, g1, b"end")

            assert kill_s < 0.1
            assert passed_at_kill < small  # it was served in the middle of the flood
            assert len(core.counted.passed) == passed_at_kill
            assert set(open_at_kill) <= set(core.venues["SIM"].canceled)
            assert {o.status for o in core.execution.open_orders()} <= {OrderStatus.PENDING_CANCEL}
            assert core.process("g1").state == "running" and core.failed == []
            core.assert_nothing_around_the_gate()
        finally:
            await core.close()

    asyncio.run(main())


def test_when_a_flood_breaks_the_protocol_midway_then_exactly_what_came_before_is_handled(
    tmp_path: Path,
) -> None:
    """3,000 1-lot orders, the 1,501st in another strategy's name: 1,500 orders exist, all
    at the venue, and none after; the process failed, its orders canceled."""

    async def main() -> None:
        core = IsolatedCore(tmp_path)
        try:
            g1 = (await core.start())["g1"]
            coids = [g1.next_id() for _ in range(3_000)]
            frames = [p.frame(submit("s1", c)) for c in coids]
            frames[1_500] = p.frame(submit("s2", coids[1_500]))
            await g1.send_raw(b"".join(frames))
            cause = await core.failed_with("g1")
            assert "strategy 's2' is not one of this process's" in cause
            assert core.counted.passed == coids[:1_500]
            assert all(core.execution.order(c) is None for c in coids[1_500:])
            assert sorted(core.venues["SIM"].canceled) == sorted(coids[:1_500])
            assert core.process("g2").state == "running"
            core.assert_nothing_around_the_gate()
        finally:
            await core.close()

    asyncio.run(main())
