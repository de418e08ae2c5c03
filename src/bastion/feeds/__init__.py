"""Market data feeds: the seam between market data sources and the node.

``Feed`` (``bastion.feeds.base``) is what a source implements; ``build_feed`` makes one
from a ``[[feeds]]`` table (``bastion.feeds.config``). Kinds: ``synthetic``,
``replay``, ``venue``, ``nats`` (a feed handler's quotes; ``bastion.feeds.nats``),
``recording``. Adding a kind means adding its module (a ``Feed`` and a
``build``), its config entry and one line in ``_KINDS``. The file readers and the
random walk the feeds use live in ``bastion.data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bastion.feeds import recording, replay, synthetic, venue
from bastion.feeds.base import Feed, FeedContext, FeedSink, FeedStats
from bastion.feeds.config import (
    FeedEntry,
    RecordingFeedEntry,
    ReplayFeedEntry,
    SyntheticFeedEntry,
    VenueFeedEntry,
)
from bastion.feeds.nats import feed as nats_feed
from bastion.feeds.nats.config import NatsFeedEntry

__all__ = ["Feed", "FeedContext", "FeedEntry", "FeedSink", "FeedStats", "build_feed"]

_KINDS: dict[type[Any], Callable[[Any, FeedContext], Feed]] = {
    SyntheticFeedEntry: synthetic.build,
    ReplayFeedEntry: replay.build,
    VenueFeedEntry: venue.build,
    NatsFeedEntry: nats_feed.build,
    RecordingFeedEntry: recording.build,
}


def build_feed(config: FeedEntry, context: FeedContext) -> Feed:
    """The feed a ``[[feeds]]`` table describes."""
    return _KINDS[type(config)](config, context)
