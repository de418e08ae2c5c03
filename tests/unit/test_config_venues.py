"""``[[venues]]`` and ``[[feeds]]`` in a node config: several venues and feeds load, the
single-venue forms map into them, and every mistake names its key."""

from __future__ import annotations

import importlib
from pathlib import Path

import msgspec
import pytest

from bastion.clock import SimClock
from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.feeds.config import ReplayFeedEntry, SyntheticFeedEntry, VenueFeedEntry
from bastion.node.kernel import Kernel
from bastion.venues.fix.config import FixVenueConfig, FixVenueEntry
from bastion.venues.sim.config import SimVenueConfig

HEAD = """
[[instruments]]
id = "ABC.SIM"
venue = "SIM"
tick_size = "0.01"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"

[[strategies]]
name = "s1"
path = "s.py"
class = "S"
"""

SIM = """
[[venues]]
kind = "sim"
name = "SIM"
latency_ms = 3
"""

FIX = """
[[venues]]
kind = "fix"
name = "FIXSIM"
port = 9878
sender_comp_id = "NODE"
target_comp_id = "SIM"
"""

SYNTHETIC = """
[[feeds]]
kind = "synthetic"
name = "house"
instruments = ["ABC.SIM", "XYZ.SIM"]
interval_ms = 50
"""


def load(tmp_path: Path, text: str) -> PaperConfig:
    (tmp_path / "s.py").write_text("# placeholder\n")
    (tmp_path / "q.csv").write_text("ts_ns,bid,ask,bid_size,ask_size\n")
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, PaperConfig)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def test_when_two_venues_and_a_feed_then_each_loads_with_its_kind(tmp_path: Path) -> None:
    """A sim and a FIX venue, and one synthetic feed quoting instruments of both."""
    config = load(tmp_path, HEAD + SIM + FIX + SYNTHETIC)
    sim, fix = config.venue_configs()
    assert isinstance(sim, SimVenueConfig) and sim.latency_ms == 3
    assert isinstance(fix, FixVenueConfig) and fix.port == 9878
    (feed,) = config.feed_configs()
    assert isinstance(feed, SyntheticFeedEntry)
    assert feed.instruments == ["ABC.SIM", "XYZ.SIM"]
    assert (feed.walk("ABC.SIM").seed, feed.walk("XYZ.SIM").seed) == (42, 43)


def test_when_venue_feed_lists_no_instrument_then_it_supplies_all_of_its_venue(
    tmp_path: Path,
) -> None:
    """A venue feed without instruments supplies every instrument of that venue; a replay
    feed supplies its file's instrument."""
    feeds = """
[[feeds]]
kind = "venue"
name = "md"
venue = "FIXSIM"

[[feeds]]
kind = "replay"
name = "tape"
path = "q.csv"
instrument = "ABC.SIM"
"""
    venue_feed, replay = load(tmp_path, HEAD + SIM + FIX + feeds).feed_configs()
    assert isinstance(venue_feed, VenueFeedEntry) and venue_feed.instruments == ["XYZ.SIM"]
    assert isinstance(replay, ReplayFeedEntry)
    assert replay.instruments == ["ABC.SIM"] and replay.source().kind == "quotes"


