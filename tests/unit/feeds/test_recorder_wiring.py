"""How the kernel wires ``[recording]``: the raw tap before each feed's validators, the
delivered tap in front of ``Kernel.on_quote`` (behind the arbiter), every validator hit
in the verdicts; nothing added without it; ``[recording]`` errors name their key."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig, PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.feeds.config import FeedEntry, RecordingFeedEntry, SyntheticFeedEntry
from bastion.feeds.recorder import RecordingConfig, read_quotes
from bastion.feeds.validation import ValidatedFeed
from bastion.model.data import QuoteTick
from bastion.node.kernel import Kernel

T0 = 1_796_601_600_000_000_000
MS = 1_000_000
X = "X.SIM"


def kernel(tmp_path: Path, feeds: list[FeedEntry], **recording: object) -> Kernel:
    config = PaperConfig(
        instruments=[InstrumentConfig(id=X, tick_size=Decimal("0.01"))],
        strategies=[],
        feeds=feeds,
        recording=RecordingConfig(path="rec", **recording),  # type: ignore[arg-type]
    )
    return Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=1)


def test_when_recording_then_raw_precedes_validation_and_delivered_precedes_the_kernel(
    tmp_path: Path,
) -> None:
    """raw: every quote a feed sent, the crossed one too; delivered: what the kernel got;
    verdicts: the crossed quote dropped and the sequence gap flagged."""
    k = kernel(tmp_path, [SyntheticFeedEntry(name="syn", instruments=[X])])
    assert k.recorder is not None
    k.recorder.start()
    sink = k.feed_sinks["syn"]
    good = QuoteTick(X, T0, 10_000, 10_002, 5, 5, 1)
    crossed = QuoteTick(X, T0 + MS, 10_004, 10_002, 5, 5, 2)
    gapped = QuoteTick(X, T0 + 2 * MS, 10_002, 10_004, 5, 5, 9)
    for q in (good, crossed, gapped):
        sink.on_quote(q)
    k.recorder.close()
    instruments = k.instruments
    root = tmp_path / "rec"
    assert list(read_quotes(root, instruments, stream="raw")) == [good, crossed, gapped]
    assert list(read_quotes(root, instruments)) == [good, gapped]
    assert k.last_quotes[X] == gapped
    verdicts = ds.dataset(root / "verdicts", partitioning="hive").to_table().to_pylist()
    assert [(v["feed"], v["reason"], v["action"], v["seq"], v["kind"]) for v in verdicts] == [
        ("syn", "crossed", "drop", 2, "quote"),
        ("syn", "seq_gap", "flag", 9, "quote"),
    ]
    assert verdicts[0]["recv_ns"] == T0 and verdicts[0]["bid"] == 10_004


def test_when_two_feeds_are_arbitrated_then_delivered_is_the_arbiters_stream(
    tmp_path: Path,
) -> None:
    """With an arbiter, delivered holds the followed feed's quotes only; raw both feeds'."""
    k = kernel(
        tmp_path,
        [
            SyntheticFeedEntry(name="a", instruments=[X], priority=1),
            SyntheticFeedEntry(name="b", instruments=[X], priority=2),
        ],
    )
    assert k.arbiter is not None and k.recorder is not None
    k.recorder.start()
    a, b = k.feed_sinks["a"], k.feed_sinks["b"]
    a.on_quote(QuoteTick(X, T0, 10_000, 10_002, 5, 5))
    b.on_quote(QuoteTick(X, T0 + MS, 10_000, 10_002, 6, 6))
    a.on_quote(QuoteTick(X, T0 + 2 * MS, 10_002, 10_004, 5, 5))
    k.recorder.close()
    root = tmp_path / "rec"
    assert [q.ts_ns - T0 for q in read_quotes(root, k.instruments)] == [0, 2 * MS]
    assert len(read_quotes(root, k.instruments, stream="raw", feed="b")) == 1


def test_when_not_recording_then_the_feed_path_is_as_before(tmp_path: Path) -> None:
    """No ``[recording]``: no recorder, the validated feed delivers to the kernel."""
    config = PaperConfig(
        instruments=[InstrumentConfig(id=X, tick_size=Decimal("0.01"))],
        strategies=[],
        feeds=[SyntheticFeedEntry(name="syn", instruments=[X])],
    )
    k = Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=1)
    sink = k.feed_sinks["syn"]
    assert k.recorder is None
    assert isinstance(sink, ValidatedFeed) and sink._sink is k


# -- config --------------------------------------------------------------------------------

PAPER = """
[[instruments]]
id = "X.SIM"
tick_size = "0.01"

