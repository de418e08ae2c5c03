"""Fuzzing the config loader: any file content gives a loaded config or one ConfigError."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.config import BacktestConfig, PaperConfig, load_config
from bastion.errors import ConfigError

VALID_PAPER = """
[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"

[[strategies]]
name = "s1"
path = "s.py"
class = "S"

[feed]
instrument = "XYZ.SIM"
"""

_SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
)
_KEYS = st.sampled_from(
    [
        "node.id",
        "node.log_level",
        "risk.max_order_quantity",
        "risk.max_order_notional",
        "risk.trading_state",
        "venue.latency_ms",
        "venue.taker_fee_bps",
        "venue.market_remainder",
        "feed.seed",
        "feed.interval_ms",
        "feed.start_price",
        "journal.flush_interval_ms",
        "account.starting_cash",
        "run_for_s",
        "bogus",
        "risk.bogus",
    ]
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    return str(value)


@settings(
    max_examples=80,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.text(max_size=300))
def test_when_file_is_arbitrary_text_then_config_error_or_loaded(tmp_path: Path, text: str) -> None:
    """Random text never escapes as anything but a ConfigError naming the file."""
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    for schema in (PaperConfig, BacktestConfig):
        try:
            load_config(path, schema)
        except ConfigError as error:
            assert "fuzz.toml" in str(error)


@settings(
    max_examples=120,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=_KEYS, value=_SCALARS)
def test_when_one_value_is_wrong_then_error_names_the_key(
    tmp_path: Path, key: str, value: object
) -> None:
    """Any value at any key either loads or yields a ConfigError that names that key."""
    (tmp_path / "s.py").write_text("# strategy\n")
    section, _, name = key.rpartition(".")
    line = f"{name} = {_toml_value(value)}\n"
    text = (line + VALID_PAPER) if not section else VALID_PAPER + f"\n[{section}]\n{line}"
    if section == "feed":
        text = VALID_PAPER.replace("[feed]\n", "[feed]\n" + line)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return  # not a TOML file at all: covered by the arbitrary-text test
    path = tmp_path / "paper.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, PaperConfig)
    except ConfigError as error:
        assert "paper.toml" in str(error)
        assert name in str(error)
