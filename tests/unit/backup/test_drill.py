"""The DR drill on a small desk: restore into scratch, recover, reconcile, measured."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from bastion.backup import encryption
from bastion.backup.config import DrConfig, VenuePositionsConfig
from bastion.backup.create import create_backup
from bastion.backup.desk import open_desk
from bastion.backup.destinations import Destination, open_destination
from bastion.backup.drill import DrillReport, recover_positions, run_drill
from bastion.backup.signing import UNCHECKED
from bastion.clock import LiveClock
from bastion.errors import BackupError, ConfigError, UsageError
from bastion.journal.keys import PLAINTEXT
from kit.backup_desk import BackupDesk, dir_destination, make_desk
from kit.journal_samples import fills

CLOCK = LiveClock()


@pytest.fixture
def desk(tmp_path: Path) -> BackupDesk:
    return make_desk(tmp_path / "desk", dir_destination(tmp_path / "offsite"))


def backed_up(desk: BackupDesk) -> Destination:
    opened = open_desk(desk.config, clock=CLOCK)
    destination = open_destination(
        opened.backup, base_dir=opened.base_dir, node_id=opened.node_id, secrets=opened.secrets
    )
    create_backup(opened, destination, clock=CLOCK)
    return destination


def drill(
    desk: BackupDesk, destination: Destination, scratch: Path, dr: DrConfig, **kw: object
) -> DrillReport:
    return run_drill(
        destination,
        identities=encryption.load_identities(desk.identity),
        signers=UNCHECKED,
        scratch=scratch,
        dr=dr,
        clock=CLOCK,
        source=(desk.journal, None),
        positions_base=desk.root,
        **kw,  # type: ignore[arg-type]
    )


def positions_file(desk: BackupDesk, positions: dict[str, str]) -> DrConfig:
    (desk.root / "statement.json").write_text(json.dumps(positions))
    return DrConfig(
        venue_positions=VenuePositionsConfig(kind="positions_file", path="statement.json")
    )


def test_when_the_venue_agrees_then_the_drill_passes_and_measures_rto_and_rpo(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """Restored, recovered, reconciled: passed; RPO counts the source's unshipped events."""
    destination = backed_up(desk)
    desk.append(fills(7))  # journaled after the backup, never shipped
    before = hashlib.sha256(desk.journal.read_bytes()).hexdigest()
    report = drill(desk, destination, tmp_path / "scratch", positions_file(desk, {}))
    assert report.ok and report.reconciled is True and report.rto_ok
    assert report.restored_last_seq == 50
    assert report.rpo_events == 7
    assert report.rpo_s is not None and report.rpo_s >= 0
    assert set(report.phases_s) == {"fetch", "segments", "verify", "recover", "reconcile"}
    assert 0 < report.rto_s < 60
    assert (tmp_path / "scratch" / "desk" / "paper.toml").is_file()
    assert hashlib.sha256(desk.journal.read_bytes()).hexdigest() == before  # source untouched
    assert "PASSED" in report.text()


