"""Backups of a PostgreSQL journal: its rows as stored, out of the database and back in.

A backup reads journal ``name``'s rows from one snapshot (a ``REPEATABLE READ READ
ONLY`` transaction: the node's writes go on, and none is seen half): its meta (chain
and seal key checks), its runs, its snapshots, its HA lease's epoch, and its events
in seq order, each exactly as stored. A sealed payload (``[journal] encryption_key``)
stays sealed: the backup never holds a key and decrypts nothing, and the chain (which
covers the plaintext) still verifies once the rows are back, with the keys.

The dump is a file of frames (4-byte big-endian length, msgpack): a ``DumpHeader``,
then chunks of event rows, so neither side holds a long journal in memory at once.

Restore (``load``) checks the dump and the segments after it offline first (the chain,
snapshots and anchors, payloads opened with the restored vault's keys, exactly as
``bastion journal verify`` does), then writes the rows as stored into a database
where journal ``name`` does not exist yet, in one transaction. The lease is written
with the backed-up epoch and already expired, so an HA member that takes it over
starts above every epoch the journal's orders were sent under.
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import psycopg

from bastion.backup.manifest import JournalHead
from bastion.errors import BackupError, BastionError, OperationalError
from bastion.journal._codec import Chain
from bastion.journal._integrity import (
    META_CHAIN,
    META_KEY_CHECK,
    Keying,
    check_keying,
    scan_records,
)
from bastion.journal._pg_records import READ_CHUNK, SNAPSHOT, Sealer, plain_row
from bastion.journal._pg_schema import LEASES_DDL, connect, describe, pg_error, prepare
from bastion.journal.anchors import read_anchors
from bastion.journal.keys import JournalKeys

DUMP_NAME: Final = "journal-pg.msgpack"
STATEMENT_TIMEOUT_MS: Final = 600_000
"""A dump is one COPY: about 4 s per million rows here; this bounds a hung server."""
_FRAME = struct.Struct(">I")

EventRow = tuple[int, int, str, str | None, bytes, bytes | None, bytes | None]
SnapshotRow = tuple[int, int, bytes, bytes, bytes]
PgRunRow = tuple[int, str, int, int]
"""``bastion_runs`` without the name: run, node id, started_ns, epoch."""


class DumpHeader(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    meta: dict[str, str]
    runs: list[PgRunRow]
    snapshots: list[SnapshotRow]
    lease_epoch: int | None
    events: int
    last_seq: int
    head_hash: str | None


@dataclass(frozen=True)
class PgJournalSource:
    """Where a desk's PostgreSQL journal is: its URL (no password), name, password."""

    url: str
    name: str
    password: str | None = field(default=None, repr=False)


def _open(url: str, password: str | None) -> psycopg.Connection[tuple[Any, ...]]:
    try:
        return connect(
            url,
            password=password,
            connect_timeout_s=10,
            statement_timeout_ms=STATEMENT_TIMEOUT_MS,
            application_name="bastion-backup",
        )
    except OperationalError as error:  # a round to retry, or a backup that failed
        raise BackupError(str(error)) from None


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _event(row: tuple[Any, ...]) -> EventRow:
    seq, ts_ns, type_name, order_id, payload, prev_hash, digest = row
    return (int(seq), int(ts_ns), str(type_name), order_id, bytes(payload), _blob(prev_hash),
            _blob(digest))  # fmt: skip


def _snapshot(row: tuple[Any, ...]) -> SnapshotRow:
    seq, ts_ns, event_hash, payload, digest = row
    return (int(seq), int(ts_ns), bytes(event_hash), bytes(payload), bytes(digest))


def dump(source: PgJournalSource, target: Path, *, encrypted: bool) -> JournalHead:
    """Write journal ``source.name``'s rows as stored into ``target``; its head."""
    conn = _open(source.url, source.password)
    where = describe(conn, source.name)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction(), target.open("wb") as out:
            name = (source.name,)
            found = conn.execute("SELECT to_regclass('bastion_events') IS NOT NULL").fetchone()
            if found is None or not found[0]:
                raise BackupError(f"{where}: the database holds no bastion journal")
            events, last = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM bastion_events WHERE name = %s", name
            ).fetchone() or (0, 0)
            head = conn.execute(
                "SELECT hash FROM bastion_events WHERE name = %s AND seq = %s", (source.name, last)
            ).fetchone()
            lease = conn.execute(
                "SELECT epoch FROM bastion_leases WHERE name = %s", name
            ).fetchone()
            header = DumpHeader(
                name=source.name,
                meta={
                    str(k): str(v)
                    for k, v in conn.execute(
                        "SELECT key, value FROM bastion_meta WHERE name = %s", name
                    )
                },
                runs=[
                    (int(r[0]), str(r[1]), int(r[2]), int(r[3]))
                    for r in conn.execute(
                        "SELECT run, node_id, started_ns, epoch FROM bastion_runs "
                        "WHERE name = %s ORDER BY run",
                        name,
                    )
                ],
                snapshots=[
                    _snapshot(r)
                    for r in conn.execute(
                        "SELECT seq, ts_ns, event_hash, payload, digest FROM bastion_snapshots "
                        "WHERE name = %s ORDER BY seq",
                        name,
                    )
                ],
                lease_epoch=None if lease is None else int(lease[0]),
                events=int(events),
                last_seq=int(last),
                head_hash=None if head is None else bytes(head[0]).hex(),
            )
            _write_frame(out, header)
            chunk: list[EventRow] = []
            with conn.cursor().copy(
                "COPY (SELECT seq, ts_ns, type, client_order_id, payload, prev_hash, hash "
                "FROM bastion_events WHERE name = %s ORDER BY seq) TO STDOUT (FORMAT BINARY)",
                name,
            ) as copy:  # one statement streaming the rows: no query per chunk
                copy.set_types(["int8", "int8", "text", "text", "bytea", "bytea", "bytea"])
                for row in copy.rows():
                    chunk.append(_event(row))
                    if len(chunk) == READ_CHUNK:
                        _write_frame(out, chunk)
                        chunk = []
            if chunk:
                _write_frame(out, chunk)
    except psycopg.Error as error:
        raise pg_error(where, error, source.password, kind=BackupError) from None
    finally:
        conn.close()
    return JournalHead(
        backend="postgres",
        path=DUMP_NAME,
        events=header.events,
        last_seq=header.last_seq,
        head_hash=header.head_hash,
        encrypted=encrypted,
    )


