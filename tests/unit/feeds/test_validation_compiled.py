"""The validators decide the same compiled (mypyc, ``bastion.native``) as interpreted:
one stream of good and bad quotes and trades goes through the installed rules and
through their source loaded under another name; every decision, count and report
matches. (In an interpreted install both sides run the source.)"""

from __future__ import annotations

import importlib.util
import random
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

from bastion.feeds.validation import ValidationConfig, rules
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.instruments import Instrument

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
TICK = 5  # raw units of INSTRUMENT's 0.05
MS = 1_000_000
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.05"), lot_size=Decimal(1), quote_currency="USD"
)


def _interpreted() -> ModuleType:
    """``bastion.feeds.validation.rules`` run from its ``.py`` file, never compiled."""
    source = Path(rules.__file__).with_name("rules.py")
    spec = importlib.util.spec_from_file_location("_interpreted_validation_rules", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stream(seed: int, n: int) -> list[tuple[int, QuoteTick | TradeTick]]:
    """(now, data): a random walk with every kind of fault mixed in."""
    rng = random.Random(seed)
    now, mid, seq, tseq = T0, 200_000, 0, 0
    last: QuoteTick | None = None
    out: list[tuple[int, QuoteTick | TradeTick]] = []
    for _ in range(n):
        now += rng.choice((0, 1, 1, 2, 50)) * MS
        mid += rng.choice((-1, 0, 0, 1)) * TICK * rng.choice((1, 1, 1, 3))
        seq += 1
        fault = rng.randrange(24)
        bid, ask, size, ts, s = mid, mid + TICK, 10, now - rng.randrange(3) * MS, seq
        if fault == 0:
            bid = 0
        elif fault == 1:
            size = 0
        elif fault == 2:
            ask += 2  # off the tick
        elif fault == 3:
            bid, ask = ask, bid  # crossed
        elif fault == 4:
            ask = bid  # locked
        elif fault == 5:
            ts = now + 2_000 * MS  # ahead of the clock
        elif fault == 6:
            ts = now - 6_000 * MS  # stale
        elif fault == 7 and last is not None:
            out.append((now, last))  # the same quote again
            continue
        elif fault == 8:
            s = max(1, seq - rng.randrange(1, 4))  # a sequence number again, or lower
        elif fault == 9:
            seq += rng.randrange(2, 5)  # a gap
            s = seq
        elif fault == 10:
            bid, ask = bid * 11 // 10 // TICK * TICK, ask * 11 // 10 // TICK * TICK  # 10 % up
        elif fault == 11:
            ts = now - 4_000 * MS  # behind the last accepted one
        elif fault == 12:
            s = 0  # a source that numbers nothing
        if fault in (13, 14, 15):
            tseq += 1
            price = rng.choice((mid, mid + TICK, mid * 2, 0, mid + 3))
            out.append((now, TradeTick(IID, ts, price, rng.choice((1, 0, 5)), tseq)))
            continue
        last = QuoteTick(IID, ts, bid, ask, size, size, s)
        out.append((now, last))
    return out


def _run(module: Any, config: ValidationConfig, stream: list[Any]) -> dict[str, Any]:
    reports: list[tuple[int, int]] = []
    checker = module.InstrumentRules(
        INSTRUMENT,
        config.for_instrument(IID),
        log_interval_ms=config.log_interval_ms,
        report=lambda _rules, reason, action, _data: reports.append((reason, action)),
    )
    decisions = [
        checker.check(d, now) if isinstance(d, QuoteTick) else checker.check_trade(d, now)
        for now, d in stream
    ]
    return {
        "decisions": decisions,
        "counts": list(checker.counts),
        "suppressed": list(checker.suppressed),
        "reports": reports,
        "state": (checker.last, checker.last_seq, checker.mid2, checker.limit2),
    }


CONFIGS = {
    "defaults": {},
    "z_and_ticks": {"spike_z": "4", "spike_ticks": 20, "spike_pct": None, "spike_window": 8},
    "flags_and_pause": {
        "log_interval_ms": 5,
        "actions": {"crossed": "flag", "stale": "pause", "duplicate": "off", "spike": "flag"},
    },
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_when_compiled_then_every_decision_matches_the_interpreted_source(
    name: str, seed: int
) -> None:
    """Compiled and interpreted rules: the same reason for every datum, the same counts."""
    config = msgspec.convert(CONFIGS[name], ValidationConfig, strict=False)
    stream = _stream(seed, 3_000)
    installed = _run(rules, config, stream)
    interpreted = _run(_interpreted(), config, stream)
    assert installed == interpreted
    hit = {rules.REASONS[r] for r in installed["decisions"] if r}
    assert len(hit) >= 7, hit  # the stream does reach the validators
