"""The FIX 4.4 data dictionary (generated from QuickFIX's FIX44.xml) and the validator."""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import pytest

from bastion.fix.codec import (
    GROUP_FIELDS_OUT_OF_ORDER,
    INCORRECT_DATA_FORMAT,
    INCORRECT_NUM_IN_GROUP_COUNT,
    INVALID_TAG_NUMBER,
    REQUIRED_TAG_MISSING,
    TAG_APPEARS_MORE_THAN_ONCE,
    TAG_NOT_DEFINED_FOR_MSG_TYPE,
    TAG_OUT_OF_ORDER,
    VALUE_INCORRECT,
)
from bastion.fix.validation import PROJECT_FIELDS, ValidationConfig
from bastion.venues.fix.config import CANCEL_ORDERS_ON_DISCONNECT
from kit.fix_pair import execution_report, new_order

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "gen_fix44_dictionary.py"
HEADER = [(49, "A"), (56, "B"), (34, "2"), (52, "20240102-14:30:00.000")]


def fields(msg_type: str, body: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(35, msg_type), *HEADER, *body]


ORDER = fields("D", new_order("c1").fields[1:])


def test_committed_dictionary_equals_the_generator_output_from_quickfix_fix44_xml() -> None:
    """src/bastion/fix/dictionary44.py is exactly what the script makes of FIX44.xml."""
    assert importlib.util.find_spec("quickfix") is not None, "the dev env installs quickfix"
    script = runpy.run_path(str(SCRIPT))
    expected = script["generate"](script["default_xml"]().read_bytes())
    committed = (ROOT / "src" / "bastion" / "fix" / "dictionary44.py").read_text(encoding="utf-8")
    assert committed == expected, "regenerate: python scripts/gen_fix44_dictionary.py"


def test_project_fields_include_cancel_orders_on_disconnect() -> None:
    """The Logon's CancelOrdersOnDisconnect tag is one of the project's own fields."""
    assert CANCEL_ORDERS_ON_DISCONNECT in PROJECT_FIELDS["A"]


def test_when_messages_are_valid_then_no_defect() -> None:
    """A complete NewOrderSingle, ExecutionReport and a Logon with 8013 pass."""
    validator = ValidationConfig().validator()
    assert validator is not None
    assert validator.check(ORDER) is None
    assert validator.check(fields("8", execution_report("e1").fields[1:])) is None
    assert validator.check(fields("A", [(98, "0"), (108, "30"), (8013, "Y")])) is None


@pytest.mark.parametrize(
    ("extra", "reason", "ref_tag"),
    [
        ([(999, "x")], INVALID_TAG_NUMBER, 999),
        ([(5000, "x")], INVALID_TAG_NUMBER, 5000),
        ([(112, "x")], TAG_NOT_DEFINED_FOR_MSG_TYPE, 112),
        ([(21, "4")], VALUE_INCORRECT, 21),
        ([(167, "BOO")], VALUE_INCORRECT, 167),
        ([(126, "20240102-25:00:00")], INCORRECT_DATA_FORMAT, 126),
        ([(44, "+200.00")], INCORRECT_DATA_FORMAT, 44),
        ([(49, "A")], TAG_OUT_OF_ORDER, 49),
        ([(54, "2")], TAG_APPEARS_MORE_THAN_ONCE, 54),
        ([(453, "2"), (448, "p"), (447, "D"), (452, "1")], INCORRECT_NUM_IN_GROUP_COUNT, 453),
        ([(453, "1"), (447, "D"), (448, "p")], GROUP_FIELDS_OUT_OF_ORDER, 447),
        ([(453, "1"), (448, "p"), (447, "D"), (447, "D")], TAG_APPEARS_MORE_THAN_ONCE, 447),
        ([(93, "1"), (89, "x"), (1, "acct")], TAG_OUT_OF_ORDER, 1),
    ],
)
def test_when_a_field_is_wrong_then_defect_names_reason_and_tag(
    extra: list[tuple[int, str]], reason: int, ref_tag: int
) -> None:
    """Each kind of invalid field is found, with its SessionRejectReason and tag."""
    validator = ValidationConfig().validator()
    assert validator is not None
    defect = validator.check(ORDER + extra)
    assert defect is not None
    assert (defect.reason, defect.ref_tag) == (reason, ref_tag), defect.text


