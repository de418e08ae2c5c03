"""Reading a PostgreSQL journal without writing it: tailing (what a warm standby
polls, or waits on with LISTEN/NOTIFY) and the ``bastion journal verify|export|stats``
checks, with the same results as for a SQLite journal.

``PostgresJournalReader(url, name=..., password=..., keys=...)`` opens one
connection (autocommit: each query sees the latest commit):

- ``events_after(seq, limit)``: committed events with seq > ``seq``, decoded, in order;
- ``committed_seq()``: the journal's last committed seq;
- ``wait_for_commit(after, timeout_s)``: block until a commit past ``after`` is
  announced on the journal's channel (or found already there); the committed seq, or
  None on timeout. A tailer loops ``wait_for_commit`` then ``events_after``;
- ``events_of(types, ...)``, ``stats()``, ``export_jsonl(out)``: what the features that
  read a journal take (``bastion.journal.readable.ReadableJournal``: the audit trail,
  the start checks, the incident bundle, ``bastion manifest``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

import msgspec
import psycopg
from psycopg import sql

from bastion.errors import IntegrityError, OperationalError, StorageKeyError
from bastion.journal._codec import Chain, JournalEvent, new_decoder
from bastion.journal._integrity import (
    META_CHAIN,
    META_KEY_CHECK,
    Keying,
    check_keying,
    scan_records,
)
from bastion.journal._pg_records import (
    EVENT,
    META_SEAL_CHECK,
    READ_CHUNK,
    SNAPSHOT,
    SealBroken,
    Sealer,
    iter_stored,
    plain_row,
)
from bastion.journal._pg_schema import (
    SCHEMA_VERSION,
    connect,
    describe,
    notify_channel,
    pg_error,
    read_meta,
)
from bastion.journal.anchors import read_anchors
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.journal.readable import EventRecord, decoded
from bastion.journal.reader import (
    MAX_SEQ,
    ExportedRecord,
    JournalStats,
    NoJournalYet,
    NotAJournalError,
    VerifyResult,
)

__all__ = ["PostgresJournalReader"]

_TYPED: Final = (
    "SELECT seq, ts_ns, type, payload FROM bastion_events "
    "WHERE name = %s AND type = ANY(%s) AND seq > %s AND seq < %s ORDER BY seq "
)
_TYPED_OLDEST_FIRST: Final = _TYPED + "LIMIT %s"
_TYPED_NEWEST_FIRST: Final = _TYPED + "DESC LIMIT %s"


class PostgresJournalReader:
    """A read-only view of journal ``name`` (close it, or use it as a context manager)."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        password: str | None = None,
        keys: JournalKeys = PLAINTEXT,
        connect_timeout_s: int = 5,
        statement_timeout_ms: int = 30_000,
    ) -> None:
        self.name = name
        self._password = password
        self._keys = keys
        self._sealer = Sealer(keys.encryption, name)
        self._conn = connect(
            url,
            password=password,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_ms=statement_timeout_ms,
            application_name="bastion-journal-reader",
        )
        self.where = describe(self._conn, name)
        self._listening = False
        try:
            self.schema_version = self._version()
            meta = read_meta(self._conn, name)
        except psycopg.Error as error:
            self._conn.close()
            raise pg_error(self.where, error, password) from None
        except BaseException:
            self._conn.close()
            raise
        self._meta = meta
        check = meta.get(META_SEAL_CHECK)
        if check is not None and check != self._sealer.key_check:
            self._conn.close()
            what = (
                "its encryption key is needed"
                if keys.encryption is None
                else "wrong encryption key"
            )
            raise StorageKeyError(f"{self.where} is encrypted: {what}")

    def _version(self) -> int:
        row = self._conn.execute("SELECT to_regclass('bastion_meta') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            raise NoJournalYet(f"{self.where}: the database holds no bastion journals")
        found = self._conn.execute(
            "SELECT value FROM bastion_meta WHERE name = '' AND key = 'schema_version'"
        ).fetchone()
        version = 0 if found is None else int(str(found[0]))
        if version > SCHEMA_VERSION:
            raise NotAJournalError(
                f"{self.where}: schema version {version} is newer than this bastion "
                f"({SCHEMA_VERSION})"
            )
        return version

    def __enter__(self) -> PostgresJournalReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def _query(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(query, params).fetchall()
        except psycopg.Error as error:
            raise pg_error(self.where, error, self._password) from error

    # -- tailing -----------------------------------------------------------------------
    def committed_seq(self) -> int:
        rows = self._query(
            "SELECT COALESCE(MAX(seq), 0) FROM bastion_events WHERE name = %s", (self.name,)
        )
        return int(rows[0][0])

    def events_after(self, seq: int, limit: int = 4096) -> list[tuple[int, JournalEvent]]:
        """Up to ``limit`` committed events with seq > ``seq``, decoded, in seq order."""
        decoder = new_decoder().decode
        out: list[tuple[int, JournalEvent]] = []
        for found, payload in self._query(
            "SELECT seq, payload FROM bastion_events WHERE name = %s AND seq > %s "
            "ORDER BY seq LIMIT %s",
            (self.name, seq, limit),
        ):
            plain = self._sealer.open(EVENT, found, bytes(payload))
            try:
                out.append((int(found), decoder(plain)))
            except (msgspec.DecodeError, TypeError) as error:
                raise OperationalError(
                    f"{self.where}: record {found} does not decode ({error})"
                ) from error
        return out

    def events_of(
        self,
        types: Sequence[str],
        *,
        after: int = 0,
        before: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[EventRecord]:
        """The events whose type is one of ``types`` with ``after < seq < before`` (None:
        no upper bound), by seq (descending if ``newest_first``), fetched in chunks; an
        event whose payload does not open or decode has ``event`` None
        (``bastion.journal.readable.ReadableJournal``)."""
        decode = new_decoder().decode
        low, high = after, MAX_SEQ if before is None else before
        query = _TYPED_NEWEST_FIRST if newest_first else _TYPED_OLDEST_FIRST
        while types:
            rows = self._query(query, (self.name, list(types), low, high, READ_CHUNK))
            for seq, ts_ns, type_name, payload in rows:
                plain = self._sealer.open(EVENT, seq, bytes(payload))
                event = None if isinstance(plain, SealBroken) else decoded(decode, plain)
                yield EventRecord(int(seq), int(ts_ns), str(type_name), event)
            if len(rows) < READ_CHUNK:
                return
            if newest_first:
                high = int(rows[-1][0])
            else:
                low = int(rows[-1][0])

    def records_after(self, seq: int) -> Iterator[tuple[Any, ...]]:
        """The committed records with seq > ``seq`` as every backend chains them (raw,
        payload opened: ``seq, ts_ns, type, client_order_id, payload, prev_hash, hash``),
        unchecked, in seq order: a warm standby checks each itself
        (``bastion.ha.pg_source``). A payload that does not open is a ``SealBroken``."""
        try:
            for raw in iter_stored(self._conn, self.name, after=seq):
                yield plain_row(raw, self._sealer)
        except psycopg.Error as error:
            raise pg_error(self.where, error, self._password) from error

    def newest_snapshot(self) -> tuple[int, int, bytes, bytes, bytes] | None:
        """The newest stored snapshot, unchecked: ``(seq, ts_ns, payload opened,
        event_hash, digest)``, or None."""
        rows = self._query(
            "SELECT seq, ts_ns, payload, event_hash, digest FROM bastion_snapshots "
            "WHERE name = %s ORDER BY seq DESC LIMIT 1",
            (self.name,),
        )
        if not rows:
            return None
        seq, ts_ns, payload, event_hash, digest = rows[0]
        plain = self._sealer.open(SNAPSHOT, seq, bytes(payload))
        if isinstance(plain, SealBroken):  # its seal check fails: the standby replays instead
            plain = b""
        return int(seq), int(ts_ns), plain, bytes(event_hash), bytes(digest)

    def wait_for_commit(self, after: int, timeout_s: float) -> int | None:
        """The committed seq once it passes ``after`` (announced or already there), or
        None after ``timeout_s``."""
        try:
            if not self._listening:
                self._conn.execute(
                    sql.SQL("LISTEN {}").format(sql.Identifier(notify_channel(self.name)))
                )
                self._listening = True
            committed = self.committed_seq()  # a commit before LISTEN is not announced
            if committed > after:
                return committed
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                for notice in self._conn.notifies(timeout=left, stop_after=1):
                    seq = int(notice.payload)
                    if seq > after:
                        return seq
            return None
        except psycopg.Error as error:
            raise pg_error(self.where, error, self._password) from error

    # -- the checks behind `bastion journal` -------------------------------------------
    def _counts(self) -> tuple[int, int | None, int | None]:
        row = self._query(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM bastion_events WHERE name = %s", (self.name,)
        )[0]
        return int(row[0]), row[1], row[2]

    def verify(self, *, anchors: Path | None = None) -> VerifyResult:
        """Check every record, snapshot and (given a local anchors file) anchor, as
        ``verify_journal`` does for SQLite."""
        chain = Chain(self._keys.chain)
        events, first_seq, last_seq = self._counts()
        base: dict[str, Any] = {
            "path": self.where,
            "schema_version": self.schema_version,
            "events": events,
            "first_seq": first_seq,
            "last_seq": last_seq,
        }
        stored = Keying(self._meta.get(META_CHAIN, "sha256"), self._meta.get(META_KEY_CHECK))
        if stored.keyed and not chain.keyed:
            return VerifyResult(
                **base,
                last_hash=None,
                keyed=True,
                problem="the journal's chain is keyed (HMAC-SHA256): it cannot be checked "
                "without the chain key",
            )
        anchors_exist = anchors is not None and anchors.exists()
        try:
            check_keying(self.where, stored, chain, events=events, anchors_exist=anchors_exist)
            found = read_anchors(anchors, self._keys.chain) if anchors and self._keys.chain else []
        except IntegrityError as error:
            return VerifyResult(**base, last_hash=None, keyed=stored.keyed, problem=str(error))
        try:
            result = scan_records(
                (events, first_seq, last_seq),
                (plain_row(raw, self._sealer) for raw in iter_stored(self._conn, self.name)),
                self._snapshot_rows,
                chain,
                found,
            )
        except psycopg.Error as error:
            raise pg_error(self.where, error, self._password) from error
        common: dict[str, Any] = {
            "keyed": stored.keyed,
            "anchors": result.anchors,
            "snapshots": result.snapshots,
        }
        if result.problem is not None:
            return VerifyResult(
                **base,
                **common,
                last_hash=None,
                broken_seq=result.broken_seq,
                problem=result.problem,
                torn_tail=result.torn_tail,
            )
        return VerifyResult(
            **base,
            **common,
            last_hash=result.last_hash.hex() if events else None,
            problem=result.snapshot_problem,
        )

    def _snapshot_rows(self) -> Iterator[tuple[int, object, object, object, object]]:
        for seq, event_hash, payload, digest, chained in self._query(
            "SELECT s.seq, s.event_hash, s.payload, s.digest, e.hash FROM bastion_snapshots s "
            "LEFT JOIN bastion_events e ON e.name = s.name AND e.seq = s.seq "
            "WHERE s.name = %s ORDER BY s.seq",
            (self.name,),
        ):
            yield (
                int(seq),
                bytes(event_hash),
                self._sealer.open(SNAPSHOT, seq, bytes(payload)),
                bytes(digest),
                None if chained is None else bytes(chained),
            )

    def stats(self) -> JournalStats:
        events, first_seq, last_seq = self._counts()
        name = (self.name,)
        by_type = {
            str(t): int(c)
            for t, c in self._query(
                "SELECT type, COUNT(*) FROM bastion_events WHERE name = %s GROUP BY type "
                "ORDER BY type",
                name,
            )
        }
        runs = int(self._query("SELECT COUNT(*) FROM bastion_runs WHERE name = %s", name)[0][0])
        ts = self._query(
            "SELECT (SELECT ts_ns FROM bastion_events WHERE name = %s ORDER BY seq LIMIT 1), "
            "(SELECT ts_ns FROM bastion_events WHERE name = %s ORDER BY seq DESC LIMIT 1), "
            "(SELECT COALESCE(SUM(octet_length(payload) + octet_length(type) + 80), 0) "
            "FROM bastion_events WHERE name = %s)",
            (self.name, self.name, self.name),
        )[0]
        snapshots, last_snapshot = self._query(
            "SELECT COUNT(*), MAX(seq) FROM bastion_snapshots WHERE name = %s", name
        )[0]
        torn = self._query("SELECT COUNT(*) FROM bastion_torn_records WHERE name = %s", name)[0][0]
        return JournalStats(
            path=self.where,
            schema_version=self.schema_version,
            file_bytes=int(ts[2]),
            events=events,
            by_type=by_type,
            runs=runs,
            first_seq=first_seq,
            last_seq=last_seq,
            first_ts_ns=ts[0],
            last_ts_ns=ts[1],
            snapshots=int(snapshots),
            last_snapshot_seq=last_snapshot,
            torn_records=int(torn),
        )

    def export_jsonl(self, out: IO[bytes], *, from_seq: int = 1, to_seq: int | None = None) -> int:
        """Write events with ``from_seq <= seq <= to_seq`` (None: to the last) as JSON
        lines (as ``export_jsonl``)."""
        decoder = new_decoder()
        encoder = msgspec.json.Encoder()
        n = 0
        try:
            for raw in iter_stored(self._conn, self.name, after=from_seq - 1):
                seq, ts_ns, type_name, client_order_id, payload, _prev, _hash = plain_row(
                    raw, self._sealer
                )
                if to_seq is not None and seq > to_seq:
                    break
                try:
                    event = decoder.decode(payload)
                except (msgspec.DecodeError, TypeError) as error:
                    raise OperationalError(
                        f"{self.where}: seq {seq}: undecodable payload: {error}"
                    ) from error
                record = ExportedRecord(
                    seq=seq,
                    ts_ns=ts_ns,
                    type=type_name,
                    client_order_id=client_order_id,
                    event=event,
                )
                out.write(encoder.encode(record) + b"\n")
                n += 1
        except psycopg.Error as error:
            raise pg_error(self.where, error, self._password) from error
        return n
