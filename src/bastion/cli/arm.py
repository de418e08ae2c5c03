"""``bastion arm CONFIG --why TEXT``: let a live node start once (``bastion.live.arming``).

The live vault's passphrase is asked on the terminal, or read from stdin with
``--passphrase-stdin``; never from ``BASTION_VAULT_KEY_FILE`` or the systemd
credential, which the node reads unattended: arming with them would be automatic, and
arming is there to prove that a person who knows the passphrase asked for this start.
The admin then steps up with a fresh TOTP code (the terminal, or the second line of
stdin), checked before anything is written.

The person must be an admin of the desk's operators (``[access]``: the local account
running it maps to one, ``bastion.live.arm_request.invoking_uid``); with four-eyes on
for ``arm_live`` (a live node's default), a first admin's ``bastion arm`` writes a
request and a second admin's ``bastion arm CONFIG --approve ID --why TEXT`` arms.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import structlog

from bastion.cli.common import EXIT_OK, Commands, Formatter, positive_seconds, wall_clock, wrap
from bastion.config import PaperConfig, load_config, resolve_path
from bastion.errors import UsageError
from bastion.journal.factory import journal_locator
from bastion.journal.keys import journal_keys
from bastion.live import arm_request
from bastion.live.arming import (
    ARM_KEY_NAME,
    ArmClaims,
    mac_key,
    new_claims,
    token_path,
    write_token,
)
from bastion.live.preflight import check_live_access
from bastion.live.separation import check_journal_mode
from bastion.manifest.collect import sha256_file
from bastion.node.identity import account_name
from bastion.security.config import FourEyes
from bastion.security.store import UserStore
from bastion.vault import keysource, redact
from bastion.vault.files import make_private_dir
from bastion.vault.vault import Vault, require_scope

log = structlog.get_logger("bastion.cli")

_EPILOG: Final = """\
The arming is written beside the journal (<journal>.armed, mode 0600) and is good
for one start of this config, by this node id, until it expires (node.arm_valid_s,
900 s by default; --for-s may shorten it). The node journals who armed it and why
(LiveArmed) and deletes it; a restart needs a new arming.

Only an admin of the desk's operators ([access]) arms: the local account running
the command must map to one (through sudo: the account that ran sudo). With
four-eyes on ([access.four_eyes] arm_live_s, 900 s on a live node unless set), the
first admin's command writes a request (<journal>.arm-request) and prints its id;
a second, different admin approves it within that window with --approve ID, and
only then is the node armed (who: "alice, approved by bob").

Each admin, asking or approving, steps up with their current TOTP code once they
are identified: asked on the terminal after the passphrase, or with
--passphrase-stdin read from the second line of stdin (the first is the
passphrase). A wrong, replayed or expired code, an admin locked out or without a
second factor: refused (exit 2), nothing written; each refusal counts towards the
operator's lockout ([access.users] max_failures).

examples:
  sudo -u bastion bastion arm live/node.toml --why "go live after the 2026-03 review"
  sudo -u bastion bastion arm live/node.toml --approve 3f9a0c1d2e4b --why "config reviewed"
  bastion arm live/node.toml --why "restart after venue outage" --for-s 120
  bastion run live/node.toml
