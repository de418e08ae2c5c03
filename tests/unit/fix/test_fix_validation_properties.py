"""Random mutations of valid messages, at both ends of a session: never a crash, and each
one either processed or answered (a Reject, a BusinessMessageReject, a Logout) or, when it
cannot be framed, ignored as garbled without using a sequence number."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bastion.fix.codec import FixMessage, encode
from bastion.fix.timestamps import format_utc_timestamp
from kit.fix_pair import ACC, INI, T0, FakeClock, Pair, execution_report, new_order, parse_all

_MUTATION = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 30), st.just("")),
    st.tuples(st.just("repeat"), st.integers(0, 30), st.just("")),
    st.tuples(st.just("swap"), st.integers(0, 30), st.just("")),
    st.tuples(
        st.just("value"),
        st.integers(0, 30),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12),
    ),
    st.tuples(
        st.just("insert"),
        st.integers(-2, 10_000),
        st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=6),
    ),
)


def _mutate(fields: list[tuple[int, str]], mutation: tuple[str, int, str]) -> None:
    kind, n, text = mutation
    i = 1 + n % (len(fields) - 1)  # MsgType stays first: its absence is framing, not this
    if kind == "drop":
        del fields[i]
    elif kind == "repeat":
        fields.insert(i, fields[i])
    elif kind == "swap":
        j = 1 + (n * 7) % (len(fields) - 1)
        fields[i], fields[j] = fields[j], fields[i]
    elif kind == "value":
        fields[i] = (fields[i][0], text)
    else:
        fields.insert(len(fields) // 2, (n, text.replace("=", "-")))


@hsettings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    to_venue=st.booleans(),
    mutations=st.lists(_MUTATION, min_size=1, max_size=3),
)
def test_when_a_valid_message_is_mutated_then_processed_or_answered_never_a_crash(
    tmp_path_factory: pytest.TempPathFactory,
    to_venue: bool,
    mutations: list[tuple[str, int, str]],
) -> None:
    """A mutated NewOrderSingle (to the acceptor) or ExecutionReport (to the initiator)."""
    p = Pair(tmp_path_factory.mktemp("mut"), clock=FakeClock())
    try:
        p.logon()
        session, app = (p.acc, p.acc_app) if to_venue else (p.ini, p.ini_app)
        answers = p.to_ini if to_venue else p.to_acc
        sender, target = (INI, ACC) if to_venue else (ACC, INI)
        body = (new_order("C1") if to_venue else execution_report("E1")).fields
        seq = session.store.next_target_seq
        fields = [body[0], (49, sender), (56, target), (34, str(seq))]
        fields += [(52, format_utc_timestamp(T0)), *body[1:]]
        for mutation in mutations:
            _mutate(fields, mutation)
        delivered, garbled = len(app.messages), session.counters["garbled"]
        session.data_received(encode("FIX.4.4", fields))
        replies = [m.msg_type for m in parse_all(answers.take())]
        if len(app.messages) > delivered:
            assert app.messages[-1] == FixMessage(fields)
        elif session.counters["garbled"] > garbled:
            assert session.store.next_target_seq == seq
        else:
            assert {"3", "5", "j", "2"} & set(replies), (fields, replies)
    finally:
        p.close()
