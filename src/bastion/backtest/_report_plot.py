"""The equity-curve PNG of a backtest report, rendered byte-identically on every run.

Determinism comes from: an object-oriented ``Figure`` on an Agg canvas (no pyplot
global state), matplotlib's default style applied for the duration of the render
(so a caller's rcParams changes cannot leak in), a fixed size and dpi, the DejaVu
Sans font bundled with matplotlib, and a PNG without a software or date stamp.
Decimals become floats here, for drawing only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import matplotlib
import matplotlib.dates as mdates
import matplotlib.style
import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_PLOT_POINTS: Final = 20_000

_FIG_SIZE_IN: Final = (11.0, 6.5)
_DPI: Final = 100
_MARGINS: Final = {"left": 0.09, "right": 0.98, "top": 0.94, "bottom": 0.09, "hspace": 0.08}
_PNG_METADATA: Final[dict[str, str | None]] = {"Software": None}
_LINE_COLOR: Final = "#1f77b4"
_DRAWDOWN_COLOR: Final = "#d62728"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def minmax_downsample(
    x: npt.NDArray[Any], y: FloatArray, max_points: int = MAX_PLOT_POINTS
) -> tuple[npt.NDArray[Any], FloatArray]:
    """At most ``max_points`` of the series, keeping each bucket's lowest and highest point.

    Buckets are equal runs of consecutive samples, so the choice depends only on the
    data. First and last points are always kept; the output stays in time order.
    """
    n = int(y.size)
    if n <= max_points:
        return x, y
    buckets = max(1, (max_points - 2) // 2)
    size = -(-n // buckets)
    buckets = -(-n // size)
    # Padding repeats the last sample; an index that lands in the padding is the last point.
    padded = np.pad(y, (0, buckets * size - n), mode="edge").reshape(buckets, size)
    base = np.arange(buckets, dtype=np.int64) * size
    lows = np.minimum(base + padded.argmin(axis=1), n - 1)
    highs = np.minimum(base + padded.argmax(axis=1), n - 1)
    keep = np.unique(np.concatenate((np.array([0, n - 1], dtype=np.int64), lows, highs)))
    return x[keep], y[keep]


def _to_arrays(curve: Sequence[tuple[int, Decimal]]) -> tuple[IntArray, FloatArray]:
    n = len(curve)
    ts = np.fromiter((t for t, _ in curve), dtype=np.int64, count=n)
    equity = np.fromiter((float(v) for _, v in curve), dtype=np.float64, count=n)
    return ts, equity


def _dates(ts_ns: IntArray) -> FloatArray:
    # matplotlib's stubs leave these untyped in some versions and type them in others.
    days: FloatArray = mdates.date2num(  # type: ignore[no-untyped-call,unused-ignore]
        ts_ns.astype("datetime64[ns]")
    )
    return days


def _render(fig: Figure, curve: Sequence[tuple[int, Decimal]], title: str, currency: str) -> None:
    if not curve:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no equity data", ha="center", va="center", fontsize=14)
        fig.suptitle(title)
        return

    ts, equity = _to_arrays(curve)
    drawdown = equity - np.maximum.accumulate(equity)
    eq_x, eq_y = minmax_downsample(ts, equity)
    dd_x, dd_y = minmax_downsample(ts, drawdown)

    ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    marker = "o" if eq_y.size == 1 else None
    ax_eq.plot(_dates(eq_x), eq_y, color=_LINE_COLOR, linewidth=0.8, marker=marker)
    ax_eq.set_ylabel(f"equity ({currency})")
    ax_eq.grid(True, linewidth=0.4, alpha=0.5)
    ax_eq.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax_eq.set_title(title)

    ax_dd.fill_between(_dates(dd_x), dd_y, 0.0, color=_DRAWDOWN_COLOR, alpha=0.35, linewidth=0)
    ax_dd.plot(_dates(dd_x), dd_y, color=_DRAWDOWN_COLOR, linewidth=0.6)
    ax_dd.set_ylabel(f"drawdown ({currency})")
    ax_dd.grid(True, linewidth=0.4, alpha=0.5)
    ax_dd.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax_dd.set_xlabel("time (UTC)")

    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call,unused-ignore]
    formatter = mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call,unused-ignore]
        locator, tz=UTC
    )
    ax_dd.xaxis.set_major_locator(locator)
    ax_dd.xaxis.set_major_formatter(formatter)


def write_equity_png(
    curve: Sequence[tuple[int, Decimal]], path: Path, *, title: str, currency: str
) -> Path:
    """Render the equity curve with a drawdown panel to ``path`` and return it."""
    # The default style first, so none of the caller's rcParams reach the pixels;
    # both contexts restore the global settings on exit.
    with (
        matplotlib.style.context("default"),
        matplotlib.rc_context(
            {
                "font.family": "sans-serif",
                "font.sans-serif": ["DejaVu Sans"],
                "font.size": 9.0,
                "axes.titlesize": 10.0,
                "path.simplify": True,
                "agg.path.chunksize": 0,
            }
        ),
    ):
        # Fixed margins: constrained layout would measure every tick label twice and
        # cost more than drawing the curve.
        fig = Figure(figsize=_FIG_SIZE_IN, dpi=_DPI)
        fig.subplots_adjust(**_MARGINS)
        FigureCanvasAgg(fig)
        _render(fig, curve, title, currency)
        fig.savefig(path, format="png", dpi=_DPI, metadata=_PNG_METADATA)
    return path
