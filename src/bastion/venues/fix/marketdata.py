"""Top of book and trades from FIX market data: MarketDataSnapshotFullRefresh (W) and
MarketDataIncrementalRefresh (X) into ``QuoteTick`` s and ``TradeTick`` s for the
node's data path.

A snapshot replaces a symbol's book; X entries each start with MDUpdateAction (279)
and carry their own MDEntryType (269) and Symbol (55). A crossed or one-sided book
publishes nothing (a crossed one is counted); a malformed entry is answered with a
session Reject (and counted).

Requests (``market_data_request``): on each logon a subscription (V, 263=1) to top of
book and trades of every instrument, answered by a W per symbol then X on each change;
after a sequence gap on the session a snapshot (V, 263=0) of top of book of every
instrument, whose W replaces each book. A gap is where FIX market data goes missing
while the session lives: the venue resends what the gap held (PossDup, stale: ignored)
or gap-fills over it, and either way a book may now be wrong until its next change, which
on a quiet instrument may be a long time; the snapshot corrects it at once.

A Trade entry (269=2) is a print, handed to ``on_trade_sink`` at once. In an X it is
new: stamped with the time it arrived, as a quote is. In a W it is the last trade,
possibly old: stamped with its MDEntryDate (272) and MDEntryTime (273), never later
than its arrival, and dropped (counted) without them, so an old print never passes
for a fresh reference price.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from bastion.clock import Clock
from bastion.fix.codec import INCORRECT_DATA_FORMAT, FixMessage
from bastion.fix.rejects import RejectMessage
from bastion.fix.timestamps import parse_utc_timestamp
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.instruments import Instrument

SUBSCRIBE = "1"  # SubscriptionRequestType (263): snapshot and updates
SNAPSHOT = "0"  # SubscriptionRequestType (263): a snapshot only


def market_data_request(req_id: str, symbols: list[str], *, kind: str) -> FixMessage:
    """A MarketDataRequest (V) for top of book (bid, offer) of ``symbols``: ``kind``
    ``SUBSCRIBE`` (with trade prints, incremental updates) or ``SNAPSHOT``."""
    fields: list[tuple[int, object]] = [(262, req_id), (263, kind), (264, "1")]
    if kind == SUBSCRIBE:
        fields.append((265, "1"))  # MDUpdateType: incremental refresh
    entry_types = ["0", "1", "2"] if kind == SUBSCRIBE else ["0", "1"]
    fields.append((267, len(entry_types)))
    fields += [(269, t) for t in entry_types]
    fields.append((146, len(symbols)))
    fields += [(55, s) for s in symbols]
    return FixMessage.of("V", *fields)


class BookOwner(Protocol):
    """What the book needs of the FIX venue adapter (``bastion.venues.fix.adapter``)."""

    clock: Clock
    counters: Counter[str]
    instruments: dict[str, Instrument]
    on_quote_sink: Callable[[QuoteTick], None] | None
    on_trade_sink: Callable[[TradeTick], None] | None


class TopOfBook:
    """Best bid and offer per instrument of one FIX venue, published on every change."""

    def __init__(self, adapter: BookOwner) -> None:
        self._adapter = adapter
        self._books: dict[str, list[int | None]] = {}
        self._snapshot = False

    def clear(self) -> None:
        """Forget every book (the session is down: what we had is stale)."""
        self._books.clear()

    def on_market_data(self, msg: FixMessage, *, snapshot: bool) -> None:
        """W: the whole top of book of one symbol. X: entries that each start with
        MDUpdateAction (279) and carry their own MDEntryType (269) and Symbol (55)."""
        symbol = msg.get(55)
        entries: list[dict[str, str]] = []
        current: dict[str, str] | None = None
        for tag, value in msg.fields:
            starts_entry = (tag == 279) or (tag == 269 and (current is None or "269" in current))
            if starts_entry:
                current = {}
                entries.append(current)
            if current is not None and tag in (55, 269, 270, 271, 272, 273, 279):
                current[str(tag)] = value
        touched: set[str] = set()
        self._snapshot = snapshot
        if snapshot:
            instrument = self._adapter.instruments.get(symbol or "")
            if instrument is None:
                self._adapter.counters["market_data_unknown_symbol"] += 1
                return
            self._books[instrument.id] = [None, None, None, None]  # a snapshot replaces
            touched.add(instrument.id)
        for entry in entries:
            self._apply_entry(entry, symbol, touched)
        for sym in touched:
            self._publish(sym)

    def _apply_entry(self, entry: dict[str, str], symbol: str | None, touched: set[str]) -> None:
        sym = entry.get("55", symbol)
        instrument = self._adapter.instruments.get(sym or "")
        if instrument is None:
            self._adapter.counters["market_data_unknown_symbol"] += 1
            return
        side = entry.get("269")
        if side == "2":
            self._trade(entry, instrument)
            return
        if side not in ("0", "1"):
            return
        book = self._books.setdefault(instrument.id, [None, None, None, None])
        offset = 0 if side == "0" else 2
        if entry.get("279") == "2":
            book[offset] = book[offset + 1] = None
            touched.add(instrument.id)
            return
        try:
            price = instrument.price_raw(Decimal(entry["270"]))
            size = instrument.size_raw(Decimal(entry.get("271", "0")))
        except (KeyError, ArithmeticError, ValueError) as error:
            self._adapter.counters["market_data_malformed"] += 1
            raise RejectMessage(
                INCORRECT_DATA_FORMAT, 270, f"bad market data entry: {error}"
            ) from None
        if price <= 0 or size < 0:
            self._adapter.counters["market_data_invalid"] += 1
            return
        book[offset], book[offset + 1] = price, size
        touched.add(instrument.id)

    def _trade(self, entry: dict[str, str], instrument: Instrument) -> None:
        if entry.get("279", "0") != "0":
            return  # a trade print is only ever new; a change or delete of one is no print
        adapter = self._adapter
        try:
            price = instrument.price_raw(Decimal(entry["270"]))
            size = instrument.size_raw(Decimal(entry.get("271", "0")))
        except (KeyError, ArithmeticError, ValueError) as error:
            adapter.counters["market_data_malformed"] += 1
            raise RejectMessage(INCORRECT_DATA_FORMAT, 270, f"bad trade entry: {error}") from None
        if price <= 0 or size < 0:
            adapter.counters["market_data_invalid"] += 1
            return
        ts_ns = now = adapter.clock.timestamp_ns()
        if self._snapshot:
            date, clock_time = entry.get("272"), entry.get("273")
            traded = None
            if date is not None and clock_time is not None:
                traded = parse_utc_timestamp(f"{date}-{clock_time}")
            if traded is None:
                adapter.counters["market_data_trade_undated"] += 1
                return
            ts_ns = min(traded, now)
        sink = adapter.on_trade_sink
        if sink is not None:
            sink(TradeTick(instrument.id, ts_ns, price, size))

    def _publish(self, instrument_id: str) -> None:
        bid, bid_size, ask, ask_size = self._books[instrument_id]
        if bid is None or ask is None or bid_size is None or ask_size is None:
            return
        if bid >= ask:
            self._adapter.counters["market_data_crossed"] += 1
            return
        sink = self._adapter.on_quote_sink
        if sink is not None:
            sink(
                QuoteTick(
                    instrument_id, self._adapter.clock.timestamp_ns(), bid, ask, bid_size, ask_size
                )
            )
