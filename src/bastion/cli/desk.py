"""``bastion init DIR``: scaffold a desk directory (configs, the example strategy and
synthetic sample quotes) and create its vault with the machine keys the node and the
venue simulator use; a desk with a vault keeps its journals, FIX session stores and
the simulator's ledger encrypted at rest."""

from __future__ import annotations

import argparse
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Final

from bastion.cli.common import EXIT_OK, Commands, Formatter, wall_clock, wrap
from bastion.config import InstrumentConfig, scaffold_dir
from bastion.data.config import SyntheticFeedConfig
from bastion.errors import BastionError, UsageError
from bastion.vault import keysource
from bastion.vault.config import DEFAULT_VAULT_NAME
from bastion.vault.files import make_private_dir
from bastion.vault.vault import Vault

SCAFFOLD_FILES: Final = (
    "paper.toml",
    "backtest.toml",
    "strategies/ema_cross.py",
    "venue-sim.toml",
    "paper-fix.toml",
)
SAMPLE_QUOTES_PATH: Final = "data/quotes.csv"
SAMPLE_QUOTES_N: Final = 20_000
SAMPLE_START_NS: Final = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
SAMPLE_INTERVAL_MS: Final = 100
MACHINE_KEYS: Final = (
    "journal/encryption",
    "journal/chain",
    "fix/store",
    "venue/ledger",
    "venue/store",
)
"""Random keys the desk's vault holds from the start, for the node's and the venue
simulator's own use (32 bytes each, as hex)."""
ENCRYPTED_AT_REST: Final = {
    "paper.toml": (
        'encryption_key = "secret:journal/encryption"',
        'chain_key = "secret:journal/chain"',
    ),
    "paper-fix.toml": (
        'encryption_key = "secret:journal/encryption"',
        'chain_key = "secret:journal/chain"',
        'store_encryption_key = "secret:fix/store"',
    ),
    "venue-sim.toml": (
        'ledger_encryption_key = "secret:venue/ledger"',
        'store_encryption_key = "secret:venue/store"',
    ),
}
"""The lines a desk with a vault turns on (they are commented out in the packaged
scaffold, which is also ``bastion run``'s embedded defaults and needs no vault);
``backtest.toml`` stays plaintext."""

_INIT_EPILOG: Final = """\
creates:
  DIR/paper.toml               config for `bastion run`
  DIR/backtest.toml            config for `bastion backtest`
  DIR/strategies/ema_cross.py  the example strategy (EMA crossover)
  DIR/data/quotes.csv          20,000 synthetic quotes (ts_ns,bid,ask,bid_size,ask_size)
  DIR/venue-sim.toml           config for `bastion venue sim` (a FIX venue simulator)
  DIR/paper-fix.toml           a paper node trading with it over FIX 4.4
  DIR/vault.bastion            the desk's vault (secrets the configs refer to), with
                               random keys journal/encryption, journal/chain,
                               fix/store, venue/ledger and venue/store

With a vault, the paper nodes' journals (encrypted, keyed hash chain), the FIX
session store and the simulator's ledger and stores are encrypted at rest with those
keys; read a journal with `bastion journal verify --config DIR/paper.toml`.
--no-vault writes plaintext configs (their comments say how to turn encryption on).

The vault passphrase comes from the file BASTION_VAULT_KEY_FILE names (mode 0600),
systemd's credential bastion-vault, or a prompt (asked twice).

examples:
  bastion init mydesk
  bastion init --force mydesk   # rewrite the scaffold files, keep everything else
  bastion init --tls mydesk     # FIX over mutual TLS: DIR/tls/ (a local CA, venue and
                                # node certificates) and FIX configs that use them
  bastion init --no-vault mydesk  # no vault (add one later: bastion secrets init)
"""


