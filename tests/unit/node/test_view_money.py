"""The node's view shows money to 8 decimals, without trailing zeros or an exponent."""

from __future__ import annotations

from decimal import Decimal

from bastion.node.view import money


def test_when_pnl_is_a_repeating_fraction_then_the_view_shows_8_decimals() -> None:
    """An average cost divides: 28 digits become 8, rounded."""
    assert money(Decimal(1) / Decimal(3)) == "0.33333333"
    assert money(Decimal("-0.10999999999999999999999999995")) == "-0.11"
    assert money(Decimal("6.389502717391304347826086957")) == "6.38950272"


def test_when_pnl_has_trailing_zeros_then_they_go_and_no_exponent_appears() -> None:
    """``7.3000...`` reads 7.3; a round or tiny amount never reads in scientific form."""
    assert money(Decimal("7.3000000000000000000000000000")) == "7.3"
    assert money(Decimal("100.00")) == "100"
    assert money(Decimal("0.00000001")) == "0.00000001"
    assert money(Decimal("0E-28")) == "0"
