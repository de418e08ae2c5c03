"""Each risk control's rule is one check whose denial builds its own message
(``risk.reasons.Denial``): no denial kind without a message of its own."""

from __future__ import annotations

import bastion.risk.checks
import bastion.risk.gate  # with checks: every module that defines a denial is loaded
from bastion.risk.reasons import Denial, DenyReason

# the denial kinds of the controls, by the module that holds each control's check
EXPECTED = {
    "bastion.risk.size": {
        "WrongVenue",
        "InvalidQuantity",
        "InvalidPrice",
        "MaxOrderQuantity",
        "MaxOrderNotional",
    },
    "bastion.risk.market": {"PausedDenied", "StaleDenied"},
    "bastion.risk.collar": {"CollarDenied", "BandDenied", "NoReference"},
    "bastion.risk.throttle": {"ThrottleDenied", "DuplicateDenied"},
    "bastion.risk.positions": {"PositionDenied"},
    "bastion.risk.credit": {"CreditDenied", "Unvalued"},
    "bastion.risk.checks": {"NotPermitted"},
    "bastion.risk.self_trade": {"SelfTradeDenied"},
}


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_when_a_control_denies_then_its_own_class_builds_the_message() -> None:
    """Every denial kind sits beside its control's check and defines ``message``."""
    kinds: dict[str, set[str]] = {}
    for cls in _subclasses(Denial):
        assert "message" in vars(cls), f"{cls.__qualname__} has no message of its own"
        kinds.setdefault(cls.__module__, set()).add(cls.__name__)
    assert kinds == EXPECTED


def test_when_a_refusal_has_a_fixed_text_then_the_base_denial_carries_it() -> None:
    """``Denial(reason, text)``: the reason at once, the text as the message."""
    denial = Denial(DenyReason.TRADING_HALTED, "trading is halted")
    assert (denial.reason, denial.message()) == (DenyReason.TRADING_HALTED, "trading is halted")
    assert bastion.risk.checks.NotPermitted("s1", "XYZ.SIM", "B").message() == (
        "strategy s1 may not trade on venue B (risk.strategies.s1.venues)"
    )
