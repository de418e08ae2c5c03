"""A venue simulator process and a node trading with it over FIX: their configs, the
processes (with the FIX password in their environment) and the venue's ledger read back."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from bastion.venue_server.ledger import OrderRow, VenueLedger
from kit.fix_desk import fix_process, node_fix_venue_toml, venue_sim_toml
from kit.net import listening
from kit.node_process import START_TIMEOUT_S, still_running
from kit.strategies import HOARDER
from kit.waiting import eventually

PASSWORD = "kill-fix-test-password"
ACCOUNT = "acct"
IID = "XYZ.SIM"
NODE_TOML = """
[node]
id = "killfix"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "{strategy}"
path = "strategies/{strategy}.py"
class = "{cls}"
[strategies.params]
instrument = "XYZ.SIM"
market_every = 10

[risk]
max_order_quantity = "1000"
max_order_notional = "1000000"
collar_pct = "5"
reference_max_age_ms = 2000

{fix_venue}

[journal]
path = "j/node.sqlite"
{journal_keys}"""

ENCRYPTED_JOURNAL = """encryption_key = "secret:journal/encryption"
chain_key = "secret:journal/chain"
"""
ENCRYPTED_VENUE = """ledger_encryption_key = "secret:venue/ledger"
store_encryption_key = "secret:venue/store"
"""


def write_desk(
    root: Path,
    *,
    venue_port: int,
    node_port: int | None = None,
    strategy: str = "hoarder",
    source: str = HOARDER,
    cls: str = "Hoarder",
    cod: str = "off",
    encrypted: bool = False,
) -> tuple[Path, Path, Path]:
    """The venue and node configs and the strategy file: (venue config, node config,
    journal). ``node_port`` (default: the venue's) lets the node go through a relay.
    ``encrypted``: the node's journal (keyed too) and FIX store, the venue's ledger and
    stores encrypted with the keys of ``kit.vaults.DESK_KEYS`` (the desk's vault, which
    the caller writes)."""
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    (root / "strategies" / f"{strategy}.py").write_text(source, encoding="utf-8")
    venue = root / "venue-sim.toml"
    venue.write_text(
        (ENCRYPTED_VENUE if encrypted else "") + venue_sim_toml(venue_port, seed=7),
        encoding="utf-8",
    )
    store_key = '\nstore_encryption_key = "secret:fix/store"' if encrypted else ""
    node = root / "paper-fix.toml"
    node.write_text(
        NODE_TOML.format(
            fix_venue=node_fix_venue_toml(
                node_port or venue_port,
                heartbeat_s=5,
                logon_timeout_ms=5000,
                extra=f'cancel_on_disconnect = "{cod}"{store_key}',
            ),
            strategy=strategy,
            cls=cls,
            journal_keys=ENCRYPTED_JOURNAL if encrypted else "",
        ),
        encoding="utf-8",
    )
    return venue, node, root / "j" / "node.sqlite"


@contextmanager
def process(
    *args: str | Path, cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``bastion ARGS`` with this module's FIX password (and ``env``); stderr to ``log``."""
    with fix_process(*args, cwd=cwd, log=log, password=PASSWORD, env=env) as proc:
        yield proc


def ledger_orders(root: Path, key: bytes | None = None) -> list[OrderRow]:
    """Every order of the account in the venue's ledger (encrypted with ``key``)."""
    with VenueLedger(root / "venue" / "ledger.sqlite", encryption_key=key) as ledger:
        return ledger.orders(ACCOUNT)


def ledger_open(root: Path, key: bytes | None = None) -> list[OrderRow]:
    """The account's open orders in the venue's ledger."""
    with VenueLedger(root / "venue" / "ledger.sqlite", encryption_key=key) as ledger:
        return ledger.open_orders(ACCOUNT)


def ledger_position(root: Path, key: bytes | None = None) -> Decimal:
    """The account's net position in ``IID`` at the venue (0 when it has none)."""
    with VenueLedger(root / "venue" / "ledger.sqlite", encryption_key=key) as ledger:
        position = ledger.position(ACCOUNT, IID)
    return Decimal(0) if position is None else position.net_qty


def started_venue(proc: subprocess.Popen[bytes], log: Path, port: int) -> None:
    """Wait until the venue process listens on ``port``; fail at once if it exited."""
    eventually(lambda: still_running(proc, log) and listening(port), START_TIMEOUT_S)
