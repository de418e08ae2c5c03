"""Faults injected into the preferred of three feeds of a real node, over a real NATS
server: the primary handler (``md-a``, played by the test as a faulty or hostile
handler would publish, in the wire format) gaps, sends spikes, crossed quotes,
duplicates, out-of-order data, and drifts slowly away from the two others (``md-b``,
``md-c``). Each time the node's arbiter leaves md-a for md-b with the reason the rules
give, returns after its hold, journals both switches, and its alert engine fires and
resolves ``feed-failover``; the strategy (which records every quote it sees) never sees
a bad quote, nor a quote twice, nor time going backwards."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from bastion.feeds.nats import wire
from bastion.model import events as ev
from kit.journal_reading import peek_journal, read_journal
from kit.nats_publisher import Lane, Publisher, Step, publishing
from kit.nats_server import nats_server
from kit.node_process import running_node, still_running, terminate
from kit.waiting import eventually

MS = 1_000_000
WAIT_S = 20.0
BID, ASK = 10_000, 10_002  # 100.00 / 100.02, tick 0.01
SIZES = {"md-a": 10, "md-b": 20, "md-c": 30}  # the bid size tells the feed a quote came from
BAD = 7  # the ask size of every quote a validator must stop
HOLD_MS = 500
DIVERGE_TICKS = 5
DIVERGE_MS = 300

RECORDER = '''
"""Appends every quote it sees to ``seen.txt`` (ts bid ask bid_size ask_size), flushed."""

from bastion.strategy import QuoteTick, Strategy


class Recorder(Strategy):
    def on_start(self) -> None:
        self.out = open(self.params["out"], "a")
        self.subscribe_quotes("XYZ")

    def on_quote(self, q: QuoteTick) -> None:
        self.out.write(f"{q.ts_ns} {q.bid} {q.ask} {q.bid_size} {q.ask_size}\\n")
        self.out.flush()

    def on_stop(self) -> None:
        self.out.close()
'''

FEED = """
[[feeds]]
kind = "nats"
name = "{name}"
source = "sim"
handler = "{name}"
instruments = ["XYZ"]
priority = {priority}
[feeds.nats]
servers = ["{url}"]
reconnect_wait_ms = 100
"""

NODE = f"""
run_for_s = 600

[node]
id = "faults-node"
isolation = "inline"

[[instruments]]
id = "XYZ"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "recorder"
path = "recorder.py"
class = "Recorder"
[strategies.params]
out = "{{out}}"

[arbitration]
stale_ms = 150
hold_ms = {HOLD_MS}
poll_ms = 10
reject_limit = 5
reject_window_ms = 1000
diverge_ticks = {DIVERGE_TICKS}
diverge_ms = {DIVERGE_MS}

[monitoring]
listen = "127.0.0.1:0"