def rows_after(
    source: PgJournalSource, after_seq: int, limit: int
) -> tuple[list[EventRow], list[SnapshotRow], list[PgRunRow]]:
    """Events (as stored) after ``after_seq``, up to ``limit``, the snapshots in that
    range and the runs, from one snapshot: what a segment ships."""
    conn = _open(source.url, source.password)
    where = describe(conn, source.name)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            events = [
                _event(r)
                for r in conn.execute(
                    "SELECT seq, ts_ns, type, client_order_id, payload, prev_hash, hash "
                    "FROM bastion_events WHERE name = %s AND seq > %s ORDER BY seq LIMIT %s",
                    (source.name, after_seq, limit),
                )
            ]
            last = events[-1][0] if events else after_seq
            snapshots = [
                _snapshot(r)
                for r in conn.execute(
                    "SELECT seq, ts_ns, event_hash, payload, digest FROM bastion_snapshots "
                    "WHERE name = %s AND seq > %s AND seq <= %s ORDER BY seq",
                    (source.name, after_seq, last),
                )
            ]
            runs = [
                (int(r[0]), str(r[1]), int(r[2]), int(r[3]))
                for r in conn.execute(
                    "SELECT run, node_id, started_ns, epoch FROM bastion_runs WHERE name = %s "
                    "ORDER BY run",
                    (source.name,),
                )
            ]
    except psycopg.Error as error:
        raise pg_error(where, error, source.password, kind=BackupError) from None
    finally:
        conn.close()
    return events, snapshots, runs


def _write_frame(out: Any, value: object) -> None:
    body = msgspec.msgpack.encode(value)
    out.write(_FRAME.pack(len(body)))
    out.write(body)


def read_dump(path: Path) -> tuple[DumpHeader, Generator[EventRow]]:
    """The dump's header and its event rows, read a chunk at a time."""
    chunks = msgspec.msgpack.Decoder(list[EventRow])
    handle = path.open("rb")
    try:
        header = msgspec.msgpack.decode(_read_frame(handle, path) or b"", type=DumpHeader)
    except BaseException:
        handle.close()
        raise

    def rows() -> Generator[EventRow]:
        with handle:
            while (body := _read_frame(handle, path, optional=True)) is not None:
                yield from chunks.decode(body)

    return header, rows()


def _read_frame(handle: Any, path: Path, *, optional: bool = False) -> bytes | None:
    size = handle.read(_FRAME.size)
    if not size and optional:
        return None
    if len(size) != _FRAME.size:
        raise BackupError(f"{path.name}: cut short")
    body: bytes = handle.read(_FRAME.unpack(size)[0])
    if len(body) != _FRAME.unpack(size)[0]:
        raise BackupError(f"{path.name}: cut short")
    return body


