"""A strategy that trades hard and deterministically, for the chaos tests.

Every ``every_quotes``-th quote it takes one action, drawn from ``random.Random``
seeded with ``seed`` and its action counter (which ``on_save``/``on_load`` carry across
restarts): a market order for one lot (keeping its position within ``max_position``
lots), a limit order priced 20-30% away from the touch (it rests and never fills),
a cancel, or a modify (price or quantity) of one of its resting orders.

``mode = "market"`` sends only market orders, and ``max_actions`` stops acting after
that many actions (so a journal can end on a fill), logging ``chaos_trader_done`` once.
"""

from __future__ import annotations

import random
from typing import Any

from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.orders import Order
from bastion.strategy import QuoteTick, Strategy

BUY, SELL = OrderSide.BUY, OrderSide.SELL
_RESTING = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


class ChaosTrader(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.counter = 0  # actions taken; restored by on_load before on_start
        self.loaded_counter: int | None = None

    def on_save(self) -> dict[str, Any]:
        return {"counter": self.counter}

    def on_load(self, state: dict[str, Any]) -> None:
        self.counter = self.loaded_counter = int(state.get("counter", 0))

    def on_start(self) -> None:
        p = self.params
        self.iid: str = p["instrument"]
        self.inst = self.instrument(self.iid)
        self.seed = int(p.get("seed", 1))
        self.every = int(p.get("every_quotes", 2))
        self.max_position = int(p.get("max_position", 5)) * self.inst.lot_raw
        self.max_resting = int(p.get("max_resting", 8))
        self.market_only = p.get("mode", "mixed") == "market"
        self.max_actions = int(p.get("max_actions", 0)) or None
        self.quotes = 0
        self.actions_this_run = 0
        self.log.info("chaos_trader_started", counter=self.counter, loaded=self.loaded_counter)
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes += 1
        if self.quotes % self.every:
            return
        if self.max_actions is not None and self.actions_this_run >= self.max_actions:
            if self.actions_this_run == self.max_actions:
                self.actions_this_run += 1  # said once
                self.log.info("chaos_trader_done", counter=self.counter)
            return
        rng = random.Random(self.seed * 1_000_003 + self.counter)
        self.counter += 1
        self.actions_this_run += 1
        roll = rng.random()
        resting = [
            o
            for o in self.open_orders(self.iid)
            if o.order_type is OrderType.LIMIT and o.status in _RESTING
        ]
        if self.market_only or roll < 0.3:
            self._market(rng)
        elif roll < 0.6 and len(resting) < self.max_resting:
            side = BUY if rng.random() < 0.5 else SELL
            self.submit(side, self.iid, self._lots(rng), self._far_price(rng, side, quote))
        elif roll < 0.8 and resting:
            self.cancel(rng.choice(resting))
        elif resting:
            self._modify(rng, rng.choice(resting), quote)
        else:
            self._market(rng)

    def _market(self, rng: random.Random) -> None:
        exposure = self.position_raw(self.iid)
        for order in self.open_orders(self.iid):
            if order.order_type is OrderType.MARKET:
                leaves = order.quantity - order.filled_qty
                exposure += leaves if order.side is BUY else -leaves
        lot = self.inst.lot_raw
        if exposure + lot > self.max_position:
            side = SELL
        elif exposure - lot < -self.max_position:
            side = BUY
        else:
            side = BUY if rng.random() < 0.5 else SELL
        self.submit(side, self.iid, lot)

    def _modify(self, rng: random.Random, order: Order, quote: QuoteTick) -> None:
        if order.status is not OrderStatus.ACCEPTED or rng.random() < 0.5:
            price = self._far_price(rng, order.side, quote)
            self.modify(order, price=self.inst.price(price))
            return
        quantity = self._lots(rng)
        if quantity == order.quantity:
            quantity += self.inst.lot_raw
        self.modify(order, quantity=self.inst.size(quantity))

    def _lots(self, rng: random.Random) -> int:
        return rng.randint(1, 3) * self.inst.lot_raw

    def _far_price(self, rng: random.Random, side: OrderSide, quote: QuoteTick) -> int:
        """A price 20-30% through the touch, on the tick grid: it never fills."""
        tick = self.inst.tick_raw
        pct = rng.randint(20, 30)
        if side is BUY:
            return max(tick, quote.bid * (100 - pct) // 100 // tick * tick)
        return -(-quote.ask * (100 + pct) // 100 // tick) * tick
