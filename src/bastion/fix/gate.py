"""The output gate: what sessions write waits until the state changes behind it are
committed (``OutputGate``), so a counterparty never sees what was not recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Writer = Callable[[bytes], None]
Closer = Callable[[], None]


class OutputGate:
    """Holds outgoing bytes while state changes are being committed.

    While any ``hold()`` is open, writes of every session sharing the gate are queued;
    when the outermost closes without error they go out, one write per connection.
    If it closes with an error they are dropped: a counterparty never sees what was
    not committed. Sessions of one acceptor share a gate with the venue's ledger
    writes, so a fill reported to a second account waits for the same commit.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.pending: list[tuple[Writer, bytes]] = []

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        except BaseException:
            self.depth -= 1
            if self.depth == 0:
                self.pending.clear()
            raise
        self.depth -= 1
        if self.depth == 0 and self.pending:
            self.flush()

    def flush(self, only: Writer | None = None) -> None:
        """Write what is queued (for one writer, or all), in order, one write per writer."""
        by_writer: dict[Writer, list[bytes]] = {}
        keep: list[tuple[Writer, bytes]] = []
        for write, raw in self.pending:
            if only is None or write is only:
                by_writer.setdefault(write, []).append(raw)
            else:
                keep.append((write, raw))
        self.pending = keep
        for write, chunks in by_writer.items():
            write(b"".join(chunks))