@dataclass
class Restoring:
    """A dump and the segments' rows after it, checked and then written."""

    dump: Path
    header: DumpHeader
    extra_events: list[EventRow] = field(default_factory=list)
    extra_snapshots: list[SnapshotRow] = field(default_factory=list)
    runs: dict[int, PgRunRow] = field(default_factory=dict)
    last_seq: int = 0
    head_hash: str | None = None

    @classmethod
    def open(cls, dump_file: Path) -> Restoring:
        header, rows = read_dump(dump_file)
        rows.close()
        return cls(
            dump=dump_file,
            header=header,
            runs={r[0]: r for r in header.runs},
            last_seq=header.last_seq,
            head_hash=header.head_hash,
        )

    def add_segment(
        self, seg_id: str, events: list[EventRow], snapshots: list[SnapshotRow], runs: list[Any]
    ) -> None:
        """Append a segment's rows after the last seq, each continuing the chain."""
        for row in events:
            if row[0] <= self.last_seq:
                continue
            prev = row[5].hex() if row[5] is not None else None
            if row[0] != self.last_seq + 1 or prev != self.head_hash:
                raise BackupError(
                    f"segment {seg_id}: seq {row[0]} does not continue the journal's chain "
                    f"at seq {self.last_seq}"
                )
            self.extra_events.append(row)
            self.last_seq, self.head_hash = row[0], row[6].hex() if row[6] is not None else None
        self.extra_snapshots += [s for s in snapshots if s[0] <= self.last_seq]
        for run in runs:
            self.runs[int(run[0])] = (int(run[0]), str(run[1]), int(run[2]), int(run[3]))

    def events(self) -> Iterator[EventRow]:
        _, rows = read_dump(self.dump)
        yield from rows
        yield from self.extra_events

    def snapshots(self) -> list[SnapshotRow]:
        by_seq = {s[0]: s for s in self.header.snapshots}
        by_seq.update({s[0]: s for s in self.extra_snapshots})
        return [by_seq[k] for k in sorted(by_seq)]

    def check(self, keys: JournalKeys, anchors: Path | None) -> str | None:
        """The first problem of the rows' chain, snapshots and anchors, or None."""
        name = self.header.name
        sealer = Sealer(keys.encryption, name)
        if self.header.meta.get("seal_key_check", sealer.key_check) != sealer.key_check:
            return "the journal is encrypted: its encryption key is needed (or is another)"
        chain = Chain(keys.chain)
        events = self.header.events + len(self.extra_events)
        meta = self.header.meta
        try:
            check_keying(
                f"backed-up journal {name!r}",
                Keying(meta.get(META_CHAIN, "sha256"), meta.get(META_KEY_CHECK)),
                chain,
                events=events,
                anchors_exist=anchors is not None and anchors.exists(),
            )
            found = read_anchors(anchors, keys.chain) if anchors and keys.chain else []
        except BastionError as error:
            return str(error)
        hashes: dict[int, bytes | None] = {}
        wanted = {s[0] for s in self.snapshots()}

        def records() -> Iterator[tuple[Any, ...]]:
            for row in self.events():
                if row[0] in wanted:
                    hashes[row[0]] = row[6]
                yield plain_row(row, sealer)

        def snapshot_rows() -> Iterable[tuple[int, object, object, object, object]]:
            for seq, _ts, event_hash, payload, digest in self.snapshots():
                opened = sealer.open(SNAPSHOT, seq, payload)
                yield seq, event_hash, opened, digest, hashes.get(seq)

        first = 1 if events else None
        result = scan_records(
            (events, first, self.last_seq or None), records(), snapshot_rows, chain, found
        )
        if result.problem is not None:
            where = f"seq {result.broken_seq}: " if result.broken_seq else ""
            return where + result.problem
        return result.snapshot_problem

    def load(self, url: str, password: str | None) -> str:
        """Write every row as stored into the database at ``url`` (journal ``name`` must
        not exist there); where it went."""
        name = self.header.name
        conn = _open(url, password)
        where = describe(conn, name)
        try:
            prepare(conn)
            conn.execute(LEASES_DDL)
            with conn.transaction():
                taken = conn.execute(
                    "SELECT (SELECT COUNT(*) FROM bastion_events WHERE name = %s) + "
                    "(SELECT COUNT(*) FROM bastion_meta WHERE name = %s) + "
                    "(SELECT COUNT(*) FROM bastion_runs WHERE name = %s)",
                    (name, name, name),
                ).fetchone()
                if taken is not None and taken[0]:
                    raise BackupError(
                        f"{where} already exists: restore into a database (or a journal "
                        "name) that does not hold it"
                    )
                for key, value in self.header.meta.items():
                    conn.execute("INSERT INTO bastion_meta VALUES (%s, %s, %s)", (name, key, value))
                with conn.cursor().copy(
                    "COPY bastion_events (name, seq, ts_ns, type, client_order_id, payload, "
                    "prev_hash, hash) FROM STDIN"
                ) as copy:
                    for row in self.events():
                        copy.write_row((name, *row))
                conn.cursor().executemany(
                    "INSERT INTO bastion_snapshots VALUES (%s, %s, %s, %s, %s, %s)",
                    [(name, *s) for s in self.snapshots()],
                )
                conn.cursor().executemany(
                    "INSERT INTO bastion_runs VALUES (%s, %s, %s, %s, %s)",
                    [(name, *r) for r in sorted(self.runs.values())],
                )
                if self.header.lease_epoch is not None:
                    conn.execute(
                        "INSERT INTO bastion_leases VALUES (%s, %s, 'restored', "
                        "now() - interval '1 hour', now() - interval '1 hour') "
                        "ON CONFLICT (name) DO NOTHING",
                        (name, self.header.lease_epoch),
                    )
        except psycopg.Error as error:
            raise pg_error(where, error, password, kind=BackupError) from None
        except BastionError:
            raise
        finally:
            conn.close()
        return where
