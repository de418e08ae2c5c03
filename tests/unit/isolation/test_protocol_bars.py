"""A bar's gap marker crosses to a strategy process: ``BarMsg`` carries it."""

from __future__ import annotations

import msgspec

from bastion.isolation import protocol as p


def test_when_a_marked_bar_is_framed_then_the_worker_decodes_its_marker() -> None:
    """gap_before and backfilled survive the frame; a frame without them (eight fields
    after the tag) decodes with their defaults."""
    marked = p.BarMsg("X.SIM", 60, 1, 3, 1, 2, 10, 60, 2, True)
    assert p.CORE_DECODER.decode(p.frame(marked)[p.HEADER.size :]) == marked
    short = msgspec.msgpack.encode([3, "X.SIM", 60, 1, 3, 1, 2, 10, 60])
    assert p.CORE_DECODER.decode(short) == p.BarMsg("X.SIM", 60, 1, 3, 1, 2, 10, 60, 0, False)