[journal]
path = "journal.sqlite"
"""


@dataclass(frozen=True)
class Seen:
    ts_ns: int
    bid: int
    ask: int
    bid_size: int
    ask_size: int

    @property
    def feed(self) -> str:
        return next(name for name, size in SIZES.items() if size == self.bid_size)


@dataclass
class Desk:
    """The node, its journal and what its strategy saw, and md-a's lane."""

    seen_path: Path
    journal: Path
    node_alive: Callable[[], bool]
    primary: Lane
    publisher: Publisher

    def seen(self) -> list[Seen]:
        if not self.seen_path.exists():
            return []
        lines = self.seen_path.read_text(encoding="utf-8").splitlines()
        return [Seen(*map(int, line.split())) for line in lines if line.count(" ") == 4]

    def events(self) -> list[object]:
        return [e for _, e in peek_journal(self.journal)]

    def switches(self) -> list[tuple[str, str, str]]:
        return [
            (e.from_feed, e.to_feed, e.reason)
            for e in self.events()
            if isinstance(e, ev.FeedSwitched)
        ]

    def failover_alerts(self) -> tuple[int, int]:
        """(fired, resolved) ``feed-failover`` alerts so far."""
        events = self.events()
        fired = [e for e in events if isinstance(e, ev.AlertFired) and e.alert == "feed-failover"]
        resolved = [
            e for e in events if isinstance(e, ev.AlertResolved) and e.alert == "feed-failover"
        ]
        return len(fired), len(resolved)

    def following(self, feed: str) -> bool:
        assert self.node_alive(), "the node exited"
        seen = self.seen()
        return len(seen) > 5 and all(s.feed == feed for s in seen[-5:])


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp("faults")
    (tmp / "recorder.py").write_text(RECORDER, encoding="utf-8")
    seen_path = tmp / "seen.txt"
    with nats_server(tmp) as server:
        feeds = "".join(
            FEED.format(name=name, priority=rank + 1, url=server.url)
            for rank, name in enumerate(SIZES)
        )
        node_toml = NODE.format(out=seen_path) + feeds
        (tmp / "node.toml").write_text(node_toml, encoding="utf-8")
        lanes = [
            Lane(
                name,
                instrument_id="XYZ",
                bid=BID,
                ask=ASK,
                size=size,
                price_precision=2,
                size_precision=0,
            )
            for name, size in SIZES.items()
        ]
        with running_node("run", "node.toml", cwd=tmp) as (node, log):
            with publishing(server.url, lanes) as publisher:
                desk = Desk(
                    seen_path,
                    tmp / "journal.sqlite",
                    lambda: still_running(node, log),
                    lanes[0],
                    publisher,
                )
                eventually(lambda: desk.following("md-a"), WAIT_S, what="md-a followed")
                yield desk
            assert terminate(node) == 0
    assert_clean_stream(desk)
    events = [e for _, e in read_journal(desk.journal)]
    assert any(isinstance(e, ev.FeedSwitched) for e in events)


def assert_clean_stream(desk: Desk) -> None:
    """Never a bad quote, never a quote twice, never time going backwards."""
    seen = desk.seen()
    assert seen
    assert not [s for s in seen if s.ask_size == BAD or s.bid >= s.ask]
    stamps = [s.ts_ns for s in seen]
    assert all(b > a for a, b in itertools.pairwise(stamps)), "time went backwards"
    assert len(set(seen)) == len(seen), "a quote twice"


# -- the faults, each a list of steps in md-a's slots ------------------------------------


def gap(lane: Lane) -> Sequence[wire.WireQuote]:
    return [lane.quote(seq_skip=50)]


def spike(lane: Lane) -> Sequence[wire.WireQuote]:
    """A good quote, then one 10 % away (a spike, never three in a row: no move)."""
    jump = lane.bid // 10
    return [lane.quote(), lane.quote(bid=BID + jump, ask=ASK + jump, ask_size=BAD)]


def crossed(lane: Lane) -> Sequence[wire.WireQuote]:
    return [lane.quote(), lane.quote(bid=ASK + 2, ask=ASK, ask_size=BAD)]


def duplicate(lane: Lane) -> Sequence[wire.WireQuote]:
    """A quote, delivered again by the network (same message), then resent under a new
    sequence number (the same book at the same time)."""
    first = lane.quote()
    return [first, first, lane.quote(ts_ns=first.ts_ns)]


def out_of_order(lane: Lane) -> Sequence[wire.WireQuote]:
    """A quote, then one stamped 50 ms before it, then an older sequence number."""
    first = lane.quote()
    late = lane.quote(ts_ns=first.ts_ns - 50 * MS, ask_size=BAD)
    older = msgspec.structs.replace(late, seq=late.seq - 5)
    return [first, late, older]


FIVE = 5  # reject_limit: the fifth stopped quote within the window is a failing feed

CASES: dict[str, tuple[list[Step], str]] = {
    "gap": ([gap], "gap"),
    "spikes": ([spike] * FIVE, "rejects"),
    "crossed": ([crossed] * FIVE, "rejects"),
    "duplicates": ([duplicate] * FIVE, "rejects"),
    "out_of_order": ([out_of_order] * FIVE, "rejects"),
}


