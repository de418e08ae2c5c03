"""A keyed journal against an insider with write access: each edit is named by ``verify``
and refused by the writer's open (what a node starts from)."""

from __future__ import annotations

import hmac
import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bastion.errors import IntegrityError, StorageKeyError
from bastion.journal import SqliteJournal, verify_journal
from bastion.journal._codec import (
    GENESIS_HASH,
    Chain,
    RecordEncoder,
    chain_hash,
    new_decoder,
    record_problem,
)
from bastion.journal.anchors import anchor_path, read_anchors
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.model.events import JournalTailSetAside
from kit.journal_attacks import (
    CHAIN_KEY,
    KEYED,
    OTHER_KEY,
    anchor_lines,
    downgrade,
    drop_last_anchor_line,
    edit_fill_price,
    keyed_journal,
    rechain_unkeyed,
)
from kit.journal_samples import any_event, execute, fills
from kit.waiting import eventually


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "j.sqlite"
    keyed_journal(p)
    return p


def refused(path: Path, keys: JournalKeys = KEYED) -> str:
    with pytest.raises((IntegrityError, StorageKeyError)) as caught:
        SqliteJournal(path, keys=keys)
    return str(caught.value)


def test_when_keyed_and_intact_then_verify_reports_a_keyed_chain_with_anchors(path: Path) -> None:
    """An untouched keyed journal verifies with its key: keyed, snapshot sealed, anchored."""
    result = verify_journal(path, keys=KEYED)
    assert result.ok, result.problem
    assert (result.keyed, result.events, result.snapshots) == (True, 10, 1)
    assert result.anchors >= 2  # at open (seq 0) and at close (seq 10)
    anchors = read_anchors(anchor_path(path), CHAIN_KEY)
    assert anchors[-1].seq == 10 and anchors[-1].hash.hex() == result.last_hash


def test_when_keyed_then_hashes_are_hmac_not_sha256(path: Path) -> None:
    """The stored hash is HMAC-SHA256 over the record's bytes, not plain SHA-256."""
    db = sqlite3.connect(path)
    try:
        seq, ts_ns, type_name, payload, digest = db.execute(
            "SELECT seq, ts_ns, type, payload, hash FROM events WHERE seq = 1"
        ).fetchone()
    finally:
        db.close()
    assert digest != chain_hash(GENESIS_HASH, seq, ts_ns, type_name, payload)
    header = seq.to_bytes(8, "big") + ts_ns.to_bytes(8, "big", signed=True)
    message = GENESIS_HASH + header + len(type_name).to_bytes(2, "big")
    assert digest == hmac.digest(CHAIN_KEY, message + type_name.encode() + payload, "sha256")


def test_when_a_fill_price_is_edited_then_verify_and_open_name_the_record(path: Path) -> None:
    """A changed fill price is a forged record 4, for verify and for the writer's open."""
    edit_fill_price(path, 4, price=1)
    result = verify_journal(path, keys=KEYED)
    assert result.broken_seq == 4 and result.problem is not None
    assert "hash mismatch" in result.problem and not result.torn_tail
    assert "first bad record seq 4" in refused(path)


def test_when_a_record_is_deleted_then_verify_and_open_name_the_gap(path: Path) -> None:
    """Deleting record 6 breaks the chain at 7."""
    execute(path, "DELETE FROM events WHERE seq = 6")
    assert verify_journal(path, keys=KEYED).broken_seq == 7
    assert "first bad record seq 7: gap in seq" in refused(path)


def test_when_the_journal_is_cut_short_then_the_last_anchor_names_it(path: Path) -> None:
    """Records 8..10 deleted (a valid shorter chain): the anchor at seq 10 catches it."""
    execute(path, "DELETE FROM events WHERE seq >= 8")
    result = verify_journal(path, keys=KEYED)
    assert not result.ok and result.problem is not None
    assert "ends at seq 7" in result.problem and "names seq 10" in result.problem
    assert "cut off" in refused(path)