"""


def add_arm_commands(commands: Commands, formatter: Formatter) -> None:
    arm = commands.add_parser(
        "arm",
        help="arm a live config for one start (asks for the live vault's passphrase)",
        description=wrap(
            "bastion arm: allow one start of a live node. Asks for the live vault's "
            "passphrase (on the terminal, or stdin with --passphrase-stdin; never from "
            "the key file the node uses), unlocks the vault to prove it, and writes an "
            "arming saying who asked and why, MACed with a key kept in the vault."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    arm.add_argument("config", metavar="CONFIG", help="the live node's config file (TOML)")
    arm.add_argument(
        "--why", required=True, metavar="TEXT", help="why this start (journaled with who armed)"
    )
    arm.add_argument(
        "--for-s",
        metavar="SECONDS",
        type=positive_seconds,
        help="valid for SECONDS if the node is not started (at most node.arm_valid_s)",
    )
    arm.add_argument(
        "--approve",
        metavar="ID",
        help="approve another admin's pending arming request ID (four-eyes): arms now",
    )
    arm.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help=(
            "read the passphrase from the first line of stdin, and the admin's TOTP code "
            "from the second, instead of the terminal"
        ),
    )
    arm.set_defaults(handler=cmd_arm)


def cmd_arm(args: argparse.Namespace) -> int:
    """Arm a live config for one start (or ask for it, or approve another admin's ask)."""
    config_path = Path(args.config)
    config = load_config(config_path, PaperConfig)
    if config.node.mode != "live":
        raise UsageError(
            f"{config_path}: node.mode is '{config.node.mode}': only a live config is armed "
            "(a paper node starts without arming)"
        )
    check_live_access(config)
    access = config.access
    assert access is not None
    valid_s: float = config.node.arm_valid_s
    if args.for_s is not None:
        if args.approve is not None:
            raise UsageError("--for-s goes with the request, not the approval")
        if args.for_s > valid_s:
            raise UsageError(
                f"--for-s {args.for_s:g}: longer than node.arm_valid_s ({valid_s:g} s) in "
                f"{config_path}"
            )
        valid_s = args.for_s
    base_dir = config_path.resolve().parent
    journal = resolve_path(base_dir, config.journal.path)
    vault_path = config.vault.resolve(base_dir)
    clock = wall_clock()
    new_claims(  # a missing or overlong reason is refused before the passphrase is asked
        node_id=config.node.id, config_sha256="", who="", why=args.why, armed_at_ns=0, valid_s=1
    )
    passphrase = _passphrase(args.passphrase_stdin, config_path)
    vault = Vault.open(vault_path, passphrase, clock=clock)
    require_scope(vault, "live", "vault.path")
    # said now, not only when the node starts (an encrypted journal is read with its
    # key; a PostgreSQL one with its password, both from the vault just opened)
    check_journal_mode(
        journal_locator(
            config.journal,
            base_dir=base_dir,
            keys=journal_keys(config.journal, vault),
            secrets=vault,
            name=config.journal_name(),
        ),
        "live",
    )
    users = UserStore.for_vault(vault, clock=clock, config=access.users)
    uid = current_uid()
    admin = arm_request.arming_admin(users.by_uid(uid), uid, account_name(uid))
    code = _totp_code(args.passphrase_stdin, admin.name, config_path)
    stepped_up = users.verify_totp(
        admin.name, code, now_ns=clock.timestamp_ns(), source=f"bastion arm (uid {uid})"
    )
    arm_request.require_step_up(stepped_up, uid)  # before anything is written
    vault.ensure_key(ARM_KEY_NAME)
    key = mac_key(vault.get(ARM_KEY_NAME))
    config_sha256 = sha256_file(config_path)
    now_ns = clock.timestamp_ns()
    if args.approve is not None:
        path = arm_request.request_path(journal)
        request = arm_request.approve(
            arm_request.read_request(path),
            key=key,
            request_id=args.approve,
            approver=admin.name,
            approver_uid=uid,
            node_id=config.node.id,
            config_sha256=config_sha256,
            now_ns=now_ns,
        )
        requester = users.find(request.requested_by)
        arm_request.arming_admin(requester, request.requested_uid, request.requested_by)
        claims = new_claims(
            node_id=config.node.id,
            config_sha256=config_sha256,
            who=f"{request.requested_by}, approved by {admin.name}",
            why=f"{request.why} (approved: {args.why.strip()})",
            armed_at_ns=now_ns,
            valid_s=request.valid_s,
        )
        _write_arming(config_path, journal, claims, key, valid_s=request.valid_s)
        path.unlink(missing_ok=True)  # approved once: a second approval finds nothing
        return EXIT_OK
    window_s = access.four_eyes.window_s(FourEyes.ARM_LIVE, "live")
    if window_s > 0:
        request = arm_request.new_request(
            node_id=config.node.id,
            config_sha256=config_sha256,
            requested_by=admin.name,
            requested_uid=uid,
            why=args.why.strip(),
            valid_s=valid_s,
            now_ns=now_ns,
            window_s=window_s,
        )
        path = arm_request.request_path(journal)
        replaced = path.exists()
        make_private_dir(path.parent)
        arm_request.write_request(path, request, key)
        log.info(
            "live_arming_requested",
            config=str(config_path),
            node=request.node_id,
            who=admin.name,
            uid=uid,
            why=request.why,
            request_id=request.request_id,
            expires_ns=request.expires_ns,
            replaced=replaced,
        )
        until = _utc(request.expires_ns)
        print(
            f"arming request {request.request_id} for {config_path} (node {request.node_id}) "
            f"by {admin.name}: not armed yet; a second admin approves it before {until} UTC "
            f"with: bastion arm {config_path} --approve {request.request_id} --why TEXT"
            f"{'; the earlier request is replaced' if replaced else ''}"
        )
        return EXIT_OK
    claims = new_claims(
        node_id=config.node.id,
        config_sha256=config_sha256,
        who=admin.name,
        why=args.why,
        armed_at_ns=now_ns,
        valid_s=valid_s,
    )
    _write_arming(config_path, journal, claims, key, valid_s=valid_s)
    return EXIT_OK


def current_uid() -> int:
    """The local account arming (``arm_request.invoking_uid``); a seam for tests, which
    cannot switch uid."""
    return arm_request.invoking_uid()


def _write_arming(
    config_path: Path, journal: Path, claims: ArmClaims, key: bytes, *, valid_s: float
) -> None:
    path = token_path(journal)
    replaced = path.exists()
    make_private_dir(path.parent)
    write_token(path, claims, key)
    log.info(
        "live_armed",
        config=str(config_path),
        node=claims.node_id,
        who=claims.who,
        why=claims.why,
        token_id=claims.token_id,
        expires_ns=claims.expires_ns,
        replaced=replaced,
    )
    print(
        f"armed {config_path} (node {claims.node_id}) by {claims.who} for one start until "
        f"{_utc(claims.expires_ns)} UTC ({valid_s:g} s)"
        f"{'; the earlier arming is replaced' if replaced else ''}"
    )


def _utc(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _passphrase(from_stdin: bool, config_path: Path) -> str:
    """The live vault's passphrase from a person: the terminal, or stdin when asked."""
    if from_stdin:
        text = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        if not text:
            raise UsageError("--passphrase-stdin: no passphrase on stdin; nothing armed")
        redact.register(text)
        return text
    if not keysource.can_prompt():
        raise UsageError(
            "bastion arm asks for the live vault's passphrase on a terminal, and this is "
            "none: give it on stdin with --passphrase-stdin (the node's key file is never "
            "used to arm)"
        )
    return keysource.ask(
        getpass.getpass, f"live vault passphrase to arm {config_path}: ", confirm=False
    )


def _totp_code(from_stdin: bool, name: str, config_path: Path) -> str:
    """The arming admin's current TOTP code: the second line of stdin with
    ``--passphrase-stdin``, else the terminal (where the passphrase was asked)."""
    if from_stdin:
        code = sys.stdin.readline().strip()
        if not code:
            raise UsageError(
                f"--passphrase-stdin: no TOTP code of {name} on the second line of stdin "
                "(after the passphrase); nothing armed"
            )
        return code
    code = getpass.getpass(f"TOTP code of {name} to arm {config_path}: ").strip()
    if not code:
        raise UsageError(f"no TOTP code of {name} given; nothing armed")
    return code
