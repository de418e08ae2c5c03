"""Strategy configuration: which user file and class to load, its parameters, and how
its process is run and watched (``isolation = "process"``)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class ProcessLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the node allows a strategy process (``[strategies.limits]``).

    - ``memory_mb``: address space (``RLIMIT_AS``); a strategy that allocates past it
      gets ``MemoryError`` or is killed: either way a ``StrategyFailed``.
    - ``cpu_s``: CPU seconds over the process's life (``RLIMIT_CPU``; ``None``: none).
    - ``open_files``: file descriptors (``RLIMIT_NOFILE``).
    - ``max_handler_ms``: longest the process may keep an input (a quote, an order
      event, the node's ping) unhandled before it is unresponsive (a stall of the
      node's own event loop, reported as its loop lag, does not count).
    - ``max_backlog``: most inputs it may have unhandled at once.
    """

    memory_mb: int = 1024
    cpu_s: int | None = None
    open_files: int = 64
    max_handler_ms: int = 1000
    max_backlog: int = 10_000

    def problem(self) -> tuple[str, str] | None:
        """(key, message) for the first value out of range, or None."""
        if self.memory_mb < 64:
            return "memory_mb", "must be at least 64 (the Python interpreter needs it)"
        if self.cpu_s is not None and self.cpu_s < 1:
            return "cpu_s", "must be at least 1"
        if not 16 <= self.open_files <= 65_536:
            return "open_files", "must be between 16 and 65536"
        if not 10 <= self.max_handler_ms <= 600_000:
            return "max_handler_ms", "must be between 10 and 600000"
        if not 10 <= self.max_backlog <= 10_000_000:
            return "max_backlog", "must be between 10 and 10000000"
        return None


class StrategyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One strategy instance.

    - ``name``: the strategy id, unique in the node; it appears in every order and log.
    - ``path``: the Python file that defines the strategy (relative to the config file).
    - ``class_name``: the ``Strategy`` subclass to instantiate from that file.
    - ``params``: passed to the strategy as ``self.params``.
    - ``on_error``: if the strategy raises (or, isolated, its process fails or stops
      answering), ``stop`` only it (the node keeps running; isolated, its open orders
      are canceled) or ``halt`` the whole node's trading.

    Isolated (``node.isolation = "process"``) only:

    - ``group``: strategies with the same group share one process (and its fate: one
      failing fails the group); by default each has its own (the group is its name).
    - ``restart``: ``never`` or ``on_failure`` (after ``restart_backoff_s``, doubled at
      each restart, at most ``max_restarts`` times), with the state it saved last.
    - ``env``: names of environment variables the process gets; nothing else of the
      node's environment reaches it.
    - ``read_paths``: more directories it may read (its own file's directory, Python's
      and bastion's are readable anyway).
    - ``limits``: ``ProcessLimits``.
    """

    name: str
    path: str
    class_name: str = msgspec.field(name="class")
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    on_error: Literal["stop", "halt"] = "stop"
    group: str = ""
    restart: Literal["never", "on_failure"] = "never"
    restart_backoff_s: float = 1.0
    max_restarts: int = 3
    env: list[str] = msgspec.field(default_factory=list)
    read_paths: list[str] = msgspec.field(default_factory=list)
    limits: ProcessLimits = msgspec.field(default_factory=ProcessLimits)

    @property
    def process_group(self) -> str:
        return self.group or self.name

    def problem(self) -> tuple[str, str] | None:
        """(key, message) for the first isolation setting out of range, or None."""
        limits = self.limits.problem()
        if limits is not None:
            return f"limits.{limits[0]}", limits[1]
        if not 0.0 < self.restart_backoff_s <= 3600.0:
            return "restart_backoff_s", "must be more than 0 and at most 3600"
        if not 0 <= self.max_restarts <= 1000:
            return "max_restarts", "must be between 0 and 1000"
        for name in self.env:
            if not name or "=" in name or "\0" in name:
                return "env", f"{name!r} is not an environment variable name"
        return None
