"""Message throttle (sliding one-second window on the injected clock) and duplicate orders."""

from __future__ import annotations

from bastion.risk.config import RiskConfig, StrategyRiskConfig, ThrottleConfig
from bastion.risk.throttle import DuplicateFilter, SlidingWindow
from kit.risk_node import BUY, COARSE, SELL, T0, Node, assert_denied, assert_sent

SECOND = 1_000_000_000
MS = 1_000_000


def test_when_window_slides_then_oldest_message_leaves_after_one_second() -> None:
    """A message at t counts while now - t < 1 s, and leaves the window at exactly t + 1 s."""
    window = SlidingWindow(2)
    window.add(T0)
    window.add(T0 + 10)
    assert window.is_full(T0 + SECOND - 1)
    assert not window.is_full(T0 + SECOND)
    window.add(T0 + SECOND)
    assert window.is_full(T0 + SECOND + 9)
    assert not window.is_full(T0 + SECOND + 10)


def test_when_new_orders_at_max_per_second_then_allowed_and_one_more_denied() -> None:
    """max_new_orders_per_s=3: three orders pass, the fourth within the second does not."""
    node = Node(max_new_orders_per_s=3)
    for n in range(3):
        node.clock.set_time(T0 + n)
        assert_sent(node, node.submit(BUY, 1, 10_000 + n))
    node.clock.set_time(T0 + SECOND - 1)
    assert_denied(node, node.submit(BUY, 1, 10_010), "THROTTLE")
    assert "max_new_orders_per_s 3" in node.denied[-1].message
    node.clock.set_time(T0 + SECOND)
    assert_sent(node, node.submit(BUY, 1, 10_011))
    assert_denied(node, node.submit(BUY, 1, 10_012), "THROTTLE")


def test_when_throttle_is_per_strategy_then_other_strategies_unaffected() -> None:
    """The [risk] default applies to each strategy separately; an override replaces it."""
    node = Node(
        RiskConfig(
            max_new_orders_per_s=1,
            strategies={"s3": StrategyRiskConfig(max_new_orders_per_s=2)},
        )
    )
    assert_sent(node, node.submit(BUY, 1, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_001), "THROTTLE")
    assert_sent(node, node.submit(BUY, 1, 10_000, strategy="s2"))
    assert_sent(node, node.submit(BUY, 1, 10_000, strategy="s3"))
    assert_sent(node, node.submit(BUY, 1, 10_001, strategy="s3"))
    assert_denied(node, node.submit(BUY, 1, 10_002, strategy="s3"), "THROTTLE")


def test_when_venue_throttle_then_all_strategies_share_it() -> None:
    """[risk.venues.SIM] max_new_orders_per_s=2 counts every strategy's orders to SIM."""
    node = Node(RiskConfig(venues={"SIM": ThrottleConfig(max_new_orders_per_s=2)}))
    assert_sent(node, node.submit(BUY, 1, 10_000, strategy="a"))
    assert_sent(node, node.submit(BUY, 1, 10_000, strategy="b"))
    assert_denied(node, node.submit(BUY, 1, 10_000, strategy="c"), "THROTTLE")
    assert "venue SIM" in node.denied[-1].message


def test_when_amends_at_max_per_second_then_allowed_and_one_more_denied() -> None:
    """max_amends_per_s=2: two modifies pass, the third is a CommandDenied THROTTLE."""
    node = Node(max_amends_per_s=2)
    order = node.submit(BUY, 5, 10_000)
    assert node.gate.modify_order(order, 5, 10_001) is True
    assert node.gate.modify_order(order, 5, 10_002) is True
    assert node.gate.modify_order(order, 5, 10_003) is False
    assert node.command_denied[-1].reason == "THROTTLE"
    node.clock.set_time(T0 + SECOND)
    assert node.gate.modify_order(order, 5, 10_003) is True


def test_when_messages_at_max_then_cancels_count_but_are_never_denied() -> None:
    """max_messages_per_s=3: two orders and a cancel fill it; orders are denied, cancels not."""
    node = Node(max_messages_per_s=3)
    first = node.submit(BUY, 1, 10_000)
    second = node.submit(BUY, 1, 10_001)
    assert node.gate.cancel_order(first) is True
    assert_denied(node, node.submit(BUY, 1, 10_002), "THROTTLE")
    assert "max_messages_per_s 3" in node.denied[-1].message
    assert node.gate.cancel_order(second) is True
    assert node.venue.canceled == [first.client_order_id, second.client_order_id]


def test_when_order_denied_then_it_does_not_use_the_throttle() -> None:
    """Only messages that went to the venue count toward the rate."""
    node = Node(max_new_orders_per_s=1)
    assert_denied(node, node.submit(BUY, 10, 10_002, instrument=COARSE), "INVALID_PRICE")
    assert_sent(node, node.submit(BUY, 1, 10_000))


def test_when_duplicate_window_then_filter_forgets_after_it() -> None:
    """The filter remembers a key for exactly window_ns."""
    seen = DuplicateFilter(100)
    seen.add("k", T0)
    assert seen.seen_at("k", T0 + 99) == T0
    assert seen.seen_at("k", T0 + 100) is None


def test_when_identical_order_within_window_then_duplicate_and_after_it_allowed() -> None:
    """duplicate_window_ms=100: the same order 99.999999 ms later is denied, at 100 ms allowed."""
    node = Node(duplicate_window_ms=100)
    assert_sent(node, node.submit(BUY, 5, 10_000))
    node.clock.set_time(T0 + 100 * MS - 1)
    assert_denied(node, node.submit(BUY, 5, 10_000), "DUPLICATE_ORDER")
    assert "duplicate_window_ms 100" in node.denied[-1].message
    node.clock.set_time(T0 + 100 * MS)
    assert_sent(node, node.submit(BUY, 5, 10_000))


def test_when_orders_differ_in_any_field_then_not_duplicates() -> None:
    """Another price, size, side, type or strategy makes a different order."""
    node = Node(duplicate_window_ms=100)
    node.quote(10_000, 10_000)
    assert_sent(node, node.submit(BUY, 5, 10_000))
    assert_sent(node, node.submit(BUY, 5, 10_001))
    assert_sent(node, node.submit(BUY, 6, 10_000))
    assert_sent(node, node.submit(SELL, 5, 10_000))
    assert_sent(node, node.submit(BUY, 5))
    assert_sent(node, node.submit(BUY, 5, 10_000, strategy="s2"))
    assert_denied(node, node.submit(BUY, 5), "DUPLICATE_ORDER")
