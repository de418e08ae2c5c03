"""Market data sources: recorded files to replay and the synthetic quote feed.

``open_replay`` streams ``QuoteTick`` or ``Bar`` objects from CSV or Parquet files,
converting prices and sizes exactly to the instrument's raw integer scale and
checking every row; ``SyntheticQuoteFeed`` is a seeded random walk of quotes.

The replay readers (numpy, pyarrow: a third of a second to import) load on first
use, so a command that replays nothing does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bastion.data.config import ReplaySourceConfig, SyntheticFeedConfig
from bastion.data.synthetic import SyntheticQuoteFeed

if TYPE_CHECKING:
    from bastion.data.replay import (
        OnBadRow,
        ReplaySource,
        ReplayStats,
        open_replay,
        replay_from_config,
    )
    from bastion.data.validate import Kind

_LAZY = {
    "OnBadRow": "bastion.data.replay",
    "ReplaySource": "bastion.data.replay",
    "ReplayStats": "bastion.data.replay",
    "open_replay": "bastion.data.replay",
    "replay_from_config": "bastion.data.replay",
    "Kind": "bastion.data.validate",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bastion.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Kind",
    "OnBadRow",
    "ReplaySource",
    "ReplaySourceConfig",
    "ReplayStats",
    "SyntheticFeedConfig",
    "SyntheticQuoteFeed",
    "open_replay",
    "replay_from_config",
]
