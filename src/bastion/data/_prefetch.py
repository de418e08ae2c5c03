"""Running a producer of chunks one step ahead on a worker thread."""

from __future__ import annotations

from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def prefetched(items: Generator[T, None, None]) -> Generator[T, None, None]:
    """Yield ``items`` while the next one is computed on a worker thread.

    Reading, parsing and checking a chunk is Arrow and numpy work that releases
    the GIL, so it overlaps with the caller turning the previous chunk into
    Python objects. At most one item is computed ahead. An exception raised by
    ``items`` is raised here, in order. Closing this generator waits for the
    worker, then closes ``items`` on the caller's thread.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-data-prefetch")

    def step() -> tuple[T] | None:
        try:
            return (next(items),)
        except StopIteration:
            return None

    future = pool.submit(step)
    try:
        while (got := future.result()) is not None:
            future = pool.submit(step)
            yield got[0]
    finally:
        future.cancel()
        wait([future])
        pool.shutdown(wait=True)
        items.close()