def test_when_the_venue_holds_another_position_then_the_drill_fails_naming_it(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A position the restored node does not have: reconciliation disagreed, failed."""
    destination = backed_up(desk)
    report = drill(desk, destination, tmp_path / "scratch", positions_file(desk, {"X": "2"}))
    assert not report.ok and report.reconciled is False
    assert report.mismatches == ["X: 0 in the restored node, 2 at the venue"]
    assert "DISAGREED" in report.text()


def test_when_the_drill_is_slower_than_the_rto_target_then_it_fails(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """An RTO target one step below what the drill takes: failed, rto_ok false."""
    destination = backed_up(desk)
    report = drill(desk, destination, tmp_path / "scratch", DrConfig(), rto_target_s=1e-9)
    assert not report.ok and not report.rto_ok and report.reconciled is None


def test_when_the_source_is_unreachable_then_the_rpo_is_unknown(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """No readable source journal: RPO reported as unknown, not as zero."""
    destination = backed_up(desk)
    report = run_drill(
        destination,
        identities=encryption.load_identities(desk.identity),
        signers=UNCHECKED,
        scratch=tmp_path / "scratch",
        dr=DrConfig(),
        clock=CLOCK,
        source=(tmp_path / "gone.sqlite", None),
    )
    assert report.rpo_events is None and report.rpo_s is None and report.ok
    assert "unknown" in report.text()


def test_when_the_scratch_is_not_empty_then_the_drill_is_refused(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """The drill restores only into a new or empty scratch location."""
    destination = backed_up(desk)
    (tmp_path / "scratch" / "desk").mkdir(parents=True)
    (tmp_path / "scratch" / "desk" / "x").write_text("x")
    with pytest.raises(UsageError):
        drill(desk, destination, tmp_path / "scratch", DrConfig())


def test_when_the_dr_config_is_wrong_then_the_key_is_named() -> None:
    """[dr] keys are checked with their name."""
    with pytest.raises(ConfigError, match=r"dr\.rto_target_s"):
        DrConfig(rto_target_s=0)
    with pytest.raises(ConfigError, match=r"dr\.venue_positions.kind"):
        VenuePositionsConfig(kind="ftp", path="x")
    with pytest.raises(ConfigError, match=r"dr\.venue_positions.account"):
        VenuePositionsConfig(kind="venue_sim_ledger", path="x")


def test_when_the_scratch_url_holds_a_password_then_it_is_refused_without_echoing_it() -> None:
    """[dr] scratch_url is a libpq URL without a password; the password is a vault
    reference (or PGPASSWORD)."""
    with pytest.raises(ConfigError, match=r"dr\.scratch_url': holds a password") as caught:
        DrConfig(scratch_url="postgresql://drill:hunter2x@dr-db/postgres")
    assert "hunter2x" not in str(caught.value) and "dr.scratch_password" in str(caught.value)
    with pytest.raises(ConfigError, match=r"dr\.scratch_password"):
        DrConfig(scratch_url="postgresql://drill@dr-db/postgres", scratch_password="hunter2x")
    assert DrConfig(scratch_url="postgresql://drill@dr-db/postgres").scratch_password is None


def test_when_a_restored_postgres_journal_has_no_scratch_database_then_recovery_refuses(
    desk: BackupDesk,
) -> None:
    """The restored config's [journal] url is the source's: recovery never opens it (it
    would write there), only the drill's own scratch database."""
    text = desk.config.read_text().replace(
        '[journal]\npath = "state/journal.sqlite"',
        '[journal]\nbackend = "postgres"\nurl = "postgresql://bastion@127.0.0.1:1/source"\n'
        'path = "state/journal.pg"',
    )
    desk.config.write_text(text)
    with pytest.raises(BackupError, match=r"scratch database \(\[dr\] scratch_url\)"):
        recover_positions(desk.config, PLAINTEXT)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, by its relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_when_the_restored_config_points_strategies_and_stores_at_the_source_then_none_is_written(
    desk: BackupDesk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desk runs its strategy inline from a directory outside it and has a FIX venue
    whose session store is there too (absolute paths, as a desk deployed under /srv
    has). The drill's node recovers from the copies the backup restored under outside/:
    it imports no source file (no bytecode cache written beside it) and opens no
    source store (no row, no WAL, no schema written)."""
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-drill-desk")
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as a node's Python does
    live = tmp_path / "live"
    (live / "strategies").mkdir(parents=True)
    strategy = (desk.root / "strategies" / "idle.py").read_bytes()
    (live / "strategies" / "idle.py").write_bytes(strategy)
    store = live / "fix" / "session.sqlite"
    store.parent.mkdir()
    from bastion.fix.store import SqliteSessionStore

    SqliteSessionStore(store, "FIX.4.4:NODE->SIM", now_ns=1).close()
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    text = desk.config.read_text()
    text = text.replace('id = "desk-1"', 'id = "desk-1"\nisolation = "inline"', 1)
    text = text.replace('path = "strategies/idle.py"', f'path = "{live}/strategies/idle.py"')
    text = text.replace('id = "X"', 'id = "X"\nvenue = "SIM"', 1)
    text += (
        '\n[[venues]]\nkind = "sim"\nname = "SIM"\n'
        '\n[[venues]]\nkind = "fix"\nname = "FIXSIM"\nport = 9\nsender_comp_id = "NODE"\n'
        'target_comp_id = "SIM"\nusername = "trader"\npassword_env = "BASTION_FIX_PASSWORD"\n'
        f'store_path = "{store}"\n'
    )
    desk.config.write_text(text)
    destination = backed_up(desk)
    before = _tree(live)
    report = drill(desk, destination, tmp_path / "scratch", positions_file(desk, {}))
    assert report.ok and report.reconciled is True
    assert _tree(live) == before
    assert not (live / "strategies" / "__pycache__").exists()
