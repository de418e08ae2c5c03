"""Read the run manifests back from a journal (SQLite or PostgreSQL, through
``bastion.journal.readable``) and say what changed between two."""

from __future__ import annotations

from bastion.journal.readable import ReadableJournal, events_of_type
from bastion.model.events import RunManifest

# the fields that say what ran (the time, epoch and host of a start are not changes)
_COMPARED: tuple[str, ...] = (
    "node_id",
    "mode",
    "version",
    "python",
    "config_path",
    "config_sha256",
    "git_commit",
    "git_dirty",
    "untracked",
)


def read_manifests(journal: ReadableJournal) -> list[RunManifest]:
    """Every start's manifest in ``journal``, oldest first."""
    return [
        event for _, event in events_of_type(journal, "RunManifest") if type(event) is RunManifest
    ]


def diff_manifests(old: RunManifest, new: RunManifest) -> list[str]:
    """What differs from ``old`` to ``new``, one line each (empty: the same run)."""
    changes = [
        f"{field}: {getattr(old, field)!r} -> {getattr(new, field)!r}"
        for field in _COMPARED
        if getattr(old, field) != getattr(new, field)
    ]
    for name in sorted(old.files.keys() | new.files.keys()):
        before, after = old.files.get(name), new.files.get(name)
        if before == after:
            continue
        if before is None:
            changes.append(f"file {name}: added ({after})")
        elif after is None:
            changes.append(f"file {name}: removed (was {before})")
        else:
            changes.append(f"file {name}: {before} -> {after}")
    return changes
