"""Strategy sources that tests write into a node's strategies/ folder."""

from __future__ import annotations

IDLE_STRATEGY = """
from bastion.strategy.base import Strategy


class Idle(Strategy):
    pass
"""
"""A strategy that sends nothing by itself (``idle.py``, class ``Idle``): tests drive
the kernel's orders directly."""


HOARDER = '''
"""Keeps one limit BUY 5 ticks under the bid and one limit SELL 5 ticks over the ask,
and buys one lot at market every ``market_every`` quotes: a long position that grows."""

from bastion.model.enums import OrderSide
from bastion.model.orders import Order
from bastion.strategy import QuoteTick, Strategy

BUY, SELL = OrderSide.BUY, OrderSide.SELL


class Hoarder(Strategy):
    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.inst = self.instrument(self.iid)
        self.offset = 5 * self.inst.tick_raw
        self.every = int(self.params["market_every"])
        self.n = 0
        self.bid: Order | None = None
        self.ask: Order | None = None
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1
        if self.bid is None or self.bid.is_closed:
            self.bid = self.submit(BUY, self.iid, self.inst.lot_raw, quote.bid - self.offset)
        if self.ask is None or self.ask.is_closed:
            self.ask = self.submit(SELL, self.iid, self.inst.lot_raw, quote.ask + self.offset)
        if self.n % self.every == 0:
            self.submit(BUY, self.iid, self.inst.lot_raw)
'''
