"""Market data validation: every live quote and trade is checked before the node sees it.

``ValidationConfig`` is ``[validation]``; ``ValidatedFeed`` wraps one feed's delivery
(``sink``); the validators and their reasons are in ``rules``.
"""

from __future__ import annotations

from bastion.feeds.validation.config import ValidationConfig
from bastion.feeds.validation.rules import REASONS, InstrumentRules
from bastion.feeds.validation.sink import Hits, ValidatedFeed

__all__ = ["REASONS", "Hits", "InstrumentRules", "ValidatedFeed", "ValidationConfig"]