def add_desk_commands(commands: Commands, formatter: Formatter) -> None:
    init = commands.add_parser(
        "init",
        help="create a desk directory with configs, an example strategy and sample data",
        description=wrap(
            "bastion init: create a desk directory with paper and backtest configs, "
            "the example strategy and 20,000 synthetic sample quotes."
        ),
        epilog=_INIT_EPILOG,
        formatter_class=formatter,
    )
    init.add_argument("dir", metavar="DIR", help="directory to create (must be new or empty)")
    init.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty DIR, overwriting the scaffold files (an existing "
        "vault is kept, and given the machine keys it lacks)",
    )
    init.add_argument(
        "--no-vault",
        action="store_true",
        help="create no vault (a desk whose configs refer to no secret)",
    )
    init.add_argument(
        "--tls",
        action="store_true",
        help="also write DIR/tls/ (local CA, venue and node certificates) and make the "
        "FIX configs use mutual TLS",
    )
    init.set_defaults(handler=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    """Scaffold a desk directory: configs, the example strategy and sample data."""
    target = Path(args.dir)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not args.force:
        raise UsageError(
            f"{target} exists and is not empty; choose a new directory or pass --force "
            "to overwrite the scaffold files in it"
        )
    source = scaffold_dir()
    missing = [rel for rel in SCAFFOLD_FILES if not (source / rel).is_file()]
    if missing:
        raise BastionError(f"the installed bastion package lacks scaffold files: {missing}")
    vault_path = target / DEFAULT_VAULT_NAME
    passphrase = None
    if not args.no_vault:  # asked before anything is written: a refusal leaves nothing
        if keysource.unattended_passphrase() is None and not keysource.can_prompt():
            raise UsageError(
                f"{keysource.no_passphrase_message()}; give one of them, or pass "
                "--no-vault to create the desk without a vault"
            )
        passphrase = keysource.passphrase(
            purpose=f"{'unlock' if vault_path.exists() else 'create'} {vault_path}",
            confirm=not vault_path.exists(),
        )
    kept = None
    if passphrase is not None and vault_path.exists():
        # before a scaffold file is rewritten: a wrong passphrase changes nothing
        kept = Vault.open(vault_path, passphrase, clock=wall_clock())
    created = not target.exists()
    try:
        if created:
            make_private_dir(target)  # the journal and the FIX stores go here too
        for rel in SCAFFOLD_FILES:
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, dest)
        n = write_sample_quotes(target / SAMPLE_QUOTES_PATH)
        if getattr(args, "tls", False):
            use_tls(target)
        if passphrase is not None:
            made = desk_vault(vault_path, passphrase, kept)
            encrypt_at_rest(target)
    except BaseException as e:
        if created:  # leave nothing half-made behind, so a retry is not refused
            shutil.rmtree(target, ignore_errors=True)
        if isinstance(e, OSError):
            raise BastionError(f"cannot write into {target}: {e}") from e
        raise

    shown = str(target)
    print(f"created {shown}/")
    print("  paper.toml               paper trading node config (bastion run)")
    print("  backtest.toml            backtest config (bastion backtest)")
    print("  strategies/ema_cross.py  example strategy: EMA(10)/EMA(50) crossover")
    print("  venue-sim.toml           FIX venue simulator config (bastion venue sim)")
    print("  paper-fix.toml           paper node trading with it over FIX 4.4")
    print(f"  {SAMPLE_QUOTES_PATH:<24} {n:,} synthetic quotes for XYZ.SIM, 100 ms apart")
    if getattr(args, "tls", False):
        print("  tls/                     local CA, venue and node certificates (FIX over TLS)")
    if passphrase is not None:
        print(f"  {DEFAULT_VAULT_NAME:<24} the desk's vault ({made}): {', '.join(MACHINE_KEYS)}")
    print()
    print("next:")
    print(f"  bastion backtest {shown}/backtest.toml   # replay the sample data, print a report")
    print(f"  bastion run {shown}/paper.toml           # paper trade live; Ctrl-C stops cleanly")
    print(f"  bastion journal verify --config {shown}/paper.toml   # check the node's journal")
    if passphrase is not None:
        print(
            f"  bastion secrets set fix/trader --vault {shown}/{DEFAULT_VAULT_NAME}"
            "   # the FIX password paper-fix.toml and venue-sim.toml refer to"
        )
    return EXIT_OK