def test_when_single_fix_venue_form_then_it_maps_to_one_venue_and_its_feed(
    tmp_path: Path,
) -> None:
    """[fix_venue] is one FIX venue whose market data feeds its instruments."""
    text = HEAD.replace('venue = "SIM"', 'venue = "FIXSIM"') + FIX.replace(
        '[[venues]]\nkind = "fix"', "[fix_venue]"
    )
    config = load(tmp_path, text)
    (venue,) = config.venue_configs()
    assert isinstance(venue, FixVenueConfig) and venue.name == "FIXSIM"
    (feed,) = config.feed_configs()
    assert isinstance(feed, VenueFeedEntry)
    assert (feed.venue, feed.instruments) == ("FIXSIM", ["ABC.SIM", "XYZ.SIM"])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            FIX.replace("port = 9878", "port = 0"),
            "key 'venues[1].port': must be 1..65535, got 0",
        ),
        (
            SIM + SYNTHETIC,
            "key 'venues[1].name': duplicate venue name 'SIM' (also venues[0])",
        ),
        (
            FIX
            + SYNTHETIC
            + '\n[fix_venue]\nport = 1\nsender_comp_id = "A"\ntarget_comp_id = "B"\n',
            "keys 'venues' and 'fix_venue'",
        ),
        (FIX + SYNTHETIC + "\n[venue]\nlatency_ms = 1\n", "keys 'venues' and 'venue'"),
        (
            SIM.replace('"SIM"', '"SIM2"').replace("latency_ms = 3", "latency_ms = -1"),
            "key 'venues[1].latency_ms': must be >= 0, got -1",
        ),
    ],
)
def test_when_venue_table_wrong_then_error_names_the_key(
    tmp_path: Path, extra: str, expected: str
) -> None:
    """Each venue mistake names the key of that venue in the list."""
    assert expected in error(tmp_path, HEAD + SIM + extra + SYNTHETIC)


def test_when_instrument_on_unknown_venue_then_error_lists_the_venues(tmp_path: Path) -> None:
    """An instrument's venue must be one of the [[venues]] names."""
    text = HEAD.replace('venue = "FIXSIM"', 'venue = "NYSE"') + SIM + FIX + SYNTHETIC
    message = error(tmp_path, text)
    assert "key 'instruments[1].venue': venue 'NYSE' is not configured" in message
    assert "venues[0].name is 'SIM'" in message and "venues[1].name is 'FIXSIM'" in message


@pytest.mark.parametrize(
    ("feeds", "expected"),
    [
        (
            SYNTHETIC + '\n[[feeds]]\nkind = "venue"\nname = "md"\nvenue = "FIXSIM"\n',
            "key 'feeds[1].instruments': instrument 'XYZ.SIM' already has a feed (feeds[0])",
        ),
        (
            '[[feeds]]\nkind = "venue"\nname = "md"\nvenue = "FIXSIM"\ninstruments = ["ABC.SIM"]\n',
            "key 'feeds[0].instruments': instrument 'ABC.SIM' is on venue 'SIM', not 'FIXSIM'",
        ),
        (
            '[[feeds]]\nkind = "venue"\nname = "md"\nvenue = "SIM"\n',
            "key 'feeds[0].venue': venue 'SIM' sends no market data",
        ),
        (
            '[[feeds]]\nkind = "venue"\nname = "md"\nvenue = "LSE"\n',
            "key 'feeds[0].venue': venue 'LSE' is not configured",
        ),
        (
            SYNTHETIC.replace('"XYZ.SIM"]', '"NOPE"]'),
            "key 'feeds[0].instruments': unknown instrument 'NOPE'",
        ),
        (SYNTHETIC + SYNTHETIC, "key 'feeds[1].name': duplicate feed name 'house'"),
        (SYNTHETIC + '\n[feed]\ninstrument = "ABC.SIM"\n', "keys 'feeds' and 'feed'"),
        (
            '[[feeds]]\nkind = "replay"\nname = "tape"\npath = "missing.csv"\n'
            'instrument = "ABC.SIM"\n',
            "key 'feeds[0].path': file not found",
        ),
        (
            '[[feeds]]\nkind = "radio"\nname = "x"\n',
            "key 'feeds[0].kind': invalid value 'radio' "
            "(expected one of: synthetic, replay, venue, nats, recording)",
        ),
    ],
)
def test_when_feed_table_wrong_then_error_names_the_key(
    tmp_path: Path, feeds: str, expected: str
) -> None:
    """Each feed mistake names its key; an instrument has at most one feed."""
    assert expected in error(tmp_path, HEAD + SIM + FIX + feeds)