def test_when_the_last_record_is_cut_then_it_is_not_set_aside_as_torn(path: Path) -> None:
    """A damaged last record that an anchor covers is a forgery, never a torn tail."""
    execute(path, "UPDATE events SET payload = substr(payload, 1, 9) WHERE seq = 10")
    result = verify_journal(path, keys=KEYED)
    assert (result.broken_seq, result.torn_tail) == (10, False)
    assert "anchor" in refused(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT COUNT(*) FROM torn_records").fetchone()[0] == 0
    finally:
        db.close()


def test_when_rechained_without_the_key_then_the_first_record_is_forged(path: Path) -> None:
    """An insider edits a fill, deletes a record and re-chains with bastion's unkeyed
    functions: nothing verifies under the key, from record 1."""
    edit_fill_price(path, 4, price=1)
    execute(path, "DELETE FROM events WHERE seq = 6")
    rechain_unkeyed(path)
    result = verify_journal(path, keys=KEYED)
    assert result.broken_seq == 1 and result.problem is not None
    assert "hash mismatch" in result.problem
    assert "first bad record seq 1" in refused(path)


def test_when_downgraded_to_unkeyed_then_a_keyed_open_and_verify_refuse(path: Path) -> None:
    """Meta rewritten to an unkeyed chain and re-chained with SHA-256: refused with the key,
    and reported without it (its anchors betray it)."""
    downgrade(path)
    with_key = verify_journal(path, keys=KEYED)
    assert with_key.problem is not None and "downgraded" in with_key.problem
    without_key = verify_journal(path)
    assert without_key.problem is not None and "downgraded" in without_key.problem
    assert "downgraded" in refused(path)
    with pytest.raises(IntegrityError, match="downgraded"):
        SqliteJournal(path)


def test_when_downgraded_and_anchors_deleted_then_the_key_still_refuses_it(path: Path) -> None:
    """Without anchors, the unkeyed chain verifies as unkeyed (reported so), and a node given
    the chain key refuses it."""
    downgrade(path)
    anchor_path(path).unlink()
    plain = verify_journal(path)
    assert plain.ok and not plain.keyed
    result = verify_journal(path, keys=KEYED)
    assert result.problem is not None and "unkeyed" in result.problem
    assert "downgraded" in refused(path)


def test_when_a_snapshot_is_edited_and_resealed_then_it_is_named(path: Path) -> None:
    """A snapshot's payload changed and re-sealed with the unkeyed digest is named."""
    from bastion.journal._codec import snapshot_digest

    db = sqlite3.connect(path)
    try:
        seq, event_hash = db.execute("SELECT seq, event_hash FROM snapshots").fetchone()
        forged = b"state with a better position"
        with db:
            db.execute(
                "UPDATE snapshots SET payload = ?, digest = ?",
                (forged, snapshot_digest(seq, event_hash, forged)),
            )
    finally:
        db.close()
    result = verify_journal(path, keys=KEYED)
    assert result.problem == f"snapshot at seq {seq}: digest mismatch (damaged)"
    assert f"snapshot at seq {seq}" in refused(path)


def test_when_the_last_anchor_line_is_deleted_then_the_intact_journal_still_verifies(
    path: Path,
) -> None:
    """Anchors are a lower bound: losing the newest one alone forges nothing."""
    before = len(anchor_lines(path))
    drop_last_anchor_line(path)
    result = verify_journal(path, keys=KEYED)
    assert result.ok and result.anchors == before - 1


def test_when_the_last_anchor_line_is_deleted_and_the_journal_cut_then_older_anchors_hold(
    tmp_path: Path,
) -> None:
    """Cut below an older anchor: still caught against it (the newest line is gone)."""
    path = tmp_path / "j.sqlite"
    keyed_journal(path, n=5)
    journal = SqliteJournal(path, keys=KEYED)  # anchors 5 on open
    for fill in fills(3):
        journal.append(fill)
    journal.close()  # anchors 8
    drop_last_anchor_line(path)
    execute(path, "DELETE FROM events WHERE seq >= 4")
    result = verify_journal(path, keys=KEYED)
    assert result.problem is not None and "names seq 5" in result.problem
    assert "names seq 5" in refused(path)


def test_when_a_middle_anchor_is_deleted_or_forged_then_its_line_is_named(path: Path) -> None:
    """Anchors are numbered and MACed: a deleted line, or an edited one, is named."""
    lines = anchor_lines(path)
    anchor_path(path).write_bytes(b"".join(line + b"\n" for line in lines[1:]))
    assert "line 1: anchor number 2" in refused(path)
    edited = lines[1].replace(b'"seq":10', b'"seq":9')
    anchor_path(path).write_bytes(lines[0] + b"\n" + edited + b"\n")
    assert "line 2: MAC does not check out" in refused(path)


def test_when_the_anchor_file_is_deleted_then_a_keyed_journal_is_refused(path: Path) -> None:
    """A keyed journal with events and no anchors had them deleted."""
    anchor_path(path).unlink()
    assert "missing" in refused(path)
    result = verify_journal(path, keys=KEYED)
    assert result.problem is not None and "missing" in result.problem


def test_when_opened_without_the_chain_key_then_it_is_refused_and_verify_cannot_check(
    path: Path,
) -> None:
    """No key: the writer refuses (its records would break the chain); verify says it
    cannot check the chain."""
    with pytest.raises(StorageKeyError, match="chain key is needed"):
        SqliteJournal(path)
    result = verify_journal(path, keys=PLAINTEXT)
    assert not result.ok and result.keyed
    assert (
        result.problem is not None and "cannot be checked without the chain key" in result.problem
    )


def test_when_the_chain_key_is_wrong_then_it_is_told_apart_from_forgery(path: Path) -> None:
    """Another key is a key error (the key check value), not a forged record."""
    other = JournalKeys(chain=OTHER_KEY)
    assert "wrong chain key" in refused(path, other)
    with pytest.raises(StorageKeyError, match="wrong chain key"):
        verify_journal(path, keys=other)


def test_when_an_unkeyed_journal_has_events_then_a_chain_key_is_refused(tmp_path: Path) -> None:
    """An existing unkeyed journal is not silently keyed: its past proves nothing."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    journal.append(fills(1)[0])
    journal.close()
    assert "unkeyed" in refused(path)
    assert verify_journal(path).ok and not verify_journal(path).keyed


def test_when_a_keyed_tail_is_torn_past_the_last_anchor_then_it_is_set_aside_and_journaled(
    tmp_path: Path,
) -> None:
    """A last record written after the last anchor and damaged (a crash cut it) is set
    aside, journaled and logged as an error; the chain goes on under the key."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path, keys=KEYED, durability="fsync_each", anchor_interval_s=3600)
    for fill in fills(4):
        journal.append(fill)
    anchors = journal._writer.anchors
    assert anchors is not None
    anchors.close()  # the process dies before its closing anchor (the last one: seq 0)
    journal._writer.anchors = None
    journal.close()
    execute(path, "UPDATE events SET hash = substr(hash, 1, 7) WHERE seq = 4")
    assert verify_journal(path, keys=KEYED).torn_tail
    with capture_logs() as logs:
        journal = SqliteJournal(path, keys=KEYED)
    try:
        assert journal.torn_tail == 4
        journal.flush()
        [(seq, event)] = list(journal.read(3))
    finally:
        journal.close()
    assert seq == 4 and isinstance(event, JournalTailSetAside)
    assert [e["log_level"] for e in logs if e["event"] == "journal_tail_set_aside"] == ["error"]
    assert verify_journal(path, keys=KEYED).ok


def test_when_running_then_anchors_are_written_every_interval_off_the_caller(
    tmp_path: Path,
) -> None:
    """With a short interval the writer thread anchors the committed head while appends go
    on (group mode); each anchor is logged as journal_anchor."""
    path = tmp_path / "j.sqlite"
    with capture_logs() as logs:
        journal = SqliteJournal(path, keys=KEYED, commit_interval_ms=1, anchor_interval_s=0.01)
        try:
            for fill in fills(3):
                journal.append(fill)
            eventually(
                lambda: any(a.seq == 3 for a in read_anchors(anchor_path(path), CHAIN_KEY)),
                what="an anchor at seq 3 while the journal is open",
            )
        finally:
            journal.close()
    logged = [e for e in logs if e["event"] == "journal_anchor"]
    assert any(e["seq"] == 3 and len(e["hash"]) == 64 for e in logged)


def test_when_keyed_files_are_created_then_only_the_owner_can_read_them(path: Path) -> None:
    """The journal, its WAL/lock files and its anchors are 0600; a new directory 0700."""
    nested = path.parent / "new" / "j.sqlite"
    keyed_journal(nested)
    for file in nested.parent.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
    assert {f.name for f in nested.parent.iterdir()} >= {"j.sqlite", "j.sqlite.anchors"}
    assert stat.S_IMODE(nested.parent.stat().st_mode) == 0o700


@settings(max_examples=60, deadline=None)
@given(events=st.lists(any_event, min_size=1, max_size=8), key=st.binary(min_size=32, max_size=32))
def test_when_events_are_chained_with_a_key_then_they_verify_only_under_it(
    events: list[object], key: bytes
) -> None:
    """Keyed records decode back equal and check out under their key, under no other key
    and not as an unkeyed chain."""
    chain = Chain(key)
    other = Chain(bytes(b ^ 1 for b in key))
    encoder = RecordEncoder(0, GENESIS_HASH, chain)
    decoder = new_decoder()
    prev = GENESIS_HASH
    for seq, event in enumerate(events, start=1):
        row = encoder.encode(event)
        assert decoder.decode(row[4]) == event
        assert record_problem(row, seq, prev, decoder, chain) is None
        assert record_problem(row, seq, prev, decoder, other) is not None
        assert record_problem(row, seq, prev, decoder) == "hash mismatch"
        prev = row[6]
