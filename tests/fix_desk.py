"""The venue simulator config the FIX tests share: one account (CompID ``NODE``, user
``trader``, password from ``BASTION_FIX_PASSWORD``) on venue ``FIXSIM`` (CompID ``SIM``),
one instrument ``XYZ.SIM`` with a synthetic feed. Import with ``from fix_desk import
venue_sim_toml`` (tests/ is on the path, as for ``conftest``)."""

from __future__ import annotations


def venue_sim_toml(
    port: int,
    *,
    seed: int = 3,
    feed_interval_ms: int = 20,
    cancel_on_disconnect: bool = False,
) -> str:
    """``bastion venue sim`` TOML listening on ``port`` (0: any free port)."""
    return f"""
host = "127.0.0.1"
port = {port}
comp_id = "SIM"
ledger_path = "venue/ledger.sqlite"
session_store_path = "venue/sessions.sqlite"
cancel_on_disconnect = {"true" if cancel_on_disconnect else "false"}

[[accounts]]
name = "acct"
comp_id = "NODE"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"

[matching]
name = "FIXSIM"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[feeds]]
instrument = "XYZ.SIM"
seed = {seed}
size = "1000"
interval_ms = {feed_interval_ms}
"""