def test_when_venue_or_feed_key_misspelt_then_error_suggests_the_kinds_key(
    tmp_path: Path,
) -> None:
    """An unknown key in a [[venues]] or [[feeds]] table is matched against that kind's
    keys; an unknown kind lists the kinds."""
    typo = SIM.replace("latency_ms", "latncy_ms")
    message = error(tmp_path, HEAD + typo + FIX + SYNTHETIC)
    assert "unknown key 'venues[0].latncy_ms' (did you mean 'latency_ms'?)" in message
    message = error(tmp_path, HEAD + SIM + FIX.replace("port =", "prot =") + SYNTHETIC)
    assert "unknown key 'venues[1].prot' (did you mean 'port'?)" in message
    message = error(tmp_path, HEAD + SIM + FIX + SYNTHETIC.replace("interval_ms", "intervl_ms"))
    assert "unknown key 'feeds[0].intervl_ms' (did you mean 'interval_ms'?)" in message
    message = error(tmp_path, HEAD + SIM.replace('"sim"', '"ib"') + FIX + SYNTHETIC)
    assert "key 'venues[0].kind': invalid value 'ib' (expected one of: sim, fix)" in message


def test_when_fix_venue_subscribes_to_nothing_then_it_cannot_be_a_feed(tmp_path: Path) -> None:
    """A venue feed needs a FIX venue with market_data = true."""
    quiet = FIX + "market_data = false\n"
    feed = '[[feeds]]\nkind = "venue"\nname = "md"\nvenue = "FIXSIM"\n'
    message = error(tmp_path, HEAD + SIM + quiet + feed)
    assert "key 'feeds[0].venue': venue 'FIXSIM' sends no market data" in message


def test_when_two_feeds_take_one_venues_market_data_then_error_names_the_second(
    tmp_path: Path,
) -> None:
    """A venue's session hands its quotes to one feed: a second venue feed of the same
    venue (even for other instruments) would silently take them all, so it is refused."""
    third = '\n[[instruments]]\nid = "QQQ.SIM"\nvenue = "FIXSIM"\ntick_size = "0.01"\n'
    feeds = (
        '[[feeds]]\nkind = "venue"\nname = "md1"\nvenue = "FIXSIM"\ninstruments = ["XYZ.SIM"]\n'
        '[[feeds]]\nkind = "venue"\nname = "md2"\nvenue = "FIXSIM"\ninstruments = ["QQQ.SIM"]\n'
    )
    message = error(tmp_path, HEAD + third + SIM + FIX + feeds)
    assert "key 'feeds[1].venue': venue 'FIXSIM' already has a feed (feeds[0])" in message


FIX2 = FIX.replace('"FIXSIM"', '"FIX2"').replace("9878", "9879")
TWO_FIX_HEAD = HEAD.replace('venue = "SIM"', 'venue = "FIX2"')


def test_when_two_fix_venues_would_share_a_session_store_then_error_names_store_path(
    tmp_path: Path,
) -> None:
    """Same file (the default) and the same SenderCompID->TargetCompID: one row of
    sequence numbers for two sessions. The same file written another way counts too."""
    message = error(tmp_path, TWO_FIX_HEAD + FIX + FIX2 + SYNTHETIC)
    assert "key 'venues[1].store_path': venue 'FIX2' would share the FIX session store" in message
    assert "venues[0] ('FIXSIM')" in message and "NODE->SIM" in message
    aliased = FIX2 + f'store_path = "{tmp_path / "sub" / ".." / "fix-sessions.sqlite"}"\n'
    assert "key 'venues[1].store_path'" in error(tmp_path, TWO_FIX_HEAD + FIX + aliased + SYNTHETIC)
    own_file = load(tmp_path, TWO_FIX_HEAD + FIX + FIX2 + 'store_path = "b.sqlite"\n' + SYNTHETIC)
    other_ids = load(tmp_path, TWO_FIX_HEAD + FIX + FIX2.replace('"NODE"', '"NODE2"') + SYNTHETIC)
    assert len(own_file.venue_configs()) == len(other_ids.venue_configs()) == 2


def test_when_two_legacy_replays_feed_one_instrument_then_error_names_the_key(
    tmp_path: Path,
) -> None:
    """[[replay]] tables play at the same time: two files of one instrument would
    interleave; one file per instrument (as [[feeds]] requires too)."""
    replay = '\n[[replay]]\npath = "q.csv"\ninstrument = "ABC.SIM"\n'
    sim_only = HEAD.replace('venue = "FIXSIM"', 'venue = "SIM"')
    message = error(tmp_path, sim_only + replay + replay)
    assert "key 'replay[1].instrument': instrument 'ABC.SIM' already has a feed (replay[0])" in (
        message
    )
    other = replay.replace("ABC.SIM", "XYZ.SIM")
    assert [f.instruments for f in load(tmp_path, sim_only + replay + other).feed_configs()] == [
        ["ABC.SIM"],
        ["XYZ.SIM"],
    ]


