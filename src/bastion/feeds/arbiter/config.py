"""``[arbitration]``: when the feed arbiter leaves an instrument's feed and when it goes
back (``bastion.feeds.arbiter``). It only matters for an instrument that two or more
``[[feeds]]`` supply; with one feed per instrument there is nothing to arbitrate.
"""

from __future__ import annotations

import msgspec

from bastion.errors import ConfigError


class ArbitrationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[arbitration]`` of a node config.

    - ``stale_ms``: a feed with no quote for that long while another feed of the
      instrument ticks is stale; an instrument none of whose feeds ticked for that long
      has no healthy feed (a ``FeedStatus``);
    - ``hold_ms``: a feed preferred to the one followed must have been healthy that long
      before the arbiter goes back to it (hysteresis);
    - ``reject_limit`` rejections by the validators within ``reject_window_ms`` are a
      failing feed;
    - ``diverge_ticks`` / ``diverge_ms``: a feed whose mid stays more than that many
      ticks from the followed feed's for that long starts a vote: the feeds that agree
      with a majority of the instrument's fresh feeds win, the others are outvoted;
    - ``poll_ms``: how often the arbiter looks for a followed feed gone silent.
    """

    stale_ms: int = 1_000
    hold_ms: int = 10_000
    reject_limit: int = 5
    reject_window_ms: int = 1_000
    diverge_ticks: int = 10
    diverge_ms: int = 2_000
    poll_ms: int = 20

    def __post_init__(self) -> None:
        for key in (
            "stale_ms",
            "hold_ms",
            "reject_limit",
            "reject_window_ms",
            "diverge_ticks",
            "diverge_ms",
            "poll_ms",
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"key 'arbitration.{key}': must be an integer > 0, got {value!r}")
