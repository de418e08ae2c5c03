"""The risk limits a live config must set.

Every limit defaults to none, so a config without ``[risk]`` trades with no pre-trade
limit at all: fine for a backtest, refused for real money. A per-instrument limit is
set when ``[risk]`` gives it (the default for every instrument) or every instrument's
``[risk.instruments.ID]`` table does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from bastion.risk.config import RiskConfig

# (what the limit is, keys that satisfy it: any one of them)
PER_INSTRUMENT: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("max order quantity", ("max_order_quantity",)),
    ("max order notional", ("max_order_notional",)),
    ("max long position", ("max_long_quantity",)),
    ("max short position", ("max_short_quantity",)),
    ("stale data", ("stale_data_ms",)),
)
NODE_WIDE: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("daily loss", ("max_daily_loss_node", "max_daily_loss")),
    ("message throttle", ("max_messages_per_s",)),
)


def missing_live_limits(risk: RiskConfig, instrument_ids: Iterable[str]) -> list[str]:
    """The required limits ``risk`` leaves unset, each as ``what (risk.key)``, naming the
    instruments that lack a per-instrument one."""
    missing: list[str] = []
    ids = list(instrument_ids)
    for what, keys in PER_INSTRUMENT:
        if any(getattr(risk, key) is not None for key in keys):
            continue
        lacking = [
            i
            for i in ids
            if not any(
                i in risk.instruments and getattr(risk.instruments[i], key) is not None
                for key in keys
            )
        ]
        if lacking:
            where = "" if len(lacking) == len(ids) else f" for {', '.join(lacking)}"
            missing.append(f"{what} (risk.{keys[0]}{where})")
    for what, keys in NODE_WIDE:
        if not any(getattr(risk, key) is not None for key in keys):
            missing.append(f"{what} (risk.{' or risk.'.join(keys)})")
    return missing
