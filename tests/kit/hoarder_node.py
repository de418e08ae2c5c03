"""The paper node the journal, backup and kill switch tests run: the Hoarder strategy
(``strategies/hoarder.py`` beside the config) on XYZ.SIM against the simulated venue,
with a synthetic feed; each test adds its own ``[journal]`` and the rest."""

from __future__ import annotations


def hoarder_node_toml(node_id: str, rest: str) -> str:
    """The node's TOML: ``[node] id = node_id``, the common tables, then ``rest``."""
    return f'''
[node]
id = "{node_id}"

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "hoarder"
path = "strategies/hoarder.py"
class = "Hoarder"
[strategies.params]
instrument = "XYZ.SIM"
market_every = 10

[risk]
max_order_quantity = "1000"
max_order_notional = "1000000"
collar_pct = "5"
reference_max_age_ms = 2000

[venue]
latency_ms = 5

[feed]
instrument = "XYZ.SIM"
interval_ms = 20
{rest}'''
