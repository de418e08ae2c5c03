"""Fuzzing the FIX adapter's handlers: any ExecutionReport or market data a venue sends.

Messages travel as real FIX bytes through the session layer into the adapter. Whatever
the values, the adapter either applies the message or answers it with a Reject or
BusinessMessageReject: no handler ever fails, no ExecID is applied twice, every fill
it emits carries a positive quantity and price, and every quote it publishes is uncrossed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.fix.codec import FixMessage
from bastion.model.events import OrderFilled
from kit.fix_link import IID, Link, execution, order

_DECIMALS = st.one_of(
    st.decimals(min_value=-10, max_value=10_000, places=4, allow_nan=False).map(str),
    st.sampled_from(["", "abc", "1e3", "NaN", "Infinity", "-0", "0", "1.0000001", " 1"]),
)
_TEXT = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="="),
    max_size=8,
)
_EXEC_TYPES = st.sampled_from(["0", "4", "5", "8", "C", "F", "I", "6", "E", "Z", ""])


@st.composite
def _report(draw: st.DrawFn, cl_ord_id: str) -> FixMessage:
    msg = execution(
        draw(st.sampled_from([cl_ord_id, f"{cl_ord_id}/7", "unknown-1", ""])),
        draw(_EXEC_TYPES),
        draw(st.sampled_from(["E1", "E2", "E3"])),
        status=draw(st.sampled_from(["0", "1", "2", "4", "8", "X"])),
        side=draw(st.sampled_from(["1", "2", "3", ""])),
    )
    for tag in draw(st.lists(st.sampled_from([32, 31, 38, 44, 12, 851, 58]), max_size=6)):
        msg.set(tag, draw(_DECIMALS) if tag != 58 else draw(_TEXT))
    for tag in draw(st.lists(st.sampled_from([37, 17, 150, 39, 54, 151, 14, 6]), max_size=2)):
        msg.remove(tag)
    return msg


@st.composite
def _market_data(draw: st.DrawFn) -> FixMessage:
    msg_type = draw(st.sampled_from(["W", "X"]))
    fields: list[tuple[int, object]] = [(262, "md-1")]
    if msg_type == "W":
        fields.append((55, draw(st.sampled_from([IID, "NOPE"]))))
    for _ in range(draw(st.integers(0, 3))):
        if msg_type == "X":
            fields.append((279, draw(st.sampled_from(["0", "1", "2", "9"]))))
        fields.append((269, draw(st.sampled_from(["0", "1", "2"]))))
        if msg_type == "X":
            fields.append((55, draw(st.sampled_from([IID, "NOPE"]))))
        if draw(st.booleans()):
            fields.append((270, draw(_DECIMALS)))
        if draw(st.booleans()):
            fields.append((271, draw(_DECIMALS)))
    return FixMessage.of(msg_type, *fields)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_when_venue_sends_arbitrary_reports_then_adapter_answers_or_applies_never_fails(
    data: st.DataObject,
) -> None:
    """Random ExecutionReports and market data: no handler error, no ExecID applied twice."""
    with tempfile.TemporaryDirectory() as tmp:
        link = Link(Path(tmp))
        try:
            link.connect()
            o = order()
            link.adapter.submit(o)
            link.pump()
            messages = data.draw(
                st.lists(st.one_of(_report(o.client_order_id), _market_data()), max_size=8)
            )
            for msg in messages:
                link.send(msg)
            assert link.session.counters["handler_errors"] == 0
            assert link.session.logged_on
            fills = [e for e in link.events if isinstance(e, OrderFilled)]
            assert len({f.exec_id for f in fills}) == len(fills)
            for fill in fills:
                assert fill.last_qty > 0 and fill.last_px > 0
            for quote in link.quotes:
                assert 0 < quote.bid < quote.ask
        finally:
            link.close()
