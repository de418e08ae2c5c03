"""Strategy configuration: which user file and class to load, and its parameters."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class StrategyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One strategy instance.

    - ``name``: the strategy id, unique in the node; it appears in every order and log.
    - ``path``: the Python file that defines the strategy (relative to the config file).
    - ``class_name``: the ``Strategy`` subclass to instantiate from that file.
    - ``params``: passed to the strategy as ``self.params``.
    - ``on_error``: if the strategy raises, ``stop`` only it (the node keeps running)
      or ``halt`` the whole node's trading.
    """

    name: str
    path: str
    class_name: str = msgspec.field(name="class")
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    on_error: Literal["stop", "halt"] = "stop"
