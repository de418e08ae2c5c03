"""Anchors: the head of a keyed journal's chain, written outside the journal file.

A keyed chain proves that no record was changed by someone without the chain key, but
not that records were not cut off the end: a journal truncated at seq 40 is a valid
chain of 40 records. So every ``anchor_interval_s``, and when the journal closes, the
writer appends the chain head (``seq``, ``hash``) to ``<journal>.anchors`` — one JSON
line per anchor, numbered from 1 and MACed with the chain key, in a file opened
``O_APPEND`` (0600) — and logs it (``journal_anchor``), so a copy leaves the host with
the logs. On open and in ``verify``, every anchor must name a record of the chain with
that very hash, and the journal must reach the last anchor.

What it does not catch: deleting the anchor file's last lines together with the
records after the remaining last anchor (an insider can do both on one disk). The
``journal_anchor`` log lines, shipped off the host, are the copy that catches it.
"""

from __future__ import annotations

import hmac
import json
import os
from pathlib import Path
from typing import Final, NamedTuple

import structlog

from bastion.errors import IntegrityError

log = structlog.get_logger("bastion.journal")

ANCHOR_SUFFIX: Final = ".anchors"
_MAC_DOMAIN: Final = b"bastion-anchor\x00"


class Anchor(NamedTuple):
    """The chain's head at one moment: record ``seq`` had hash ``hash``."""

    n: int
    seq: int
    hash: bytes
    ts_ns: int


def anchor_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ANCHOR_SUFFIX)


def _mac(key: bytes, n: int, seq: int, digest: bytes, ts_ns: int) -> str:
    message = _MAC_DOMAIN + f"{n} {seq} {digest.hex()} {ts_ns}".encode()
    return hmac.digest(key, message, "sha256").hex()


def read_anchors(path: Path, key: bytes) -> list[Anchor]:
    """The anchors in ``path`` (none if it does not exist), each checked against its MAC.

    ``IntegrityError`` names the first line that is not a valid anchor, whose MAC does
    not check out, or whose number is out of order (a line deleted or moved). A last
    line without its newline was cut mid-write: it is ignored (logged).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as error:
        raise IntegrityError(f"journal anchors {path}: cannot read: {error}") from error
    lines = data.split(b"\n")
    if lines[-1]:
        log.warning("journal_anchor_torn", path=str(path), line=len(lines), bytes=len(lines[-1]))
    anchors: list[Anchor] = []
    for number, line in enumerate(lines[:-1], start=1):
        where = f"journal anchors {path}: line {number}"
        try:
            fields = json.loads(line)
            anchor = Anchor(
                int(fields["n"]),
                int(fields["seq"]),
                bytes.fromhex(fields["hash"]),
                int(fields["ts_ns"]),
            )
            mac = str(fields["mac"])
        except (ValueError, KeyError, TypeError) as error:
            raise IntegrityError(f"{where}: not an anchor ({error})") from error
        if not hmac.compare_digest(mac, _mac(key, *anchor)):
            raise IntegrityError(f"{where}: MAC does not check out (forged or edited anchor)")
        if anchor.n != number:
            raise IntegrityError(
                f"{where}: anchor number {anchor.n}, expected {number} "
                "(an anchor was deleted or moved)"
            )
        anchors.append(anchor)
    return anchors


class AnchorWriter:
    """Appends anchors to ``<journal>.anchors`` (0600, ``O_APPEND``, fsync'd each)."""

    def __init__(self, path: Path, key: bytes, *, written: int) -> None:
        self.path = path
        self._key = key
        self._n = written
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, seq: int, digest: bytes, ts_ns: int) -> Anchor:
        """Append the anchor (``seq``, ``digest``): call it only once ``seq`` is committed."""
        anchor = Anchor(self._n + 1, seq, digest, ts_ns)
        fields = {"n": anchor.n, "seq": seq, "hash": digest.hex(), "ts_ns": ts_ns}
        fields["mac"] = _mac(self._key, *anchor)
        os.write(self._fd, json.dumps(fields, separators=(",", ":")).encode() + b"\n")
        os.fsync(self._fd)
        self._n = anchor.n
        log.info("journal_anchor", path=str(self.path), n=anchor.n, seq=seq, hash=digest.hex())
        return anchor

    def close(self) -> None:
        os.close(self._fd)
