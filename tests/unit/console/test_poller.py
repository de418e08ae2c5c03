"""The poller's equity series and the live-update hub: bounded memory, latest state."""

from __future__ import annotations

import asyncio

import pytest

from bastion.console.poller import EquitySeries, Hub, NodeState, Poller, TooManyClients
from kit.console import FakeConsoleNode, sample_view


def test_when_many_points_then_series_stays_bounded_and_spans_history() -> None:
    """A day of views at 500 ms keeps at most max_points, first and recent kept."""
    series = EquitySeries(100)
    for n in range(172_800):
        series.add(n * 500, str(n))
    points = series.points()
    assert len(points) <= 100
    assert points[0]["ts_ms"] == 0
    assert points[-1]["ts_ms"] >= 172_800 * 500 - 2 * (172_800 * 500 // 100)
    assert [p["ts_ms"] for p in points] == sorted({p["ts_ms"] for p in points})


def test_when_same_view_twice_then_one_point() -> None:
    """An unchanged view (same ts_ms) adds no point."""
    series = EquitySeries(10)
    series.add(1000, "1")
    series.add(1000, "2")
    assert series.points() == [{"ts_ms": 1000, "equity": "1"}]


def test_when_client_slow_then_it_holds_only_latest_state_per_node() -> None:
    """A subscriber that does not read holds one state per node, the newest."""
    hub = Hub(max_clients=2)
    slow = hub.subscribe()
    for n in range(1000):
        hub.publish(NodeState("a", reachable=True, error=None, view={"n": n}))
        hub.publish(NodeState("b", reachable=False, error=f"e{n}"))
    taken = slow.take()
    assert [name for name, _ in taken] == ["a", "b"]
    assert b'"n":999' in taken[0][1] and b"e999" in taken[1][1]
    assert slow.take() == []


def test_when_max_clients_then_next_refused_until_one_leaves() -> None:
    """At most max_clients live-update clients."""
    hub = Hub(max_clients=2)
    first = hub.subscribe()
    hub.subscribe()
    with pytest.raises(TooManyClients):
        hub.subscribe()
    hub.unsubscribe(first)
    hub.subscribe()


def test_when_one_operator_opens_too_many_streams_then_refused_and_others_still_served() -> None:
    """One signed-in account cannot take every slot: at most max_per_operator streams
    each; a stream that ends twice (its end and its background task) frees one slot."""
    hub = Hub(max_clients=5, max_per_operator=2)
    first = hub.subscribe("vic")
    hub.subscribe("vic")
    with pytest.raises(TooManyClients, match="per operator"):
        hub.subscribe("vic")
    hub.subscribe("rita")
    hub.subscribe("rita")
    hub.unsubscribe(first)
    hub.unsubscribe(first)
    hub.subscribe("vic")
    with pytest.raises(TooManyClients, match="per operator"):
        hub.subscribe("vic")
    assert len(hub) == 4


def test_when_node_polled_then_state_cached_published_and_equity_recorded() -> None:
    """One view call updates the cache, tells the hub once, records equity."""
    node = FakeConsoleNode().start()
    try:
        hub = Hub(max_clients=5)
        subscriber = hub.subscribe()
        poller = Poller({node.name: node.client()}, interval_s=0.5, equity_points=10, hub=hub)

        async def twice() -> None:
            await poller.poll_once(node.name)
            await poller.poll_once(node.name)

        asyncio.run(twice())
        state = poller.states[node.name]
        assert state.reachable and state.view == sample_view()
        assert len(subscriber.take()) == 1  # the second view was the same: no change sent
        assert poller.equity[node.name].points()[0]["equity"] == "12.50"
        assert node.received("view") == [{"cmd": "view"}] * 2
    finally:
        node.stop()


def test_when_node_down_then_unreachable_with_error() -> None:
    """A node not listening is shown unreachable, with why."""
    node = FakeConsoleNode()
    node.journal.write_bytes(b"")
    poller = Poller({node.name: node.client()}, interval_s=0.5, equity_points=10, hub=Hub(1))
    state = asyncio.run(poller.poll_once(node.name))
    assert not state.reachable and state.error is not None and "not listening" in state.error


def test_when_many_clients_then_one_view_call_per_poll() -> None:
    """Fifty live-update clients cost the node one view per poll, not fifty."""
    node = FakeConsoleNode().start()
    try:
        hub = Hub(max_clients=50)
        clients = [hub.subscribe() for _ in range(50)]
        poller = Poller({node.name: node.client()}, interval_s=0.5, equity_points=10, hub=hub)
        asyncio.run(poller.poll_once(node.name))
        assert len(node.received("view")) == 1
        assert all(len(c.take()) == 1 for c in clients)
    finally:
        node.stop()
