"""Replaying CSV files: exact conversion, line numbers, broken lines and chunk boundaries."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.data import _csvfile, open_replay
from bastion.errors import DataError
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument

XYZ = Instrument(
    id="XYZ.SIM",
    venue="SIM",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("1"),
    quote_currency="USD",
)
HEADER = "ts_ns,bid,ask,bid_size,ask_size\n"


def quote(ts: int, bid: int, ask: int, bid_size: int = 100, ask_size: int = 100) -> QuoteTick:
    return QuoteTick("XYZ.SIM", ts, bid, ask, bid_size, ask_size)


def write(tmp_path: Path, body: str | bytes, name: str = "quotes.csv") -> Path:
    path = tmp_path / name
    data = body if isinstance(body, bytes) else (HEADER + body).encode()
    path.write_bytes(data)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        list(open_replay(path, XYZ))
    return str(caught.value)


def test_when_prices_are_decimal_text_then_they_convert_exactly(tmp_path: Path) -> None:
    """100.01 at precision 2 is raw 10001, and sizes use the size scale."""
    path = write(tmp_path, "1,100.01,100.02,5,7\n2,0.07,99999.99,0,1\n")

    rows = list(open_replay(path, XYZ))

    assert rows == [quote(1, 10001, 10002, 5, 7), quote(2, 7, 9999999, 0, 1)]


def test_when_a_price_carries_float_noise_then_it_is_accepted(tmp_path: Path) -> None:
    """0.1 + 0.2 printed in full is within the 1e-9 tolerance of 0.30."""
    noisy = repr(0.1 + 0.2)
    path = write(tmp_path, f"1,{noisy},0.31,1,1\n")

    rows = list(open_replay(path, XYZ))

    assert noisy == "0.30000000000000004"
    assert rows == [quote(1, 30, 31, 1, 1)]


def test_when_a_price_has_one_decimal_too_many_then_it_is_off_scale(tmp_path: Path) -> None:
    """A third decimal at precision 2 is not rounding noise."""
    path = write(tmp_path, "1,0.301,0.31,1,1\n")

    assert error_of(path) == (
        "quotes.csv:2: column 'bid': '0.301' has more than 2 decimals (price_off_scale)"
    )


def test_when_quote_is_locked_then_it_is_accepted(tmp_path: Path) -> None:
    """bid == ask is allowed; only bid > ask is crossed."""
    path = write(tmp_path, "1,100.00,100.00,1,1\n")

    assert list(open_replay(path, XYZ)) == [quote(1, 10000, 10000, 1, 1)]


def test_when_columns_are_reordered_and_extra_then_they_are_matched_by_name(
    tmp_path: Path,
) -> None:
    """Extra columns are ignored, whatever they contain."""
    body = b"note,ask_size,ask,bid,ts_ns,bid_size,more\nhi,7,100.02,100.01,1,5,\xff\n"
    path = write(tmp_path, body)

    assert list(open_replay(path, XYZ)) == [quote(1, 10001, 10002, 5, 7)]


def test_when_a_row_has_too_few_fields_then_the_error_names_its_line(tmp_path: Path) -> None:
    """The line number counts the header as line 1."""
    path = write(tmp_path, "1,100.01,100.02,1,1\n2,100.01,100.02,1,1\n3,100.01\n")

    assert error_of(path) == "quotes.csv:4: expected 5 fields, got 2 (wrong_field_count)"


def test_when_a_row_has_too_many_fields_and_policy_is_skip_then_it_is_counted(
    tmp_path: Path,
) -> None:
    """The rows on both sides of the broken line still arrive."""
    path = write(tmp_path, "1,100.01,100.02,1,1\n2,100.01,100.02,1,1,9\n3,100.01,100.02,1,1\n")
    source = open_replay(path, XYZ, on_bad_row="skip")

    rows = list(source)

    assert [q.ts_ns for q in rows] == [1, 3]
    assert source.stats.rows_read == 3
    assert source.stats.skipped_by_reason == {"wrong_field_count": 1}


def test_when_blank_lines_come_before_a_bad_row_then_its_line_is_still_exact(
    tmp_path: Path,
) -> None:
    """Blank lines are not rows, but they count as lines."""
    path = write(tmp_path, "1,100.01,100.02,1,1\n\n\n2,100.01,100.02,1,1\n\n3,abc,100.02,1,1\n")

    assert error_of(path) == "quotes.csv:7: column 'bid': 'abc' is not a number (not_a_number)"


def test_when_a_broken_line_precedes_a_bad_value_then_the_broken_line_is_reported(
    tmp_path: Path,
) -> None:
    """The first problem in file order wins, whatever its kind."""
    path = write(tmp_path, "1,100.01,100.02,1,1\n2,100.01\n3,abc,100.02,1,1\n")

    assert error_of(path).startswith("quotes.csv:3: expected 5 fields, got 2")


def test_when_a_bad_value_precedes_a_broken_line_then_the_bad_value_is_reported(
    tmp_path: Path,
) -> None:
    """A broken line found while parsing does not jump ahead of an earlier bad cell."""
    path = write(tmp_path, "1,100.01,100.02,1,1\n2,abc,100.02,1,1\n3,100.01\n")

    assert error_of(path).startswith("quotes.csv:3: column 'bid': 'abc'")


def test_when_a_quote_spans_lines_then_each_line_is_judged_alone(tmp_path: Path) -> None:
    """A quoted newline cannot swallow the following rows; line numbers stay physical."""
    path = write(tmp_path, '1,"100.01",100.02,1,1\n2,"100\n.01",100.02,1,1\n3,100.01,100.02,1,1\n')
    source = open_replay(path, XYZ, on_bad_row="skip")

    rows = list(source)

    assert [q.ts_ns for q in rows] == [1, 3]
    assert source.stats.skipped_by_reason == {"wrong_field_count": 2}
    assert error_of(path) == "quotes.csv:3: expected 5 fields, got 2 (wrong_field_count)"


def test_when_lines_end_with_crlf_or_cr_then_line_numbers_are_exact(tmp_path: Path) -> None:
    """Windows and old-Mac line ends both count as one line end."""
    crlf = write(tmp_path, HEADER.replace("\n", "\r\n").encode() + b"1,1,2,1,1\r\n2,x,2,1,1\r\n")
    cr = write(tmp_path, b"ts_ns,bid,ask,bid_size,ask_size\r1,1,2,1,1\r\r2,x,2,1,1\r", "cr.csv")

    assert error_of(crlf).startswith("quotes.csv:3: column 'bid': 'x'")
    assert error_of(cr).startswith("cr.csv:4: column 'bid': 'x'")


def test_when_the_file_has_a_bom_and_no_final_newline_then_it_reads(tmp_path: Path) -> None:
    """A UTF-8 byte order mark before the header is ignored."""
    path = write(tmp_path, b"\xef\xbb\xbf" + HEADER.encode() + b"1,100.01,100.02,1,1")

    assert list(open_replay(path, XYZ)) == [quote(1, 10001, 10002, 1, 1)]


def test_when_cells_have_blanks_around_numbers_then_they_are_accepted(tmp_path: Path) -> None:
    """Spaces and tabs around a number are trimmed the same way on every path."""
    path = write(tmp_path, "1, 100.01 ,\t100.02,1,1\n2, 100.01 ,100.02,x,1\n")
    source = open_replay(path, XYZ, on_bad_row="skip")

    rows = list(source)

    assert rows == [quote(1, 10001, 10002, 1, 1)]
    assert source.stats.skipped_by_reason == {"not_a_number": 1}


def test_when_a_cell_is_not_utf8_then_it_is_not_a_number(tmp_path: Path) -> None:
    """Undecodable bytes are a bad cell, not a crash."""
    path = write(tmp_path, HEADER.encode() + b"1,100.01,100.02,1,1\n2,\xff\xfe,100.02,1,1\n")

    assert error_of(path).startswith("quotes.csv:3: column 'bid':")
    assert "(not_a_number)" in error_of(path)


def test_when_the_file_has_only_a_header_then_it_yields_nothing(tmp_path: Path) -> None:
    """No rows is not an error."""
    source = open_replay(write(tmp_path, ""), XYZ)

    assert list(source) == []
    assert source.stats.rows_read == 0
    assert source.first_ts_ns is None


def test_when_the_file_is_empty_then_opening_fails(tmp_path: Path) -> None:
    """An empty file has no header to find the columns in."""
    with pytest.raises(DataError, match=r"empty\.csv:1: no usable header"):
        open_replay(write(tmp_path, b"", "empty.csv"), XYZ)


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 200])
def test_when_the_file_spans_many_chunks_then_rows_and_lines_are_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    """Rows cross chunk boundaries intact, and line numbers carry across chunks."""
    monkeypatch.setattr(_csvfile, "BLOCK_BYTES", block_bytes)
    lines = [f"{ts},100.{ts % 100:02d},101.00,{ts},1" for ts in range(1, 60)]
    lines[20:20] = ["", "\r"]  # a blank line and a lone carriage return: two more lines
    good = write(tmp_path, "\n".join(lines) + "\n", "good.csv")
    bad = write(tmp_path, "\n".join([*lines, "60,1,x,1,1"]) + "\n", "bad.csv")

    rows = list(open_replay(good, XYZ))

    assert [q.ts_ns for q in rows] == list(range(1, 60))
    assert rows[41] == quote(42, 10042, 10100, 42, 1)
    assert error_of(bad).startswith(f"bad.csv:{len(lines) + 2}: column 'ask': 'x'")


def test_when_rows_exceed_one_real_chunk_then_all_arrive_in_order(tmp_path: Path) -> None:
    """More rows than one 2 MiB block: counts, order and the last row are right."""
    n = 120_000
    body = "".join(f"{i},100.01,100.02,1,1\n" for i in range(n))
    source = open_replay(write(tmp_path, body), XYZ)

    count = 0
    last = None
    for count, last in enumerate(source, start=1):  # noqa: B007
        pass

    assert count == n
    assert last == quote(n - 1, 10001, 10002, 1, 1)
    assert source.stats.rows_read == n


def test_when_header_names_have_blanks_around_them_then_they_still_match(tmp_path: Path) -> None:
    """'ts_ns, bid, ask' is read like 'ts_ns,bid,ask'."""
    path = write(tmp_path, b"ts_ns, bid,\task ,bid_size, ask_size\n1, 100.01, 100.02, 1, 1\n")

    assert list(open_replay(path, XYZ)) == [quote(1, 10001, 10002, 1, 1)]
