"""A strategy that trades, then misbehaves as ``params.how`` says (the isolation tests).

On a quote with nothing of its own resting, it rests a limit BUY and a limit SELL
``offset_ticks`` from the touch and buys one lot at market. Once both rest and the lot
is its position (as its own process sees them) it misbehaves on its next quote:

- ``spin``: a tight loop, forever (with ``limits.cpu_s`` the OS ends it);
- ``sleep``: blocked in a system call, for an hour;
- ``stop``: SIGSTOP to itself: it stops reading its channel;
- ``raise``: an exception in ``on_quote``;
- ``exit``: ``os._exit(3)``;
- ``segfault``: a read of address 0 in native code;
- ``oom``: allocates 8 MB blocks until the address space runs out;
- ``files``: opens files until it has none left;
- ``none``: never.

With ``in_timer = true`` it neither trades nor takes quotes: it misbehaves in a timer
300 ms after it started, while nothing flows to it but the node's pings.

With ``after_save = true`` it misbehaves only once the node has asked it for its state
(``on_save``) in this run, and 50 ms later, so that the state the node holds is the one
it logged last. It logs ``misbehaving_started`` (with the state ``on_load`` gave it),
``misbehaving_saved`` and ``misbehaving_now`` as it goes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Any

from bastion.model.enums import OrderSide, OrderStatus
from bastion.strategy import QuoteTick, Strategy

BUY, SELL = OrderSide.BUY, OrderSide.SELL


class Misbehaving(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.runs = 0
        self.quotes = 0
        self.loaded: dict[str, Any] | None = None
        self.saved_at: float | None = None

    def on_load(self, state: dict[str, Any]) -> None:
        self.loaded = dict(state)
        self.runs = int(state["runs"])
        self.quotes = int(state["quotes"])

    def on_save(self) -> dict[str, Any]:
        state = {"runs": self.runs, "quotes": self.quotes}
        self.saved_at = time.monotonic()
        self.log.info("misbehaving_saved", state=state)
        return state

    def on_start(self) -> None:
        self.runs += 1
        self.iid: str = self.params["instrument"]
        self.how: str = self.params["how"]
        self.after_save = bool(self.params.get("after_save", False))
        self.inst = self.instrument(self.iid)
        self.offset = int(self.params.get("offset_ticks", 200)) * self.inst.tick_raw
        self.log.info("misbehaving_started", runs=self.runs, loaded=self.loaded)
        if self.params.get("in_timer", False):
            self.clock.call_later(300_000_000, self.on_timer)
        else:
            self.subscribe_quotes(self.iid)

    def on_timer(self, ts_ns: int) -> None:
        self.log.info("misbehaving_now", how=self.how, quotes=self.quotes)
        self.misbehave()

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes += 1
        resting = [o for o in self.open_orders(self.iid) if o.status is OrderStatus.ACCEPTED]
        if not self.open_orders(self.iid):
            lot = self.inst.lot_raw
            self.submit(BUY, self.iid, lot, quote.bid - self.offset)
            self.submit(SELL, self.iid, lot, quote.ask + self.offset)
            if self.position_raw(self.iid) <= 0:
                self.submit(BUY, self.iid, lot)
            return
        if len(resting) < 2 or self.position_raw(self.iid) <= 0 or self.how == "none":
            return
        if self.after_save and (self.saved_at is None or time.monotonic() - self.saved_at < 0.05):
            return
        self.log.info("misbehaving_now", how=self.how, quotes=self.quotes)
        self.misbehave()

    def misbehave(self) -> None:
        how = self.how
        if how == "spin":
            while True:
                pass
        elif how == "sleep":
            time.sleep(3600)
        elif how == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
        elif how == "raise":
            raise RuntimeError("misbehaving on purpose")
        elif how == "exit":
            os._exit(3)
        elif how == "segfault":
            ctypes.string_at(0)
        elif how == "oom":
            blocks = []
            while True:
                blocks.append(bytearray(8 << 20))
        elif how == "files":
            files = []
            while True:
                files.append(open(__file__, "rb"))  # noqa: SIM115
        else:
            raise ValueError(f"unknown misbehaviour {how!r}")