def desk_vault(path: Path, passphrase: str, kept: Vault | None = None) -> str:
    """Create the desk's vault (or use ``kept``, the one there, already opened) and give
    it the machine keys it lacks; says which it did."""
    if kept is not None:
        vault, made = kept, "kept"
    else:
        vault, made = Vault.create(path, passphrase, clock=wall_clock()), "created"
    for name in MACHINE_KEYS:
        vault.ensure_key(name)
    return made


def encrypt_at_rest(target: Path) -> None:
    """Turn on the commented ``ENCRYPTED_AT_REST`` lines of the desk's configs."""
    for name, lines in ENCRYPTED_AT_REST.items():
        path = target / name
        text = path.read_text(encoding="utf-8")
        for line in lines:
            commented = f"\n# {line}\n"
            if commented not in text:
                raise BastionError(f"the scaffold {name} has no line '# {line}' to turn on")
            text = text.replace(commented, f"\n{line}\n", 1)
        path.write_text(text, encoding="utf-8")


def write_sample_quotes(path: Path, n: int = SAMPLE_QUOTES_N) -> int:
    """Write ``n`` synthetic quotes for XYZ.SIM (the scaffold's instrument) as CSV."""
    from bastion.data.synthetic import SyntheticQuoteFeed

    instrument = InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01")).to_instrument()
    feed_config = SyntheticFeedConfig(
        instrument=instrument.id,
        seed=42,
        start_price=Decimal(100),
        interval_ms=SAMPLE_INTERVAL_MS,
    )
    feed = SyntheticQuoteFeed(instrument, feed_config, SAMPLE_START_NS)
    step_ns = SAMPLE_INTERVAL_MS * 1_000_000
    price, size = instrument.price, instrument.size
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("ts_ns,bid,ask,bid_size,ask_size\n")
        for i in range(n):
            q = feed.next_quote(SAMPLE_START_NS + i * step_ns)
            f.write(
                f"{q.ts_ns},{price(q.bid)},{price(q.ask)},{size(q.bid_size)},{size(q.ask_size)}\n"
            )
    return n


TLS_DIR: Final = "tls"


def use_tls(target: Path) -> None:
    """Write ``target/tls`` and switch the scaffold's FIX configs to mutual TLS: the
    venue serves its certificate and requires the node's (CN ``node``) for the account."""
    from bastion.certs import create_certs

    create_certs(target / TLS_DIR)
    sim = target / "venue-sim.toml"
    text = sim.read_text(encoding="utf-8")
    account = 'comp_id = "BASTION"\n'
    if account not in text:
        raise BastionError("the scaffold venue-sim.toml has no BASTION account to secure")
    text = text.replace(
        account,
        account + "# the client certificate this account must log on with (mutual TLS)\n"
        'client_cert_cn = "node"\nallowed_ips = ["127.0.0.1/32"]\n',
        1,
    )
    sim.write_text(
        text + "\n# FIX over TLS only, with client certificates (`bastion init --tls`).\n"
        "[tls]\n"
        f'cert_file = "{TLS_DIR}/venue.pem"\n'
        f'key_file = "{TLS_DIR}/venue.key"\n'
        f'client_ca_file = "{TLS_DIR}/ca.pem"\n',
        encoding="utf-8",
    )
    node = target / "paper-fix.toml"
    node.write_text(
        node.read_text(encoding="utf-8")
        + "\n# TLS to the venue of the [[venues]] table above (`bastion init --tls`).\n"
        "[venues.tls]\n"
        f'ca_file = "{TLS_DIR}/ca.pem"\n'
        f'client_cert = "{TLS_DIR}/node.pem"\n'
        f'client_key = "{TLS_DIR}/node.key"\n',
        encoding="utf-8",
    )
