"""Example strategy: EMA crossover, always in the market with a fixed size.

Two exponential moving averages of the mid price; when the fast one crosses
above the slow one, target a long position of ``trade_size``; when it crosses
below, target a short one. Indicators use floats (that is fine inside a
strategy); orders and positions are exact. The averages survive a restart: the
node stores ``on_save``'s state in its snapshots and hands it to ``on_load``.
"""

from decimal import Decimal
from typing import Any

from bastion.strategy import QuoteTick, Strategy


class EmaCross(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.saved: dict[str, Any] = {}

    def on_save(self) -> dict[str, Any]:
        return {"count": self.count, "fast": self.fast, "slow": self.slow}

    def on_load(self, state: dict[str, Any]) -> None:
        self.saved = state  # applied in on_start, once the parameters are read

    def on_start(self) -> None:
        p = self.params
        self.instrument_id: str = p["instrument"]
        fast, slow = int(p.get("fast", 10)), int(p.get("slow", 50))
        if not 0 < fast < slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast} slow={slow}")
        self.warmup = slow
        self.alpha_fast = 2.0 / (fast + 1)
        self.alpha_slow = 2.0 / (slow + 1)
        self.keep_fast = 1.0 - self.alpha_fast
        self.keep_slow = 1.0 - self.alpha_slow
        self.size = Decimal(str(p.get("trade_size", "1")))
        self.short = -self.size
        if self.size <= 0:
            raise ValueError(f"trade_size must be positive, got {self.size}")
        self.scale = float(self.instrument(self.instrument_id).price_scale)
        self.count = int(self.saved.get("count", 0))
        self.fast = float(self.saved.get("fast", 0.0))
        self.slow = float(self.saved.get("slow", 0.0))
        self.subscribe_quotes(self.instrument_id)

    def on_quote(self, quote: QuoteTick) -> None:
        scale = self.scale
        mid = (quote.bid / scale + quote.ask / scale) / 2
        count = self.count = self.count + 1
        if count == 1:
            self.fast = self.slow = mid
            return
        prev_fast = self.fast
        prev_slow = self.slow
        fast = self.fast = self.alpha_fast * mid + self.keep_fast * prev_fast
        slow = self.slow = self.alpha_slow * mid + self.keep_slow * prev_slow
        if count < self.warmup:
            return
        if fast > slow:
            if prev_fast <= prev_slow:  # crossed up
                self.set_target_position(self.instrument_id, self.size)
        elif fast < slow and prev_fast >= prev_slow:  # crossed down
            self.set_target_position(self.instrument_id, self.short)

    def on_stop(self) -> None:
        self.log.info(
            "stopped", quotes_seen=self.count, position=str(self.position(self.instrument_id))
        )
