"""``[recording]``: which of a node's market data streams are written to Parquet, where,
and how often (``bastion.feeds.recorder``)."""

from __future__ import annotations

from typing import Literal

import msgspec

from bastion.errors import ConfigError

Stream = Literal["raw", "delivered", "verdicts"]
STREAMS: tuple[Stream, ...] = ("raw", "delivered", "verdicts")
"""``raw``: every quote as each feed delivered it, before validation; ``delivered``:
what the node's kernel got (after the validators, and the arbiter when there is one);
``verdicts``: every hit of a validator (reason and action) on a quote or trade."""


class RecordingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[recording]`` of a node config.

    - ``path``: the recording's directory (relative to the config file's);
    - ``streams``: which streams to record (all three by default);
    - ``flush_interval_ms``: how often what was received is written out as closed
      Parquet files: a crash of the node loses at most this much of the recording;
    - ``max_rows_per_file``: a file holds at most this many rows (a busy partition is
      written out early, in several files);
    - ``max_buffered_rows``: records received but not yet written, at most; past it
      new records are dropped and counted (the trading loop never waits for the disk).
    """

    path: str
    streams: list[Stream] = msgspec.field(default_factory=lambda: list(STREAMS))
    flush_interval_ms: int = 1_000
    max_rows_per_file: int = 1_000_000
    max_buffered_rows: int = 1_000_000

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("key 'recording.path': must not be empty")
        if not self.streams:
            raise ConfigError(f"key 'recording.streams': name at least one of {', '.join(STREAMS)}")
        for stream in self.streams:
            if self.streams.count(stream) > 1:
                raise ConfigError(f"key 'recording.streams': '{stream}' is listed twice")
        for key in ("flush_interval_ms", "max_rows_per_file", "max_buffered_rows"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"key 'recording.{key}': must be an integer > 0, got {value!r}")


class RecordingSourceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[recordings]]`` of a backtest: a node's recording (directory ``path``) as its
    data. ``stream``: ``delivered`` (what the node got, after validation and arbitration:
    the same strategies make the same decisions) or ``raw`` (as the feeds sent it,
    unvalidated; of feed ``feed`` only, when given). ``instruments``: which (empty: every
    instrument of the config)."""

    path: str
    instruments: list[str] = []
    stream: Literal["delivered", "raw"] = "delivered"
    feed: str = ""