def test_when_a_required_field_is_missing_then_required_tag_missing() -> None:
    """Side (54) left out of a NewOrderSingle; TargetCompID (56) out of the header."""
    validator = ValidationConfig().validator()
    assert validator is not None
    no_side = [f for f in ORDER if f[0] != 54]
    no_target = [f for f in ORDER if f[0] != 56]
    for message, tag in ((no_side, 54), (no_target, 56)):
        defect = validator.check(message)
        assert defect is not None and (defect.reason, defect.ref_tag) == (REQUIRED_TAG_MISSING, tag)


def test_when_configured_then_user_defined_and_unknown_fields_pass() -> None:
    """Brokers' switches: user-defined tags unchecked, unknown tags allowed, extra fields."""
    order_5001 = [*ORDER, (5001, "x")]
    assert (
        ValidationConfig(validate_user_defined_fields=False).validator().check(order_5001) is None
    )  # type: ignore[union-attr]
    assert ValidationConfig(extra_fields={"D": [5001]}).validator().check(order_5001) is None  # type: ignore[union-attr]
    allowing = ValidationConfig(allow_unknown_fields=True).validator()
    assert allowing is not None
    assert allowing.check([*ORDER, (112, "x")]) is None
    assert allowing.check([*ORDER, (999, "x")]) is None
    still = allowing.check([*ORDER, (21, "4")])
    assert still is not None and still.reason == VALUE_INCORRECT
    assert ValidationConfig(enabled=False).validator() is None


@pytest.mark.parametrize(
    "value",
    [
        *("0", "12", "-3", "+5", "1.5", ".5", "5.", "-.5", ".", "-", "", "1.2.3", "²", "a"),
        *("1e5", "20240102-14:30:00", "20240102-14:30:00.123", "20240102-23:59:60.123456789"),
        *("20240102-14:30:00.", "20240102-14:30:00.1234567890", "20241302-14:30:00"),
        *("20240100-14:30:00", "20240102-24:00:00", "20240102-14:60:00", "20240102 14:30:00"),
        *("2024010²-14:30:00", "20240102-14:30:00.12a", "20240102-14:30:00Z"),
    ],
)
def test_fast_format_checks_agree_with_the_patterns(value: str) -> None:
    """The str-method checks and the regular expressions say the same of each value."""
    import re

    from bastion.fix.validator import FAST, PATTERNS

    for kind, fast in FAST.items():
        pattern = re.compile(PATTERNS[kind], re.ASCII | re.DOTALL)
        assert fast(value) == bool(pattern.fullmatch(value)), (kind, value)


def test_when_checks_outnumber_the_stamp_generations_then_each_check_starts_clean() -> None:
    """The tables of fields seen are kept between checks and stamped per check (and per
    group entry), wrapping at 255: past several wraps, a repeated tag, a missing one and
    a tag repeated in a group entry are still found, and a valid message still passes."""
    validator = ValidationConfig().validator()
    assert validator is not None
    entry = [(269, "0"), (270, "100.25"), (271, "5")]
    snapshot = fields("W", [(55, "XYZ.SIM"), (268, "300"), *(entry * 300)])
    for _ in range(3):
        assert validator.check(snapshot) is None
        for _ in range(300):
            assert validator.check(ORDER) is None
        repeated = validator.check([*ORDER, (11, "again")])
        missing = validator.check([f for f in ORDER if f[0] != 54])
        assert repeated is not None and repeated.reason == TAG_APPEARS_MORE_THAN_ONCE
        assert missing is not None and (missing.reason, missing.ref_tag) == (
            REQUIRED_TAG_MISSING,
            54,
        )
        twice = [(269, "1"), (270, "1"), (270, "5")]
        in_entry = validator.check(fields("W", [(55, "XYZ.SIM"), (268, "2"), *entry, *twice]))
        assert in_entry is not None
        assert (in_entry.reason, in_entry.ref_tag) == (TAG_APPEARS_MORE_THAN_ONCE, 270)
