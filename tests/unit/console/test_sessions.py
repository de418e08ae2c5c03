"""Server-side sessions: absolute expiry, idle timeout, rotation, CSRF."""

from __future__ import annotations

from bastion.console.sessions import SessionEnd, Sessions

S = 1_000_000_000


def test_when_idle_past_timeout_then_gone_and_says_idle() -> None:
    """A session unused for the idle timeout is over, at the limit and not one step before."""
    sessions = Sessions(ttl_s=3600, idle_s=60)
    sid, _ = sessions.create("rita", "127.0.0.1", 0)
    assert sessions.get(sid, 60 * S - 1).session is not None
    found = sessions.get(sid, 119 * S)
    assert found.session is not None  # touched at 60 s - 1ns: idle time restarted
    found = sessions.get(sid, 180 * S)
    assert found.session is None and found.why is SessionEnd.IDLE
    assert found.ended is not None and found.ended.operator == "rita"
    assert sessions.get(sid, 180 * S).why is SessionEnd.UNKNOWN


def test_when_past_absolute_expiry_then_gone_even_if_active() -> None:
    """Activity never extends a session past its time to live."""
    sessions = Sessions(ttl_s=100, idle_s=60)
    sid, _ = sessions.create("rita", "127.0.0.1", 0)
    for t in range(0, 100, 30):
        assert sessions.get(sid, t * S).session is not None
    assert sessions.get(sid, 100 * S).why is SessionEnd.EXPIRED


def test_when_peeked_then_idle_time_not_restarted() -> None:
    """A live-update stream does not keep a session alive."""
    sessions = Sessions(ttl_s=3600, idle_s=60)
    sid, _ = sessions.create("rita", "127.0.0.1", 0)
    assert sessions.peek(sid, 59 * S).session is not None
    assert sessions.get(sid, 60 * S).why is SessionEnd.IDLE


def test_when_rotated_then_old_id_dead_new_id_same_session() -> None:
    """Rotation: the old cookie no longer works; the session (and CSRF) carries on."""
    sessions = Sessions(ttl_s=3600, idle_s=60)
    sid, session = sessions.create("rita", "127.0.0.1", 0)
    new = sessions.rotate(sid)
    assert new != sid
    assert sessions.get(sid, S).session is None
    assert sessions.get(new, S).session is session


def test_when_ids_made_then_256_bit_random_and_distinct() -> None:
    """Ids are 32 random bytes (43 URL-safe characters), never repeated."""
    sessions = Sessions(ttl_s=3600, idle_s=60)
    ids = {sessions.create("rita", "127.0.0.1", 0)[0] for _ in range(200)}
    assert len(ids) == 200 and all(len(i) == 43 for i in ids)


def test_when_csrf_wrong_or_missing_then_refused() -> None:
    """The CSRF token must be the session's own."""
    sessions = Sessions(ttl_s=3600, idle_s=60)
    _, session = sessions.create("rita", "127.0.0.1", 0)
    _, other = sessions.create("rob", "127.0.0.1", 0)
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None) and not session.csrf_ok("")
    assert not session.csrf_ok(other.csrf)
    assert session.csrf not in repr(session)


def test_when_operator_revoked_then_every_session_of_theirs_ends() -> None:
    """Disabling an operator ends all their sessions, no one else's."""
    sessions = Sessions(ttl_s=3600, idle_s=60)
    a, _ = sessions.create("tom", "127.0.0.1", 0)
    b, _ = sessions.create("tom", "10.0.0.2", 0)
    c, _ = sessions.create("rita", "127.0.0.1", 0)
    assert sessions.destroy_operator("tom") == 2
    assert sessions.get(a, S).session is None and sessions.get(b, S).session is None
    assert sessions.get(c, S).session is not None
