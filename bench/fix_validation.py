#!/usr/bin/env python3
"""Cost of FIX 4.4 data-dictionary validation per inbound message. Prints one JSON line.

``Validator.check`` (``bastion.fix.validation``, the default configuration) runs on
messages as they arrive at each end of a session: a NewOrderSingle (what the venue
receives), an ExecutionReport fill and a MarketDataIncrementalRefresh (what the node
receives), each with its standard header. For each, ``<type>_ns`` is the mean over
``--messages`` checks timed as a whole, less the same loop without the check.

    python bench/fix_validation.py [--messages 200000]
"""

from __future__ import annotations

import argparse
import json
import time

from bastion.fix.codec import FixMessage
from bastion.fix.validation import ValidationConfig

HEADER = [(49, "SIM"), (56, "NODE"), (34, "12345"), (52, "20240102-14:30:00.123")]


def _message(msg_type: str, *body: tuple[int, str]) -> list[tuple[int, str]]:
    return FixMessage([(35, msg_type), *HEADER, *body]).fields


MESSAGES = {
    "new_order_single": _message(
        "D",
        (11, "C-000123"),
        (55, "XYZ.SIM"),
        (54, "1"),
        (60, "20240102-14:30:00.120"),
        (38, "5"),
        (40, "2"),
        (44, "100.25"),
        (59, "3"),
    ),
    "execution_report": _message(
        "8",
        (37, "V-1"),
        (11, "C-000123"),
        (17, "E-77"),
        (150, "F"),
        (39, "2"),
        (55, "XYZ.SIM"),
        (54, "1"),
        (38, "5"),
        (40, "2"),
        (44, "100.25"),
        (59, "3"),
        (32, "5"),
        (31, "100.25"),
        (151, "0"),
        (14, "5"),
        (6, "100.25"),
        (60, "20240102-14:30:00.121"),
    ),
    "market_data_incremental": _message(
        "X",
        (262, "MD-1"),
        (268, "2"),
        (279, "0"),
        (269, "0"),
        (55, "XYZ.SIM"),
        (270, "100.24"),
        (271, "1000"),
        (279, "0"),
        (269, "1"),
        (55, "XYZ.SIM"),
        (270, "100.26"),
        (271, "1000"),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    validator = ValidationConfig().validator()
    assert validator is not None
    check = validator.check
    out: dict[str, object] = {"messages": args.messages}
    for name, fields in MESSAGES.items():
        assert check(fields) is None, (name, check(fields))
        loop = range(args.messages)
        start = time.perf_counter_ns()
        for _ in loop:
            check(fields)
        checked = time.perf_counter_ns() - start
        start = time.perf_counter_ns()
        for _ in loop:
            pass
        empty = time.perf_counter_ns() - start
        out[f"{name}_ns"] = round((checked - empty) / args.messages)
        out[f"{name}_fields"] = len(fields)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
