"""The event registry (``model.events.EVENT_REGISTRY``) is the one list of event types:
every event struct is in it, the journal codec decodes exactly its types under their
pinned tags, and the node journals each of them exactly once (the execution engine the
order events, the bus subscription the others)."""

from __future__ import annotations

import enum
import inspect
import types
from decimal import Decimal
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import msgspec
import pytest

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.journal import SqliteJournal
from bastion.journal._codec import (
    GENESIS_HASH,
    JournalEvent,
    RecordEncoder,
    new_decoder,
    record_problem,
)
from bastion.model import events as ev
from bastion.node.kernel import Kernel

# One payload of every event type as written before the registry existed (schema 3):
# a registered tag may never change or go away, or those journals would not decode.
_GOLDEN = Path(__file__).with_name("journal_payloads_v3.txt")
# One payload of every event type registered since, as first journaled.
_ADDED = Path(__file__).with_name("journal_payloads_added.txt")


def _golden_payloads(path: Path = _GOLDEN) -> dict[str, bytes]:
    lines = path.read_text().splitlines()
    return {
        tag: bytes.fromhex(payload)
        for tag, payload in (line.split() for line in lines if not line.startswith("#"))
    }


def _event_structs() -> set[type[ev.Event]]:
    """Every event struct defined in ``bastion.model.events`` (walked, not listed)."""
    found: set[type[ev.Event]] = set()
    pending: list[type[ev.Event]] = [ev.Event]
    while pending:
        cls = pending.pop()
        if cls.__module__ == ev.__name__:
            found.add(cls)
        pending.extend(cls.__subclasses__())
    for _, member in inspect.getmembers(ev, inspect.isclass):
        if issubclass(member, msgspec.Struct) and issubclass(member, ev.Event):
            found.add(member)
    return found - set(ev.EVENT_BASES)


def _sample_value(annotation: Any) -> Any:
    """A value of a field's type, to build one of every event without listing them."""
    if get_origin(annotation) in (Union, types.UnionType):
        return _sample_value(next(a for a in get_args(annotation) if a is not type(None)))
    if get_origin(annotation) is list:
        return [_sample_value(get_args(annotation)[0])]
    if get_origin(annotation) is dict:
        key, value = get_args(annotation)
        return {_sample_value(key): _sample_value(value)}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    samples: dict[Any, Any] = {
        int: 7,
        str: "x",
        bool: True,
        float: 0.5,
        Decimal: Decimal("0.012345"),
    }
    return samples[annotation]


def _sample(event_type: type[ev.Event]) -> ev.Event:
    hints = msgspec.structs.fields(event_type)
    return event_type(**{f.name: _sample_value(f.type) for f in hints})


def test_when_an_event_struct_is_defined_then_it_is_registered_once() -> None:
    """Adding an event type without registering it fails here."""
    registered = [kind.type for kind in ev.EVENT_REGISTRY]
    assert len(registered) == len(set(registered))
    assert set(registered) == _event_structs()


def test_when_registered_then_the_tag_is_the_published_one() -> None:
    """Tags never change: old journals decode by them."""
    tags = {kind.tag for kind in ev.EVENT_REGISTRY}
    assert tags >= set(_golden_payloads())
    for kind in ev.EVENT_REGISTRY:
        assert kind.type.__struct_config__.tag == kind.tag


def test_when_an_old_journal_payload_is_read_then_it_decodes_to_the_same_bytes() -> None:
    """Every payload written before the registry decodes to its tag's type and encodes
    back byte for byte (so an old journal's hash chain still verifies)."""
    decoder, encoder = new_decoder(), msgspec.msgpack.Encoder()
    golden = _golden_payloads()
    assert len(golden) == 26
    for tag, payload in golden.items():
        event = decoder.decode(payload)
        assert type(event).__struct_config__.tag == tag
        assert encoder.encode(event) == payload, tag


def test_when_an_event_type_is_added_then_its_first_payload_is_pinned() -> None:
    """Every registered tag has a reference payload (schema 3's, or one added since), and
    each added payload decodes to its tag's type and encodes back byte for byte: a field
    of a journaled event cannot change without a journal written with it failing here."""
    decoder, encoder = new_decoder(), msgspec.msgpack.Encoder()
    old, added = _golden_payloads(), _golden_payloads(_ADDED)
    assert not set(old) & set(added)
    assert set(old) | set(added) == {kind.tag for kind in ev.EVENT_REGISTRY}
    for tag, payload in added.items():
        event = decoder.decode(payload)
        assert type(event).__struct_config__.tag == tag
        assert encoder.encode(event) == payload, tag


def test_when_an_order_event_then_the_execution_engine_journals_it() -> None:
    """Order events (and only they) are journaled by the execution engine; the rest by
    the bus or by the journal itself, each type by exactly one of them."""
    for kind in ev.EVENT_REGISTRY:
        by_execution = kind.journaled_by is ev.JournaledBy.EXECUTION
        assert by_execution == issubclass(kind.type, ev.OrderEvent), kind.tag
    groups = [ev.ORDER_EVENT_TYPES, ev.BUS_JOURNALED_EVENT_TYPES, ev.JOURNAL_OWN_EVENT_TYPES]
    assert sum(len(g) for g in groups) == len(ev.EVENT_TYPES)
    assert set().union(*groups) == set(ev.EVENT_TYPES)


def test_when_the_codec_decodes_then_it_takes_exactly_the_registered_types() -> None:
    """The journal's decodable union is the registry."""
    assert set(get_args(JournalEvent)) == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("event_type", ev.EVENT_TYPES, ids=lambda t: t.__name__)
def test_when_a_registered_event_is_journaled_then_it_round_trips(
    event_type: type[ev.Event],
) -> None:
    """Each registered type encodes to a chained record that decodes back equal."""
    event = _sample(event_type)
    row = RecordEncoder(0, GENESIS_HASH).encode(event)
    assert row[2] == event_type.__struct_config__.tag
    assert record_problem(row, 1, GENESIS_HASH, new_decoder()) is None
    assert new_decoder().decode(row[4]) == event


def test_when_a_node_has_a_journal_then_it_journals_each_bus_event_once(tmp_path: Path) -> None:
    """The kernel subscribes the journal to the bus-journaled events and to no order
    event (those the execution engine journals as it applies them)."""
    config = BacktestConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="unused.csv", instrument="XYZ.SIM")],
        progress=False,
    )
    journal = SqliteJournal(tmp_path / "journal.db")
    try:
        kernel = Kernel(
            config=config, base_dir=tmp_path, clock=SimClock(1), epoch=1, journal=journal
        )
        for event_type in ev.EVENT_TYPES:
            journaled = kernel.bus.subscribers(event_type).count(journal.append)
            expected = 1 if event_type in ev.BUS_JOURNALED_EVENT_TYPES else 0
            assert journaled == expected, event_type.__name__
        assert kernel.execution._journal == journal.append
    finally:
        journal.close()
