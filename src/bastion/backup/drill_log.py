"""The drills' own journal: every ``bastion dr drill`` appends its result
(``DrDrillCompleted``) to a hash-chained SQLite journal on the host that ran it
(``[dr] journal_path``, ``dr-drills.sqlite`` beside the config by default), whether or
not the source node could be reached. At a DR site on another host, where no node
answers the drill's ``record_drill``, this is the tamper-evident record of every drill
run there; ``bastion journal verify|export`` read it like any journal.

Each drill is one run of that journal (``dr-drill:<node id>``) and one event, committed
with an fsync before the drill exits.
"""

from __future__ import annotations

from pathlib import Path

from bastion.journal.sqlite import SqliteJournal
from bastion.model.events import DrDrillCompleted


def journal_drill(path: Path, node_id: str, event: DrDrillCompleted) -> int:
    """Append ``event`` to the drills' journal at ``path`` (made if need be); its seq."""
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = SqliteJournal(path, durability="fsync_each")
    try:
        journal.begin_run(f"dr-drill:{node_id}", event.ts_ns)
        journal.append(event)
        return journal.last_seq
    finally:
        journal.close()


def drill_journal_path(config_path: Path, journal_path: str) -> Path:
    """``[dr] journal_path`` relative to the config's directory."""
    path = Path(journal_path).expanduser()
    return path if path.is_absolute() else config_path.resolve().parent / path
