"""A paper node with two replay feeds of one instrument, as an operator runs it: the
primary stalls and the node follows the backup, then goes back after the hold time;
both stall and the strategy hears ``FeedStatus``; the journal has each switch, and the
strategy's stream is clean (strictly time-ordered, no quote twice, each from the feed
followed then)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from bastion.model import events as ev
from kit.journal_reading import read_journal
from kit.node_process import run_to_end

MS = 1_000_000
T0 = 1_704_205_800_000_000_000

RECORDER = '''
"""Writes every quote and feed status it sees to ``seen.json`` when it stops."""

import json

from bastion.strategy import QuoteTick, Strategy


class Recorder(Strategy):
    def on_start(self) -> None:
        self.seen = []
        self.subscribe_quotes("XYZ.SIM")

    def on_quote(self, quote: QuoteTick) -> None:
        self.seen.append(["quote", quote.ts_ns, quote.bid])

    def on_feed_status(self, status) -> None:
        self.seen.append(["status", status.ts_ns, status.healthy, status.feed])

    def on_stop(self) -> None:
        with open(self.params["out"], "w") as out:
            json.dump(self.seen, out)
'''

TOML = """
run_for_s = 6.5

[node]
id = "feeds-1"
isolation = "inline"

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "recorder"
path = "recorder.py"
class = "Recorder"
[strategies.params]
out = "{out}"

[[feeds]]
kind = "replay"
name = "primary"
path = "primary.csv"
instrument = "XYZ.SIM"
priority = 1

[[feeds]]
kind = "replay"
name = "backup"
path = "backup.csv"
instrument = "XYZ.SIM"
priority = 2

[arbitration]
stale_ms = 150
hold_ms = 500
poll_ms = 10

[journal]
path = "journal.sqlite"
"""

# the primary quotes 100.00, the backup 100.01 (one tick apart: not diverged)
PRIMARY_BID, BACKUP_BID = 10_000, 10_001
STEP_MS = 20


def _tape(path: Path, bid: int, spans: list[tuple[int, int]]) -> None:
    rows = [
        f"{T0 + ms * MS},{bid / 100:.2f},{(bid + 2) / 100:.2f},5,5\n"
        for start, end in spans
        for ms in range(start, end, STEP_MS)
    ]
    path.write_text("ts_ns,bid,ask,bid_size,ask_size\n" + "".join(rows), encoding="utf-8")


def test_when_the_primary_stalls_then_the_backup_is_followed_and_the_primary_returns(
    tmp_path: Path,
) -> None:
    """Primary: 0-1000 ms, stall, 1800-3300 ms, stall, 4400-6600 ms. Backup: 0-3000 ms,
    stall, 3900-5500 ms. Expected: to the backup (stale) near 1150 ms, back (return)
    near 2300 ms; nothing from either near 3450 ms (FeedStatus down); the backup first
    at 3900 ms (FeedStatus up, a switch), the primary again 500 ms after 4400 ms. (The
    two files are paced by two tasks started a little apart: the margins are 300 ms.)"""
    _tape(tmp_path / "primary.csv", PRIMARY_BID, [(0, 1000), (1800, 3300), (4400, 6600)])
    _tape(tmp_path / "backup.csv", BACKUP_BID, [(0, 3000), (3900, 5500)])
    (tmp_path / "recorder.py").write_text(RECORDER, encoding="utf-8")
    seen_path = tmp_path / "seen.json"
    (tmp_path / "node.toml").write_text(TOML.format(out=seen_path), encoding="utf-8")

    done = run_to_end("run", "node.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    events = [e for _, e in read_journal(tmp_path / "journal.sqlite")]
    switches = [
        (e.from_feed, e.to_feed, e.reason, e.preferred)
        for e in events
        if isinstance(e, ev.FeedSwitched)
    ]
    assert switches == [
        ("primary", "backup", "stale", False),
        ("backup", "primary", "return", True),
        ("primary", "backup", "stale", False),
        ("backup", "primary", "return", True),
    ]
    statuses = [(e.healthy, e.feed) for e in events if isinstance(e, ev.FeedStatus)]
    assert statuses == [(False, ""), (True, "backup")]

    seen = json.loads(seen_path.read_text(encoding="utf-8"))
    assert [s[2:] for s in seen if s[0] == "status"] == [[False, ""], [True, "backup"]]
    quotes = [(ts, bid) for kind, ts, bid, *_ in seen if kind == "quote"]
    stamps = [ts for ts, _ in quotes]
    assert all(b > a for a, b in itertools.pairwise(stamps))  # never backwards
    assert len(set(stamps)) == len(stamps)  # never twice
    # the stream's source follows the switches: primary, backup, primary, backup, primary
    runs = [bid for n, (_, bid) in enumerate(quotes) if n == 0 or quotes[n - 1][1] != bid]
    assert runs == [PRIMARY_BID, BACKUP_BID, PRIMARY_BID, BACKUP_BID, PRIMARY_BID]
    # failover time: from the primary's last quote to the switch, stale_ms (+ poll_ms)
    first_backup = next(ts for ts, bid in quotes if bid == BACKUP_BID)
    last_primary = max(ts for ts, bid in quotes if bid == PRIMARY_BID and ts < first_backup)
    first_switch = next(e.ts_ns for e in events if isinstance(e, ev.FeedSwitched))
    assert 150 <= (first_switch - last_primary) / MS <= 150 + 200
