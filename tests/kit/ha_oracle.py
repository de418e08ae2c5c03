"""The HA oracle at the venue: no request of an epoch was accepted after a newer epoch's first.

``epoch_violations`` reads the venue simulator's ledger read-only and parses the epochs
of the ClOrdIDs itself (an order's ``{node}-{epoch}-{seq}``; a cancel's or replace's
``{order's ClOrdID}/{epoch}.{n}``, whose epoch is its sender's), sharing no code with the
venue's fence. It checks two records, per account, in the order the venue received them:

- the fence's own log (``order_epochs``): every order, cancel and replace it let through;
- the books (``orders``): every order the venue took (not rejected), by the ClOrdID it
  was opened with, whether or not the fence logged it (the books keep no arrival time
  of a cancel or replace: those are checked in the fence's log only).

An empty list means the venue never accepted a request carrying an older epoch once a
request of a newer epoch had been accepted.
"""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path

from kit.chaos_harness import read_only

_CL_ORD_ID = re.compile(r"[^/]+-(\d+)-\d+")
_AMEND_ID = re.compile(r"[^/]+/(\d+)\.[0-9a-f]+")
_REJECTED = "8"


def epoch_of(cl_ord_id: str) -> int | None:
    """The epoch of the sender of a request with a bastion ClOrdID (for a cancel or
    replace, the one after the ``/``); None for any other id (and for an older node's
    ``{order id}/{n}``, whose epoch is the order's, not its sender's)."""
    match = _CL_ORD_ID.fullmatch(cl_ord_id) or _AMEND_ID.fullmatch(cl_ord_id)
    return None if match is None else int(match.group(1))


def epoch_violations(ledger_path: Path) -> list[str]:
    """Every accepted order, cancel or replace whose epoch is older than a previously
    accepted request's of the same account, as sentences (empty: none)."""
    with closing(read_only(ledger_path)) as db:
        logged = db.execute(
            "SELECT account, msg_type, cl_ord_id, received_ns FROM order_epochs "
            "WHERE refused IS NULL ORDER BY rowid"
        ).fetchall()
        booked = db.execute(
            "SELECT account, 'D', root_cl_ord_id, created_ns FROM orders "
            f"WHERE status != '{_REJECTED}' ORDER BY rowid"
        ).fetchall()
    return _violations("fence log", logged) + _violations("books", booked)


def _violations(source: str, rows: list[tuple[str, str, str, int]]) -> list[str]:
    newest: dict[str, tuple[int, str, int]] = {}  # account -> (epoch, its first ClOrdID, when)
    found: list[str] = []
    for account, msg_type, cl_ord_id, at_ns in rows:
        epoch = epoch_of(cl_ord_id)
        if epoch is None:
            continue
        seen = newest.get(account)
        if seen is None or epoch > seen[0]:
            newest[account] = (epoch, cl_ord_id, at_ns)
        elif epoch < seen[0]:
            found.append(
                f"{source}: account {account}: {msg_type} {cl_ord_id} (epoch {epoch}) accepted "
                f"at {at_ns} after epoch {seen[0]}'s first request {seen[1]} at {seen[2]}"
            )
    return found
