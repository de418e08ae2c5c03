"""Per-source sign-in limits."""

from __future__ import annotations

from bastion.console.ratelimit import SourceLimiter

S = 1_000_000_000


def test_when_max_failures_in_window_then_source_blocked_until_lockout_ends() -> None:
    """N refusals within the window block the source, at N and not at N - 1."""
    limiter = SourceLimiter(max_failures=3, window_s=60, lockout_s=300)
    assert not limiter.failed("10.0.0.1", 0)
    assert not limiter.failed("10.0.0.1", 1 * S)
    assert limiter.failed("10.0.0.1", 2 * S)
    assert limiter.blocked("10.0.0.1", 301 * S)
    assert not limiter.blocked("10.0.0.2", 3 * S)
    assert not limiter.blocked("10.0.0.1", 302 * S)


def test_when_failures_spread_beyond_window_then_not_blocked() -> None:
    """Failures older than the window do not count."""
    limiter = SourceLimiter(max_failures=3, window_s=60, lockout_s=300)
    for t in (0, 40, 80, 120):
        assert not limiter.failed("10.0.0.1", t * S)
    assert not limiter.blocked("10.0.0.1", 121 * S)
