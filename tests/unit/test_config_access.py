"""The ``[access]`` section: the operator store beside the vault, four-eyes windows per
action (on by default for a live node, off for a paper one), the override factor and
the socket's mode; unknown keys and out-of-range values refused naming the key; a live
node without it refused at start."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.live.preflight import check_live_access
from bastion.security.config import AccessConfig, FourEyes, FourEyesConfig

NODE = (
    '[[instruments]]\nid = "XYZ.SIM"\ntick_size = "0.01"\n'
    '[[strategies]]\nname = "s1"\npath = "s.py"\nclass = "S"\n'
    '[feed]\ninstrument = "XYZ.SIM"\n'
)


def load(tmp_path: Path, text: str) -> PaperConfig:
    (tmp_path / "s.py").write_text("# placeholder\n")
    path = tmp_path / "node.toml"
    path.write_text(NODE + text)
    return load_config(path, PaperConfig)


def test_when_access_is_not_given_then_the_node_has_no_operators(tmp_path: Path) -> None:
    """No [access]: only the node's own account commands it (a one-person paper desk)."""
    assert load(tmp_path, "").access is None


def test_when_access_is_empty_then_the_defaults_apply(tmp_path: Path) -> None:
    """[access] alone: users.bastion beside the vault, factor 2, group socket (0660)."""
    access = load(tmp_path, "[access]\n").access
    assert access is not None
    assert access.users.resolve(tmp_path / "vault.bastion") == tmp_path / "users.bastion"
    assert access.max_override_factor == Decimal(2)
    assert (access.socket, access.socket_mode) == ("group", 0o660)
    assert AccessConfig(socket="owner").socket_mode == 0o600


@pytest.mark.parametrize("action", list(FourEyes))
def test_when_four_eyes_is_not_configured_then_on_for_live_and_off_for_paper(
    action: FourEyes,
) -> None:
    """Unset: 900 s on a live node, 0 (off) on a paper node; a value set wins either way,
    0 turning it off."""
    unset = FourEyesConfig()
    assert unset.window_s(action, "live") == 900.0
    assert unset.window_s(action, "paper") == 0.0
    set_ = FourEyesConfig(**{f"{action.value}_s": 60.0})
    assert set_.window_s(action, "paper") == set_.window_s(action, "live") == 60.0
    off = FourEyesConfig(**{f"{action.value}_s": 0.0})
    assert off.window_s(action, "live") == 0.0


def test_when_four_eyes_windows_are_configured_then_each_action_has_its_own(
    tmp_path: Path,
) -> None:
    """[access.four_eyes] sets each action's window, in seconds."""
    text = "[access.four_eyes]\nresume_s = 300\nraise_limit_s = 0\n"
    access = load(tmp_path, text).access
    assert access is not None
    assert access.four_eyes.window_s(FourEyes.RESUME, "paper") == 300
    assert access.four_eyes.window_s(FourEyes.RAISE_LIMIT, "live") == 0
    assert access.four_eyes.window_s(FourEyes.RAISE_CEILING, "live") == 900


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[access]\nwho = 1\n", "unknown key 'access.who'"),
        ("[access.four_eyes]\nresume = 60\n", "unknown key 'access.four_eyes.resume'"),
        ("[access.four_eyes]\nresume_s = -1\n", "access.four_eyes.resume_s"),
        ("[access.four_eyes]\narm_live_s = 86401\n", "access.four_eyes.arm_live_s"),
        ("[access]\nmax_override_factor = 0.5\n", "access.max_override_factor"),
        ("[access]\nmax_override_factor = 1001\n", "access.max_override_factor"),
        ('[access]\nmax_override_factor = "nan"\n', "access.max_override_factor"),
        ('[access]\nsocket = "world"\n', "socket"),
        ("[access.users]\nmax_failures = 0\n", "access.users.max_failures"),
    ],
)
def test_when_access_is_wrong_then_refused_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)


def test_when_the_factor_is_at_its_bounds_then_it_loads(tmp_path: Path) -> None:
    """1 (no loosening beyond the config) and 1000 load."""
    for factor in ("1", "1000"):
        access = load(tmp_path, f'[access]\nmax_override_factor = "{factor}"\n').access
        assert access is not None and access.max_override_factor == Decimal(factor)


def test_when_a_live_node_has_no_access_then_its_start_is_refused(tmp_path: Path) -> None:
    """A live config without [access] loads (arming and other tools read it) but the
    node refuses to start, saying why; with [access] it passes, as does paper."""
    bare = load(tmp_path, "")
    check_live_access(bare)  # paper: the owner alone is fine
    live = PaperConfig(
        node=bare.node.__class__(mode="live"),
        instruments=bare.instruments,
        strategies=bare.strategies,
        feed=bare.feed,
        risk=bare.risk.__class__(
            max_order_quantity=Decimal(1),
            max_order_notional=Decimal(1),
            max_long_quantity=Decimal(1),
            max_short_quantity=Decimal(1),
            stale_data_ms=1000,
            max_daily_loss_node=Decimal(1),
            max_messages_per_s=1,
        ),
    )
    with pytest.raises(ConfigError, match="a live node needs operators"):
        check_live_access(live)
    check_live_access(live.__class__(**{**_fields(live), "access": AccessConfig()}))


def _fields(config: PaperConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__struct_fields__}


def test_when_bastion_users_is_given_a_config_then_it_uses_its_access_users(
    tmp_path: Path,
) -> None:
    """`bastion users --config FILE` administers the store the node will read:
    [access.users] path (beside the vault by default), whatever else the file holds."""
    from argparse import Namespace

    from bastion.cli.users import _users_config

    path = tmp_path / "node.toml"
    path.write_text('[access.users]\npath = "ops/users.bastion"\n[risk]\nanything = 1\n')
    chosen = _users_config(Namespace(config=str(path)))
    assert chosen.resolve(tmp_path / "vault.bastion") == tmp_path / "ops" / "users.bastion"
    path.write_text("[node]\n")
    assert _users_config(Namespace(config=str(path))).path == "users.bastion"
    assert _users_config(Namespace(config=None)).path == "users.bastion"
    path.write_text("[access.users]\nmax_failures = 0\n")
    with pytest.raises(ConfigError, match="max_failures"):
        _users_config(Namespace(config=str(path)))
