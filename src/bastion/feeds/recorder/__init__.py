"""The market data recorder: a node's (or feed handler's) feeds written to Parquet.

``RecordingConfig`` is ``[recording]``; ``Recorder`` puts taps on a feed path
(``recorder``) and ``RecordingWriter`` writes on a worker thread (``writer``); the
files' layout and columns are in ``schema``; ``read_quotes`` reads a stream back
(``reader``), as the ``recording`` feed does for a backtest or a paced replay.

pyarrow and numpy (a third of a second to import) load on first use of anything but
the config, so a node that records nothing does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bastion.feeds.recorder.config import STREAMS, RecordingConfig, Stream

if TYPE_CHECKING:
    from bastion.feeds.recorder.reader import RecordedQuotes, read_quotes
    from bastion.feeds.recorder.recorder import Recorder, RecorderStats
    from bastion.feeds.recorder.schema import SCHEMA_VERSION, SCHEMAS
    from bastion.feeds.recorder.writer import RecordingWriter

_LAZY = {
    "RecordedQuotes": "bastion.feeds.recorder.reader",
    "read_quotes": "bastion.feeds.recorder.reader",
    "Recorder": "bastion.feeds.recorder.recorder",
    "RecorderStats": "bastion.feeds.recorder.recorder",
    "SCHEMA_VERSION": "bastion.feeds.recorder.schema",
    "SCHEMAS": "bastion.feeds.recorder.schema",
    "RecordingWriter": "bastion.feeds.recorder.writer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bastion.feeds.recorder' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "SCHEMAS",
    "SCHEMA_VERSION",
    "STREAMS",
    "RecordedQuotes",
    "Recorder",
    "RecorderStats",
    "RecordingConfig",
    "RecordingWriter",
    "Stream",
    "read_quotes",
]