def test_when_single_fix_venue_form_has_a_venue_feed_then_it_loads(tmp_path: Path) -> None:
    """[fix_venue] with market data is a venue that sends it: a [[feeds]] venue feed may
    name it."""
    head = HEAD.replace('venue = "SIM"', 'venue = "FIXSIM"')
    fix_venue = (
        '\n[fix_venue]\nname = "FIXSIM"\nport = 1\nsender_comp_id = "a"\ntarget_comp_id = "b"\n'
    )
    config = load(
        tmp_path, head + '\n[[feeds]]\nkind = "venue"\nname = "v"\nvenue = "FIXSIM"\n' + fix_venue
    )
    (feed,) = config.feed_configs()
    assert isinstance(feed, VenueFeedEntry)
    assert (feed.venue, feed.instruments) == ("FIXSIM", ["ABC.SIM", "XYZ.SIM"])


def test_when_password_variable_missing_then_the_node_refuses_naming_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A [[venues]] FIX venue's password_env unset: the error names venues[1], the
    variable and the file, before the node starts; no secret in it. The operator
    commands that only read the file do not need it."""
    cli_main = importlib.import_module("bastion.cli.main")  # the package exports main()
    monkeypatch.delenv("NO_SUCH_VAR_XYZ", raising=False)
    text = HEAD + SIM + FIX + 'password_env = "NO_SUCH_VAR_XYZ"\n' + SYNTHETIC
    config = load(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.check_secrets()
    expected = "key 'venues[1].password_env': environment variable NO_SUCH_VAR_XYZ is not set"
    assert str(caught.value) == expected
    monkeypatch.setattr(cli_main, "configure_logging", lambda *_args: None)
    path = tmp_path / "node.toml"
    assert cli_main.main(["recover", str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {path}: {expected}"
    assert not (tmp_path / "journal.sqlite").exists()
    monkeypatch.setenv("NO_SUCH_VAR_XYZ", "s3cret-pw")
    config.check_secrets()


def test_when_venue_table_with_default_values_next_to_venues_then_error(tmp_path: Path) -> None:
    """[venue] beside [[venues]] is refused even when it only repeats default values
    (it used to be ignored silently); so is [venue] beside [fix_venue]."""
    assert "keys 'venues' and 'venue'" in error(
        tmp_path, HEAD + SIM + FIX + SYNTHETIC + '\n[venue]\nname = "SIM"\n'
    )
    head = HEAD.replace('venue = "SIM"', 'venue = "FIXSIM"')
    fix_venue = (
        '\n[fix_venue]\nname = "FIXSIM"\nport = 1\nsender_comp_id = "a"\ntarget_comp_id = "b"\n'
    )
    assert "keys 'venue' and 'fix_venue'" in error(tmp_path, head + fix_venue + "\n[venue]\n")


def test_when_a_config_built_in_code_shares_a_store_then_the_node_refuses_to_build(
    tmp_path: Path,
) -> None:
    """The store check also runs where the node is built, against its directory: two FIX
    venues whose store paths differ only in how they are written (relative, absolute)
    are one session store there, whoever wrote the config."""
    config = load(tmp_path, TWO_FIX_HEAD + FIX + FIX2 + 'store_path = "b.sqlite"\n' + SYNTHETIC)
    first, second = config.venues
    assert isinstance(first, FixVenueEntry) and isinstance(second, FixVenueEntry)
    same_file = msgspec.structs.replace(second, store_path=str(tmp_path / first.store_path))
    config = msgspec.structs.replace(
        config, venues=[first, same_file]
    )  # passes the as-written check
    with pytest.raises(ConfigError, match=r"key 'venues\[1\].store_path'"):
        Kernel(config=config, base_dir=tmp_path, clock=SimClock(0), epoch=1)
