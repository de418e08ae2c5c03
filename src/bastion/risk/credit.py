"""Credit limits of the node's account and of its risk accounts: total exposure and
cash usage.

Notionals of different instruments (other price and size scales, multipliers) are
added up as integers on one common scale: ``raw2 * weight[iid]`` is the notional in
units of ``1/denominator`` of the account currency, where ``raw2`` is
``quantity_raw * 2 * price_raw`` (prices doubled, so a mid is an integer). The
limits are converted once to that scale, so the per-order sums are pure integers.

Nothing is recounted per order: the positions' exposure is kept per instrument,
valued when a fill moves the position and revalued at each quote of its instrument
(``on_quote``: the gate's quote hook, which ``Kernel.on_quote``, ``Kernel.on_bar`` and
the backtest loop call for every quote they store), and the room left under
``max_cash_usage`` moves with each fill (``on_fill``, which ``risk.fills`` calls
right after the portfolio applied the fill). Both are keyed on the portfolio's fill
count: when it moved by more than the fill (a restored or replayed portfolio), they are
rebuilt from the portfolio at the next check.

A risk account (``[risk.accounts.NAME]``, ``AccountCredit``) keeps the same figures for
its strategies alone: their net position per instrument (valued as above),
the cash their fills spent (buys - sells on the common scale, plus their fees), both
moved by each of their fills, and their working orders' notional (``WorkingSums``, kept
by ``risk.book``). Their source on a rebuild is the portfolio too: the positions per
strategy (cash spent = cost - realized, exact) and its fees per strategy, both in
snapshots and replayed from the journal, so a restart does not forget an account's
spending.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Context, Decimal
from fractions import Fraction
from typing import final

from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide
from bastion.model.events import OrderFilled
from bastion.model.instruments import Instrument
from bastion.portfolio.portfolio import Portfolio
from bastion.portfolio.position import Exact
from bastion.risk.book import WorkingBook, WorkingSums
from bastion.risk.config import AccountRiskConfig, RiskConfig
from bastion.risk.reasons import Denial, DenyReason
from bastion.risk.usage import LimitUse

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_BUY = OrderSide.BUY

# enough digits that limit * denominator is exact (denominators reach 10**25)
_EXACT = Context(prec=100)


class _Held:
    """One instrument with a position: its exposure and the quote that valued it."""

    __slots__ = ("iid", "quote", "size_weight", "value")

    def __init__(self, iid: str, size_weight: int) -> None:
        self.iid = iid
        self.size_weight = size_weight  # |net| * weight: times the doubled mid, the exposure
        self.quote: QuoteTick | None = None
        self.value = 0


class _Positions:
    """Net positions per instrument and their exposure at the mid on the common scale,
    kept current: valued when a fill moves them and again at each quote of their
    instrument (``on_quote``, the gate's quote hook), so a check reads one integer.
    ``unvalued`` counts the instruments held without a quote yet."""

    __slots__ = ("exposure", "held", "net", "quotes", "unvalued")

    def __init__(self, quotes: dict[str, QuoteTick]) -> None:
        self.quotes = quotes
        self.net: dict[str, int] = {}
        self.held: dict[str, _Held] = {}  # instruments with a non-zero net position
        self.exposure = 0
        self.unvalued = 0

    def reset(self) -> None:
        self.net = {}
        self.held = {}
        self.exposure = 0
        self.unvalued = 0

    def move(self, iid: str, signed: int, weight: int) -> None:
        """A fill (or a rebuilt position) of ``signed`` quantity, valued at the last quote."""
        net = self.net.get(iid, 0) + signed
        self.net[iid] = net
        held = self.held.get(iid)
        if held is not None:
            self._unvalue(held)
            if not net:
                del self.held[iid]
                return
            held.size_weight = abs(net) * weight
        elif net:
            held = self.held[iid] = _Held(iid, abs(net) * weight)
        else:
            return
        self._value(held, self.quotes.get(iid))

    def on_quote(self, quote: QuoteTick) -> None:
        held = self.held.get(quote.instrument_id)
        if held is not None:
            self._unvalue(held)
            self._value(held, quote)

    def missing(self) -> str | None:
        """The first instrument held without a quote, if any."""
        for held in self.held.values():
            if held.quote is None:
                return held.iid
        return None

    def _unvalue(self, held: _Held) -> None:
        if held.quote is None:
            self.unvalued -= 1
        else:
            self.exposure -= held.value

    def _value(self, held: _Held, quote: QuoteTick | None) -> None:
        held.quote = quote
        if quote is None:
            held.value = 0
            self.unvalued += 1
        else:
            held.value = held.size_weight * (quote.bid + quote.ask)
            self.exposure += held.value


@final
class CreditLimits:
    """``max_total_exposure`` and ``max_cash_usage`` on the common integer scale."""

    def __init__(
        self,
        *,
        config: RiskConfig,
        instruments: dict[str, Instrument],
        portfolio: Portfolio,
        last_quotes: dict[str, QuoteTick],
    ) -> None:
        self._config = config
        self._portfolio = portfolio
        self._last_quotes = last_quotes
        ratios = {iid: inst.multiplier.as_integer_ratio() for iid, inst in instruments.items()}
        digits = max(
            (i.price_precision + i.size_precision for i in instruments.values()), default=0
        )
        lcm = math.lcm(*(den for _, den in ratios.values())) if ratios else 1
        denominator: int = 2 * 10**digits * lcm
        self.denominator = denominator
        # money = raw2 * multiplier / (2 * 10**(pp + sp)) = raw2 * weight / denominator
        self.weights: dict[str, int] = {}
        for iid, inst in instruments.items():
            num, den = ratios[iid]
            scale: int = 10 ** (inst.price_precision + inst.size_precision)
            self.weights[iid] = num * denominator // (2 * scale * den)
        self.max_exposure = self.common(config.max_total_exposure)
        self._cash_limit = config.max_cash_usage
        self.checks_cash = self._cash_limit is not None
        self.node_limited = self.max_exposure is not None or self.checks_cash
        """Whether the node itself has a credit limit (else only its accounts have)."""
        # positions' exposure: the net positions at fill count ``_held_fills``
        self._held_fills = -1
        self._positions = _Positions(last_quotes)
        # (max_cash_usage - spent) * denominator, exact, at fill count ``_cash_fills``
        self._cash_fills = -1
        self._room_exact = Decimal(0)
        self._cash_room = 0  # working buys may add up to this (its floor)
        # risk accounts, by name and by strategy; in step with the fill count ``account_fills``
        self.accounts = {
            name: AccountCredit(name, account, self) for name, account in config.accounts.items()
        }
        self.account_of = {
            sid: account for account in self.accounts.values() for sid in account.strategies
        }
        self.account_sums = {sid: account.working for sid, account in self.account_of.items()}
        """Each strategy's account's working sums, for ``risk.book``."""
        self._valued_accounts = [a for a in self.accounts.values() if a.max_exposure is not None]
        self.account_fills = -1

    @property
    def positions_exposure(self) -> int:
        """The node's positions valued at the last mids (common scale)."""
        return self._positions.exposure

    @property
    def values_positions(self) -> bool:
        """Whether an exposure limit values positions: then ``on_quote`` must see every
        quote (the gate's quote hook)."""
        return self.max_exposure is not None or any(
            account.max_exposure is not None for account in self.accounts.values()
        )

    def on_quote(self, quote: QuoteTick) -> None:
        """Revalue the positions held in the quote's instrument, the node's and each
        risk account's."""
        if self.max_exposure is not None:
            self._positions.on_quote(quote)
        for account in self._valued_accounts:
            account.positions.on_quote(quote)

    def common(self, limit: Decimal | None) -> int | None:
        """A money limit on the common scale (rounded down: the limit itself passes)."""
        return None if limit is None else math.floor(Fraction(limit) * self.denominator)

    def money(self, common: int) -> Decimal:
        return (Decimal(common) / self.denominator).quantize(Decimal("0.01"))

    def check(
        self,
        is_buy: bool,
        exposure: int,
        buys: int,
        change: int = 0,
        fills: int = -1,
    ) -> Denial | None:
        """``exposure``: working orders' notional, the new order's included; ``buys``: the
        working buys' notional (new one included when it is a buy); both common-scale.
        ``change``: what the order adds to them (``AccountCredit.check``'s signature).
        ``fills``: the portfolio's fill count, when the caller has read it."""
        if fills < 0:
            fills = self._portfolio.n_fills
        max_exposure = self.max_exposure
        if max_exposure is not None:
            if fills != self._held_fills:
                self._rebuild_held(fills)
            positions = self._positions
            if positions.unvalued:
                return Unvalued(positions, None)
            total = exposure + positions.exposure
            if total > max_exposure:
                return CreditDenied(self, None, total, True)
        if is_buy and self._cash_limit is not None:
            if fills != self._cash_fills:  # cash only changes with fills
                self._recount_cash()
            if buys > self._cash_room:
                return CreditDenied(self, None, buys, False)
        return None

    def usage(self, book: WorkingBook | None) -> list[LimitUse]:
        """What counts against the node's credit limits and each risk account's now, as
        a check counts it (positions and working orders; an exposure is not reported
        while a position has no quote to value it)."""
        out: list[LimitUse] = []
        config = self._config
        exposure = 0 if book is None else book.exposure
        buys = 0 if book is None else book.buy_notional
        fills = self._portfolio.n_fills
        if self.max_exposure is not None and config.max_total_exposure is not None:
            if fills != self._held_fills:
                self._rebuild_held(fills)
            positions = self._positions
            if not positions.unvalued:
                used = self.money(exposure + positions.exposure)
                out.append(LimitUse("max_total_exposure", "node", used, config.max_total_exposure))
        cash_limit = self._cash_limit
        if cash_limit is not None:
            portfolio = self._portfolio
            spent = portfolio.starting_cash - portfolio.cash()
            out.append(LimitUse("max_cash_usage", "node", spent + self.money(buys), cash_limit))
        if self.accounts:
            if fills != self.account_fills:
                self.rebuild_accounts()
            for name in sorted(self.accounts):
                out += self.accounts[name].usage()
        return out

    def _rebuild_held(self, fills: int) -> None:
        portfolio = self._portfolio
        self._held_fills = fills
        positions = self._positions
        positions.reset()
        for iid, weight in self.weights.items():
            net = portfolio.net_quantity(iid)
            if net:
                positions.move(iid, net, weight)

    def _recount_cash(self) -> None:
        assert self._cash_limit is not None
        portfolio = self._portfolio
        self._cash_fills = portfolio.n_fills
        spent = portfolio.starting_cash - portfolio.cash()
        self._room_exact = _EXACT.multiply(
            _EXACT.subtract(self._cash_limit, spent), self.denominator
        )
        self._cash_room = int(self._room_exact.to_integral_value(ROUND_FLOOR, context=_EXACT))

    def on_fill(self, fill: OrderFilled) -> None:
        """A fill the portfolio has applied (``risk.fills``): the node's limits, then the
        risk accounts'. Each figure moves only when it was in step with the portfolio
        before the fill, else the next check rebuilds it (``-1``: out of step)."""
        fills = self._portfolio.n_fills
        weight = self.weights.get(fill.instrument_id)
        if self.accounts:
            self._account_fill(fill, fills, weight)
        if self.max_exposure is not None:
            if weight is None or self._held_fills != fills - 1:
                self._held_fills = -1
            else:
                self._held_fills = fills
                qty = fill.last_qty
                self._positions.move(fill.instrument_id, qty if fill.side is _BUY else -qty, weight)
        if self._cash_limit is None:
            return
        if weight is None or self._cash_fills != fills - 1:
            self._cash_fills = -1
            return
        self._cash_fills = fills
        # a buy spends qty * px (raw2 = 2 * qty * px on the common scale), a sell earns it
        flow = 2 * fill.last_qty * fill.last_px * weight
        change = Decimal(-flow if fill.side is _BUY else flow)
        if fill.fee:
            change = _EXACT.subtract(change, _EXACT.multiply(fill.fee, self.denominator))
        self._room_exact = _EXACT.add(self._room_exact, change)
        self._cash_room = int(self._room_exact.to_integral_value(ROUND_FLOOR, context=_EXACT))

    # -- risk accounts ------------------------------------------------------------------
    def _account_fill(self, fill: OrderFilled, fills: int, weight: int | None) -> None:
        """Move the position and cash of the fill's strategy's account (every fill keeps
        the accounts in step with the portfolio's fill count; out of step, the next
        account check rebuilds them)."""
        if self.account_fills != fills - 1:
            self.account_fills = -1
            return
        account = self.account_of.get(fill.strategy_id)
        if account is not None and weight is None:
            self.account_fills = -1
            return
        self.account_fills = fills
        if account is not None:
            assert weight is not None
            account.apply_fill(fill, weight)

    def rebuild_accounts(self) -> None:
        """Every account's positions and spent cash, from the portfolio's positions per
        strategy and fees per strategy."""
        portfolio = self._portfolio
        self.account_fills = portfolio.n_fills
        accounts = self.accounts.values()
        for each in accounts:
            each.reset()
        account_of = self.account_of
        weights = self.weights
        for position in portfolio.positions():
            account = account_of.get(position.strategy_id)
            weight = weights.get(position.instrument_id)
            if account is not None and weight is not None:  # else: no longer configured
                account.add_position(
                    position.instrument_id,
                    position.quantity,
                    _spent(position.cost, position.realized),
                    weight,
                )
        for sid, fee in portfolio.strategy_fees.items():
            account = account_of.get(sid)
            if account is not None:
                account.fees = _EXACT.add(account.fees, fee)
        for each in accounts:
            each.settle()


def _spent(cost: Exact, realized: Exact) -> int:
    """The cash a position's fills spent (buys - sells), raw: cost - realized, an integer
    (each fill moves it by exactly quantity * price); rounded up if it were not."""
    spent = cost - realized
    if isinstance(spent, int):
        return spent
    return -(-spent.numerator // spent.denominator)


@final
class AccountCredit:
    """One risk account's credit limits (common scale) and what counts against them:
    its strategies' net position per instrument, valued at the last mid (with
    ``max_total_exposure``), and the cash their fills spent (with ``max_cash_usage``);
    ``working`` holds their working orders' notional (kept by ``risk.book``)."""

    def __init__(self, name: str, config: AccountRiskConfig, credit: CreditLimits) -> None:
        self.name = name
        self.config = config
        self.strategies = tuple(config.strategies)
        self._credit = credit
        self.working = WorkingSums()
        self.max_exposure = credit.common(config.max_total_exposure)
        self._cash_limit = config.max_cash_usage
        self.positions = _Positions(credit._last_quotes)
        self.flow = 0  # buys - sells of its fills, common scale
        self.fees = Decimal(0)
        # working buys may add up to this: floor((limit - fees) * denominator) - flow
        self.cash_room = 0

    def check(
        self,
        is_buy: bool,
        exposure: int,
        buys: int,
        change: int,
        fills: int = -1,
    ) -> Denial | None:
        """The node's limits (``exposure``, ``buys`` as ``CreditLimits.check``), then the
        account's: ``change`` is what the order adds to its working notional."""
        credit = self._credit
        if fills < 0:
            fills = credit._portfolio.n_fills
        if credit.node_limited:
            denial = credit.check(is_buy, exposure, buys, 0, fills)
            if denial is not None:
                return denial
        if fills != credit.account_fills:
            credit.rebuild_accounts()
        max_exposure = self.max_exposure
        if max_exposure is not None:
            positions = self.positions
            if positions.unvalued:
                return Unvalued(positions, self)
            total = self.working.exposure + change + positions.exposure
            if total > max_exposure:
                return CreditDenied(credit, self, total, True)
        if is_buy and self._cash_limit is not None:
            working_buys = self.working.buy_notional + change
            if working_buys > self.cash_room:
                return CreditDenied(credit, self, working_buys, False)
        return None

    def usage(self) -> list[LimitUse]:
        """What counts against the account's limits now (``CreditLimits.usage``)."""
        out: list[LimitUse] = []
        credit = self._credit
        config = self.config
        working = self.working
        if config.max_total_exposure is not None and not self.positions.unvalued:
            used = credit.money(working.exposure + self.positions.exposure)
            out.append(LimitUse("max_total_exposure", self.name, used, config.max_total_exposure))
        cash_limit = self._cash_limit
        if cash_limit is not None:
            spent = Decimal(self.flow + working.buy_notional) / credit.denominator
            out.append(LimitUse("max_cash_usage", self.name, self.fees + spent, cash_limit))
        return out

    @property
    def positions_exposure(self) -> int:
        """Its strategies' positions valued at the last mids (common scale)."""
        return self.positions.exposure

    def reset(self) -> None:
        self.positions.reset()
        self.flow = 0
        self.fees = Decimal(0)

    def add_position(self, iid: str, quantity: int, spent_raw: int, weight: int) -> None:
        """A strategy's position (a rebuild): its signed quantity and the cash spent."""
        if quantity:
            self.positions.move(iid, quantity, weight)
        self.flow += 2 * spent_raw * weight

    def settle(self) -> None:
        """After a rebuild: the cash room."""
        self._room()

    def apply_fill(self, fill: OrderFilled, weight: int) -> None:
        """One of its strategies' fills: the position (valued at the last quote) and the
        cash."""
        iid = fill.instrument_id
        qty = fill.last_qty
        is_buy = fill.side is _BUY
        if self.max_exposure is not None:
            self.positions.move(iid, qty if is_buy else -qty, weight)
        if self._cash_limit is not None:
            flow = 2 * qty * fill.last_px * weight
            self.flow += flow if is_buy else -flow
            if fill.fee:
                self.fees = _EXACT.add(self.fees, fill.fee)
            self._room()

    def _room(self) -> None:
        if self._cash_limit is None:
            return
        room = _EXACT.multiply(
            _EXACT.subtract(self._cash_limit, self.fees), self._credit.denominator
        )
        self.cash_room = int(room.to_integral_value(ROUND_FLOOR, context=_EXACT)) - self.flow


@final
class CreditDenied(Denial):
    """``CREDIT_LIMIT`` of the node (``account`` None) or of a risk account: ``total`` is
    the exposure (positions + working orders) beyond ``max_total_exposure``
    (``exposure``), else the working buys beyond the room under ``max_cash_usage``; both
    on the common scale."""

    def __init__(
        self, credit: CreditLimits, account: AccountCredit | None, total: int, exposure: bool
    ) -> None:
        super().__init__(DenyReason.CREDIT_LIMIT)
        self.credit = credit
        self.account = account
        self.total = total
        self.exposure = exposure

    def message(self) -> str:
        credit = self.credit
        account = self.account
        if account is None:
            config = credit._config
            if self.exposure:
                return (
                    f"total exposure {credit.money(self.total)} (positions + working orders) "
                    f"would exceed max_total_exposure {config.max_total_exposure}"
                )
            portfolio = credit._portfolio
            spent_now = portfolio.starting_cash - portfolio.cash()
            return (
                f"cash usage {spent_now + credit.money(self.total)} (spent + working buys) "
                f"would exceed max_cash_usage {config.max_cash_usage}"
            )
        name = account.name
        if self.exposure:
            return (
                f"account {name}: total exposure {credit.money(self.total)} (positions + "
                f"working orders of its strategies) would exceed max_total_exposure "
                f"{account.config.max_total_exposure} (risk.accounts.{name})"
            )
        used = account.fees + Decimal(account.flow + self.total) / credit.denominator
        return (
            f"account {name}: cash usage {used.quantize(Decimal('0.01'))} "
            f"(spent + working buys of its strategies) would exceed max_cash_usage "
            f"{account.config.max_cash_usage} (risk.accounts.{name})"
        )


@final
class Unvalued(Denial):
    """``NO_REFERENCE_PRICE``: a position of the node (``account`` None) or of a risk
    account has no quote to value it for ``max_total_exposure``."""

    def __init__(self, positions: _Positions, account: AccountCredit | None) -> None:
        super().__init__(DenyReason.NO_REFERENCE_PRICE)
        self.missing = positions.missing()
        self.account = account

    def message(self) -> str:
        text = f"no quote to value the position in {self.missing} for max_total_exposure"
        if self.account is not None:
            text += f" of account {self.account.name}"
        return text