def run_fault(desk: Desk, steps: Sequence[Step], reason: str) -> list[Seen]:
    """Inject ``steps`` into md-a once it is followed; the switch to md-b for ``reason``
    and the return, journaled and alerted. Returns what the strategy saw meanwhile."""
    eventually(lambda: desk.following("md-a"), WAIT_S, what="md-a followed")
    switches, alerts, seen = len(desk.switches()), desk.failover_alerts(), len(desk.seen())
    fired, resolved = alerts
    desk.primary.inject(*steps)
    eventually(
        lambda: (
            desk.switches()[switches:][:2] == [("md-a", "md-b", reason), ("md-b", "md-a", "return")]
        ),
        WAIT_S,
        what=f"a switch to md-b ({reason}) and the return",
    )
    eventually(
        lambda: desk.failover_alerts() == (fired + 1, resolved + 1),
        WAIT_S,
        what="feed-failover fired and resolved",
    )
    eventually(lambda: desk.following("md-a"), WAIT_S, what="md-a followed again")
    assert len(desk.switches()) == switches + 2  # no flapping
    assert_clean_stream(desk)
    return desk.seen()[seen:]


@pytest.mark.parametrize("case", list(CASES))
def test_when_the_primary_feed_sends_bad_data_then_the_node_fails_over_and_returns(
    desk: Desk, case: str
) -> None:
    """Gap, spikes, crossed, duplicates, out of order: md-b followed (reason gap or
    rejects), md-a again after its hold; alert fired and resolved; a clean stream."""
    steps, reason = CASES[case]
    during = run_fault(desk, steps, reason)
    feeds = [s.feed for s in during]
    assert "md-b" in feeds and feeds[-1] == "md-a"


def test_when_the_primary_drifts_slowly_from_the_majority_then_it_is_outvoted(
    desk: Desk,
) -> None:
    """md-a drifts a tick every 20 ms to 3 x diverge_ticks above md-b and md-c (never a
    spike), stays there, then comes back: switch ``diverged``, return after the hold; once
    the switch is journaled the strategy sees no drifted quote, and before it at most
    ``diverge_ms`` (and some scheduling) of them."""
    lane = desk.primary
    tick = 1

    def drift(lane: Lane) -> Sequence[wire.WireQuote]:
        lane.offset += tick
        return [lane.quote()]

    def hold(lane: Lane) -> Sequence[wire.WireQuote]:
        return [lane.quote()]

    def back(lane: Lane) -> Sequence[wire.WireQuote]:
        lane.offset = 0
        return [lane.quote()]

    up = [drift, hold] * (3 * DIVERGE_TICKS)
    stay = [hold] * (2 * DIVERGE_MS // 10)
    eventually(lambda: desk.following("md-a"), WAIT_S, what="md-a followed")
    switches = len(desk.switches())
    fired, resolved = desk.failover_alerts()
    start = time.time_ns()
    lane.inject(*up, *stay, back)
    eventually(
        lambda: (
            desk.switches()[switches:][:2]
            == [("md-a", "md-b", "diverged"), ("md-b", "md-a", "return")]
        ),
        WAIT_S,
        what="outvoted, then back",
    )
    eventually(lambda: desk.failover_alerts() == (fired + 1, resolved + 1), WAIT_S, what="alerts")
    eventually(lambda: desk.following("md-a"), WAIT_S, what="md-a followed again")
    assert_clean_stream(desk)

    switched = next(
        e.ts_ns
        for e in desk.events()
        if isinstance(e, ev.FeedSwitched) and e.reason == "diverged" and e.ts_ns > start
    )
    limit = DIVERGE_TICKS * 2  # doubled mids, in ticks
    drifted = [
        s for s in desk.seen() if s.ts_ns > start and abs((s.bid + s.ask) - (BID + ASK)) > limit
    ]
    assert drifted, "the drift reached the strategy before the vote (as the rules allow)"
    assert all(s.ts_ns < switched for s in drifted)
    assert drifted[-1].ts_ns - drifted[0].ts_ns <= (DIVERGE_MS + 250) * MS