[[strategies]]
name = "s"
path = "s.py"
class = "S"

[[feeds]]
kind = "synthetic"
name = "syn"
instruments = ["X.SIM"]

[recording]
path = "rec"
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("flush_intervl_ms = 5", "unknown key 'recording.flush_intervl_ms'"),
        ("flush_interval_ms = 0", "key 'recording.flush_interval_ms': must be an integer > 0"),
        ("max_rows_per_file = -1", "key 'recording.max_rows_per_file': must be an integer > 0"),
        ("max_buffered_rows = 0", "key 'recording.max_buffered_rows': must be an integer > 0"),
        ('streams = ["raw", "raw"]', "key 'recording.streams': 'raw' is listed twice"),
        ("streams = []", "key 'recording.streams': name at least one"),
        ('streams = ["quotes"]', "key 'recording.streams[0]': invalid value 'quotes'"),
    ],
)
def test_when_recording_is_misconfigured_then_the_error_names_the_key(
    tmp_path: Path, extra: str, message: str
) -> None:
    """Each bad [recording] key is one ConfigError naming it."""
    (tmp_path / "s.py").write_text("")
    path = tmp_path / "paper.toml"
    path.write_text(PAPER + extra + "\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path, PaperConfig)


def test_when_a_backtest_names_a_missing_recording_then_the_key_is_named(tmp_path: Path) -> None:
    """[[recordings]] stands in for [[data]]; its directory must exist."""
    (tmp_path / "s.py").write_text("")
    path = tmp_path / "backtest.toml"
    body = PAPER.split("[[feeds]]")[0] + '[[recordings]]\npath = "nowhere"\n'
    path.write_text(body)
    with pytest.raises(ConfigError, match=r"key 'recordings\[0\].path': recording not found"):
        load_config(path, BacktestConfig)
    (tmp_path / "nowhere").mkdir()
    config = load_config(path, BacktestConfig)
    (feed,) = config.feed_configs()
    assert feed == RecordingFeedEntry(name="recording-0", path="nowhere", instruments=[X])


def test_when_a_live_node_plays_a_recording_then_its_quotes_reach_the_kernel(
    tmp_path: Path,
) -> None:
    """``kind = "recording"``: the delivered stream played at its pace, re-stamped to now,
    through the node's validators."""
    k = kernel(tmp_path, [SyntheticFeedEntry(name="syn", instruments=[X])])
    assert k.recorder is not None
    k.recorder.start()
    sent = [QuoteTick(X, T0 + i * 1_000, 10_000 + 2 * i, 10_002 + 2 * i, 5, 5) for i in range(5)]
    for q in sent:
        k.feed_sinks["syn"].on_quote(q)
    k.recorder.close()
    player = PaperConfig(
        instruments=[InstrumentConfig(id=X, tick_size=Decimal("0.01"))],
        strategies=[],
        feeds=[RecordingFeedEntry(name="rec", path="rec", instruments=[X])],
    )
    clock = SimClock(T0 + 10**9)
    replaying = Kernel(config=player, base_dir=tmp_path, clock=clock, epoch=1)
    (feed,) = replaying.feeds
    asyncio.run(feed.run(replaying.feed_sinks["rec"], clock))
    assert feed.stats().quotes == {X: 5}
    last = replaying.last_quotes[X]
    assert (last.bid, last.ask, last.ts_ns) == (sent[-1].bid, sent[-1].ask, T0 + 10**9)
