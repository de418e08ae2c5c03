"""Server-side console sessions: random ids, an absolute expiry and an idle timeout.

A browser holds only the session id (a 256-bit random token in the
``__Host-bastion_session`` cookie); everything else stays here. A session ends at
``created + ttl`` whatever happens, after ``idle`` without a request, at logout, and
when its id is rotated (sign-in and step-up give a new id; the old one is dead at
once). Each session has its own CSRF token, compared in constant time.

Ids are looked up by their SHA-256, so the table holds no id a leak of this process's
memory could replay directly, and a lookup costs the same whatever id is tried.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple

__all__ = ["COOKIE", "Lookup", "Session", "SessionEnd", "Sessions"]

COOKIE: Final = "__Host-bastion_session"
_ID_BYTES: Final = 32
_MAX_SESSIONS: Final = 10_000


class SessionEnd(StrEnum):
    """Why a session is gone (for the audit trail)."""

    EXPIRED = "expired"
    IDLE = "idle"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class Session:
    """One signed-in operator in one browser. ``repr`` shows no token."""

    operator: str
    source: str
    csrf: str = field(repr=False)
    created_ns: int
    last_seen_ns: int
    step_up_until_ns: int = 0

    def stepped_up(self, now_ns: int) -> bool:
        return now_ns < self.step_up_until_ns

    def csrf_ok(self, token: str | None) -> bool:
        """``token`` is this session's CSRF token (constant time)."""
        if not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf.encode())


class Lookup(NamedTuple):
    """A session looked up: ``session`` when live; else ``ended`` (the session that just
    expired, if any) and ``why``."""

    session: Session | None
    ended: Session | None
    why: SessionEnd | None


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class Sessions:
    """The console's sessions. Times are passed in (``now_ns``): the caller's clock."""

    def __init__(self, *, ttl_s: int, idle_s: int) -> None:
        self._ttl_ns = ttl_s * 1_000_000_000
        self._idle_ns = idle_s * 1_000_000_000
        self._by_digest: dict[bytes, Session] = {}

    def __len__(self) -> int:
        return len(self._by_digest)

    def create(self, operator: str, source: str, now_ns: int) -> tuple[str, Session]:
        """A new session; its id (to set in the cookie) and the session."""
        self._sweep(now_ns)
        if len(self._by_digest) >= _MAX_SESSIONS:  # the oldest goes: memory stays bounded
            oldest = min(self._by_digest, key=lambda d: self._by_digest[d].last_seen_ns)
            del self._by_digest[oldest]
        session = Session(
            operator=operator,
            source=source,
            csrf=secrets.token_urlsafe(_ID_BYTES),
            created_ns=now_ns,
            last_seen_ns=now_ns,
        )
        session_id = secrets.token_urlsafe(_ID_BYTES)
        self._by_digest[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None, now_ns: int) -> Lookup:
        """The live session for ``session_id`` (touched: its idle time starts again), or
        why there is none (an expired session is removed, and returned as ``ended``)."""
        return self._find(session_id, now_ns, touch=True)

    def peek(self, session_id: str | None, now_ns: int) -> Lookup:
        """As ``get``, without counting as activity (a stream of live updates)."""
        return self._find(session_id, now_ns, touch=False)

    def _find(self, session_id: str | None, now_ns: int, *, touch: bool) -> Lookup:
        if not session_id or len(session_id) > 128:
            return Lookup(None, None, SessionEnd.UNKNOWN)
        digest = _digest(session_id)
        session = self._by_digest.get(digest)
        if session is None:
            return Lookup(None, None, SessionEnd.UNKNOWN)
        if now_ns >= session.created_ns + self._ttl_ns:
            del self._by_digest[digest]
            return Lookup(None, session, SessionEnd.EXPIRED)
        if now_ns >= session.last_seen_ns + self._idle_ns:
            del self._by_digest[digest]
            return Lookup(None, session, SessionEnd.IDLE)
        if touch:
            session.last_seen_ns = now_ns
        return Lookup(session, None, None)

    def rotate(self, session_id: str) -> str:
        """A new id for the session of ``session_id`` (the old id no longer works)."""
        session = self._by_digest.pop(_digest(session_id))
        new_id = secrets.token_urlsafe(_ID_BYTES)
        self._by_digest[_digest(new_id)] = session
        return new_id

    def destroy(self, session_id: str) -> Session | None:
        return self._by_digest.pop(_digest(session_id), None)

    def destroy_operator(self, operator: str) -> int:
        """End every session of ``operator`` (disabled, or signed in elsewhere); how many."""
        gone = [d for d, s in self._by_digest.items() if s.operator == operator]
        for digest in gone:
            del self._by_digest[digest]
        return len(gone)

    def _sweep(self, now_ns: int) -> None:
        dead = [
            d
            for d, s in self._by_digest.items()
            if now_ns >= s.created_ns + self._ttl_ns or now_ns >= s.last_seen_ns + self._idle_ns
        ]
        for digest in dead:
            del self._by_digest[digest]
