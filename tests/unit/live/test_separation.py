"""Paper and live never share a journal or a journal directory; a backtest never journals
into a live one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.journal.locator import JournalLocator
from bastion.journal.sqlite import SqliteJournal
from bastion.live.separation import (
    check_backtest_journal,
    check_journal_mode,
    directory_mode,
    mark_journal_dir,
    marker_path,
)
from bastion.model.events import RunManifest

T0 = 1_767_225_600_000_000_000
sqlite = JournalLocator.sqlite


def journal_with_manifest(path: Path, mode: str) -> Path:
    """A journal holding one start's manifest in ``mode``, and no directory marker."""
    journal = SqliteJournal(path)
    journal.begin_run("n1", T0)
    journal.append(
        RunManifest(
            ts_ns=T0,
            node_id="n1",
            epoch=1,
            mode=mode,
            version="0",
            python="3",
            host="h",
            who="alice",
            config_path="node.toml",
            config_sha256="ab" * 32,
            files={},
        )
    )
    journal.close()
    return path


def test_when_a_directory_is_marked_then_the_marker_is_private(tmp_path: Path) -> None:
    """The first start writes `.bastion-mode` (0600) with its mode; later ones keep it."""
    journal = tmp_path / "live" / "journal.sqlite"
    mark_journal_dir(journal, "live")
    assert marker_path(journal).read_text() == "live\n"
    assert stat.S_IMODE(marker_path(journal).stat().st_mode) == 0o600
    mark_journal_dir(journal, "live")
    assert directory_mode(journal) == "live"


@pytest.mark.parametrize(("marked", "starting"), [("paper", "live"), ("live", "paper")])
def test_when_the_directory_is_the_other_modes_then_refused(
    tmp_path: Path, marked: str, starting: str
) -> None:
    """A node refuses a journal directory marked with the other mode, even for another
    journal file in it."""
    mark_journal_dir(tmp_path / "paper-journal.sqlite", marked)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"holds a {marked} node's journal"):
        check_journal_mode(sqlite(tmp_path / "journal.sqlite"), starting)  # type: ignore[arg-type]


@pytest.mark.parametrize(("written", "starting"), [("paper", "live"), ("live", "paper")])
def test_when_the_journal_was_written_by_the_other_mode_then_refused(
    tmp_path: Path, written: str, starting: str
) -> None:
    """Without a marker (deleted, or an older journal), the journal's manifests still
    refuse a node of the other mode."""
    journal = journal_with_manifest(tmp_path / "journal.sqlite", written)
    with pytest.raises(ConfigError, match=f"was written by a {written} node"):
        check_journal_mode(sqlite(journal), starting)  # type: ignore[arg-type]
    check_journal_mode(sqlite(journal), written)  # type: ignore[arg-type]


def test_when_the_marker_is_garbage_then_refused_naming_it(tmp_path: Path) -> None:
    """A marker that says neither mode is refused, naming the file."""
    journal = tmp_path / "journal.sqlite"
    marker_path(journal).write_text("both\n")
    with pytest.raises(ConfigError, match=r"\.bastion-mode: says 'both'"):
        check_journal_mode(sqlite(journal), "paper")


def test_when_a_backtest_journals_into_a_live_directory_then_refused(tmp_path: Path) -> None:
    """A backtest refuses a live directory or journal, and leaves paper ones unmarked."""
    mark_journal_dir(tmp_path / "live" / "journal.sqlite", "live")
    with pytest.raises(ConfigError, match="backtest journals elsewhere"):
        check_backtest_journal(tmp_path / "live" / "bt.sqlite")
    live = journal_with_manifest(tmp_path / "other.sqlite", "live")
    with pytest.raises(ConfigError, match="backtest journals elsewhere"):
        check_backtest_journal(live)
    check_backtest_journal(tmp_path / "paper" / "bt.sqlite")
    assert directory_mode(tmp_path / "paper" / "bt.sqlite") is None
