"""A node fed by two feed handlers over a real NATS server, as an operator runs them: a
primary (``md-a``, through a TCP relay) and a backup (``md-b``). The primary's
connection drops, the primary is SIGKILLed and restarted, the server stops and starts again: each
time the node fails over to the backup (or says it has no healthy feed) and comes back,
the journal has each switch, and the strategy's stream is strictly time-ordered with no
quote twice."""

from __future__ import annotations

import itertools
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bastion.model import events as ev
from kit.journal_reading import peek_journal, read_journal
from kit.nats_server import nats_server
from kit.net import relay
from kit.node_process import bastion_cmd, child_env, running_node, still_running, terminate
from kit.waiting import eventually

# the handlers quote constant prices about a tick apart (not diverged): bid + ask shows
# the source
A_MID2 = 20_001
WAIT_S = 20.0

RECORDER = '''
"""Appends every quote it sees to ``seen.txt`` (ts, bid + ask), flushed at once."""

from bastion.strategy import QuoteTick, Strategy


class Recorder(Strategy):
    def on_start(self) -> None:
        self.out = open(self.params["out"], "a")
        self.subscribe_quotes("XYZ")

    def on_quote(self, quote: QuoteTick) -> None:
        self.out.write(f"{quote.ts_ns} {quote.bid + quote.ask}\\n")
        self.out.flush()

    def on_stop(self) -> None:
        self.out.close()
'''

NODE = """
run_for_s = 120

[node]
id = "nats-node"
isolation = "inline"

[[instruments]]
id = "XYZ"
tick_size = "0.01"

[[strategies]]
name = "recorder"
path = "recorder.py"
class = "Recorder"
[strategies.params]
out = "{out}"

[[feeds]]
kind = "nats"
name = "md-a"
source = "sim"
handler = "md-a"
instruments = ["XYZ"]
priority = 1
[feeds.nats]
servers = ["{url}"]
reconnect_wait_ms = 100

[[feeds]]
kind = "nats"
name = "md-b"
source = "sim"
handler = "md-b"
instruments = ["XYZ"]
priority = 2
[feeds.nats]
servers = ["{url}"]
reconnect_wait_ms = 100

[arbitration]
stale_ms = 150
hold_ms = 500
poll_ms = 10

[journal]
path = "journal.sqlite"
"""

HANDLER = """
[handler]
id = "{id}"
source = "sim"

[nats]
servers = ["{url}"]
reconnect_wait_ms = 100
ping_interval_ms = 500

[[instruments]]
id = "XYZ"
tick_size = "0.01"

[feed]
kind = "synthetic"
name = "walk"
instruments = ["XYZ"]
start_price = "{price}"
volatility_bps = 0
interval_ms = 20
"""


@contextmanager
def handler(tmp: Path, hid: str, url: str, price: str) -> Iterator[subprocess.Popen[bytes]]:
    config = tmp / f"{hid}.toml"
    config.write_text(HANDLER.format(id=hid, url=url, price=price), encoding="utf-8")
    with (tmp / f"{hid}.log").open("ab") as log:
        proc = subprocess.Popen(
            bastion_cmd("feed", config),
            cwd=tmp,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _seen(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(int(ts), int(bid)) for ts, bid in (line.split() for line in lines if " " in line)]


def test_when_the_primary_drops_dies_and_the_server_restarts_then_the_node_fails_over_cleanly(
    tmp_path: Path,
) -> None:
    """Drop (the relay refuses), SIGKILL and restart, server restart: each a switch to
    md-b and a return to md-a in the journal, and a clean stream."""
    (tmp_path / "recorder.py").write_text(RECORDER, encoding="utf-8")
    seen_path = tmp_path / "seen.txt"
    journal = tmp_path / "journal.sqlite"

    def switches() -> list[tuple[str, str, str]]:
        return [
            (e.from_feed, e.to_feed, e.reason)
            for _, e in peek_journal(journal)
            if isinstance(e, ev.FeedSwitched)
        ]

    def statuses() -> list[bool]:
        return [e.healthy for _, e in peek_journal(journal) if isinstance(e, ev.FeedStatus)]

    def last_mid2() -> int:
        seen = _seen(seen_path)
        return seen[-1][1] if seen else 0

    with nats_server(tmp_path) as server, relay(server.port) as link:
        relayed = f"nats://127.0.0.1:{link.port}"
        node_toml = NODE.format(out=seen_path, url=server.url)
        (tmp_path / "node.toml").write_text(node_toml, encoding="utf-8")
        with (
            handler(tmp_path, "md-b", server.url, "100.02"),
            running_node("run", "node.toml", cwd=tmp_path) as (node, log),
        ):
            proc_a = handler(tmp_path, "md-a", relayed, "100")
            a = proc_a.__enter__()
            eventually(
                lambda: still_running(node, log) and len(_seen(seen_path)) > 50,
                WAIT_S,
                what="quotes flowing",
            )
            eventually(lambda: last_mid2() == A_MID2, WAIT_S, what="md-a followed")
            base = len(switches())

            # 1. the primary's connection drops and stays down a while
            link.refusing = True
            link.cut()
            eventually(
                lambda: ("md-a", "md-b", "stale") in switches()[base:],
                WAIT_S,
                what="failover on a drop",
            )
            link.refusing = False
            eventually(
                lambda: ("md-b", "md-a", "return") in switches()[base:],
                WAIT_S,
                what="return after the drop",
            )
            base = len(switches())

            # 2. the primary is SIGKILLed, then restarted
            a.send_signal(signal.SIGKILL)
            a.wait(timeout=10)
            eventually(
                lambda: ("md-a", "md-b", "stale") in switches()[base:],
                WAIT_S,
                what="failover on SIGKILL",
            )
            eventually(lambda: last_mid2() != A_MID2, WAIT_S, what="md-b's quotes")
            proc_a.__exit__(None, None, None)
            proc_a = handler(tmp_path, "md-a", relayed, "100")
            proc_a.__enter__()
            eventually(
                lambda: ("md-b", "md-a", "return") in switches()[base:],
                WAIT_S,
                what="return after the restart",
            )
            base_status = len(statuses())

            # 3. the server restarts: no healthy feed, then healthy again, md-a followed
            server.stop()
            eventually(
                lambda: statuses()[base_status:][:1] == [False], WAIT_S, what="no healthy feed"
            )
            server.start()
            eventually(
                lambda: statuses()[base_status:][:2] == [False, True],
                WAIT_S,
                what="a healthy feed again",
            )
            eventually(lambda: last_mid2() == A_MID2, WAIT_S, what="md-a followed again")
            proc_a.__exit__(None, None, None)
            assert terminate(node) == 0

    events = [e for _, e in read_journal(journal)]
    assert [e for e in events if isinstance(e, ev.FeedSwitched)]
    quotes = _seen(seen_path)
    stamps = [ts for ts, _ in quotes]
    assert all(b > a for a, b in itertools.pairwise(stamps))  # never backwards
    assert len(set(stamps)) == len(stamps)  # never twice
    assert len({mid2 for _, mid2 in quotes}) == 2 and A_MID2 in {m for _, m in quotes}
