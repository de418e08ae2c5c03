"""One reading of the node's metrics: values keyed by metric name and labels.

A ``Sample`` is built on the trading loop (``SampleBuilder``) and then only read, by
the Prometheus exposition's thread and by the alert rules; it is immutable once built,
so handing it to another thread is a reference swap.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import SupportsFloat

Labels = tuple[tuple[str, str], ...]
"""A series' labels, sorted by name."""


def labels_of(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class Sample:
    """Every metric's series at one moment: ``values[name][labels] = value``."""

    ts_ns: int
    """Wall-clock time of the reading."""
    monotonic_s: float
    """The node's monotonic clock at the reading (ages and ``for_s`` are measured on it)."""
    values: Mapping[str, Mapping[Labels, float]] = field(default_factory=dict)

    def get(self, name: str, **labels: str) -> float | None:
        """The value of one series, or None when the node does not report it."""
        return self.values.get(name, {}).get(labels_of(**labels))

    def series(self, name: str) -> Iterator[tuple[Labels, float]]:
        """Every series of metric ``name`` (none when it is not reported)."""
        yield from self.values.get(name, {}).items()


class SampleBuilder:
    """Collects one sample's values; ``build`` freezes them."""

    def __init__(self) -> None:
        self._values: dict[str, dict[Labels, float]] = {}

    def set(self, name: str, value: SupportsFloat, **labels: str) -> None:
        """One series' value (a bool is 0 or 1; an exact Decimal becomes a float here)."""
        self._values.setdefault(name, {})[labels_of(**labels)] = float(value)

    def build(self, ts_ns: int, monotonic_s: float) -> Sample:
        return Sample(ts_ns=ts_ns, monotonic_s=monotonic_s, values=self._values)
