"""Feed arbitration: several feeds per instrument, one clean stream to the node.

``ArbitrationConfig`` is ``[arbitration]``; ``Arbiter`` follows one feed per instrument
and switches between them (``arbiter``, whose docstring states the rules).
"""

from __future__ import annotations

from bastion.feeds.arbiter.arbiter import Arbiter, FeedPort, LineState
from bastion.feeds.arbiter.config import ArbitrationConfig

__all__ = ["Arbiter", "ArbitrationConfig", "FeedPort", "LineState"]
