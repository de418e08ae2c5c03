"""Market data sources: recorded files to replay and the synthetic quote feed.

``open_replay`` streams ``QuoteTick`` or ``Bar`` objects from CSV or Parquet files,
converting prices and sizes exactly to the instrument's raw integer scale and
checking every row; ``SyntheticQuoteFeed`` is a seeded random walk of quotes.
"""

from __future__ import annotations

from bastion.data.config import ReplaySourceConfig, SyntheticFeedConfig
from bastion.data.replay import (
    OnBadRow,
    ReplaySource,
    ReplayStats,
    open_replay,
    replay_from_config,
)
from bastion.data.synthetic import SyntheticQuoteFeed
from bastion.data.validate import Kind

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
