"""``bastion console CONFIG`` and ``bastion console init DIR --config NODE_CONFIG``.

``console CONFIG`` serves the web console (HTTPS only) as its config says
(docs/configuration.md, "console.toml"). ``console init`` writes, into ``DIR`` (0700):
a ``console.toml`` watching the node of ``NODE_CONFIG``, a self-signed certificate
and key (``tls/console.pem``, ``tls/console.key``), and ``users.key`` (0600): the
operator store's key exported from the node's vault, which is unlocked as ``bastion
secrets`` does (key file, systemd credential or prompt; never the command line).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any, Final

from bastion.certs import DEFAULT_HOSTS, create_server_cert
from bastion.cli.common import (
    EXIT_OK,
    Commands,
    Formatter,
    configure_command_logging,
    wall_clock,
    wrap,
)
from bastion.cli.users import _users_config
from bastion.cli.vault import vault_path
from bastion.config import resolve_path
from bastion.errors import ConfigError, UsageError
from bastion.node.control import socket_path
from bastion.security.config import USERS_KEY
from bastion.security.store import UserStore
from bastion.vault.config import unlock
from bastion.vault.files import make_private_dir, write_private

_EPILOG: Final = """\
examples:
  bastion console init mydesk/console --config mydesk/paper.toml   # config, cert, key file
  bastion console mydesk/console/console.toml    # serve https://127.0.0.1:8443/

docs: docs/console.md, docs/configuration.md ("console.toml"), docs/security.md ("Console").
"""


def add_console_commands(commands: Commands, formatter: Formatter, logging: Any) -> None:
    parser = commands.add_parser(
        "console",
        help="the web console (HTTPS): serve it, or make its config with 'init'",
        description=wrap(
            "bastion console CONFIG: serve the web console over HTTPS as CONFIG says. "
            "bastion console init DIR --config NODE_CONFIG: write DIR/console.toml, a "
            "self-signed certificate and the operator store's key file for the node of "
            "NODE_CONFIG."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
        parents=[logging],
    )
    parser.add_argument("target", metavar="CONFIG|init", help="console.toml, or 'init'")
    parser.add_argument("directory", metavar="DIR", nargs="?", help="init: where to write")
    parser.add_argument("--config", metavar="NODE_CONFIG", help="init: the node's config")
    parser.add_argument(
        "--host",
        action="append",
        metavar="HOST",
        help="init: a name or address the certificate is valid for (repeat; default "
        "127.0.0.1, ::1, localhost)",
    )
    parser.set_defaults(handler=cmd_console, vault=None)


def cmd_console(args: argparse.Namespace) -> int:
    if args.target == "init":
        return cmd_init(args)
    if args.directory is not None or args.config is not None or args.host:
        raise UsageError("bastion console CONFIG takes no other argument (init does)")
    from bastion.console.server import serve  # the web stack loads only to serve

    configure_command_logging(args, "info", "console")
    serve(Path(args.target))
    return EXIT_OK


def _node_section(path: Path) -> tuple[str, Path]:
    """The node's id and its journal's path, from its config."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    node = document.get("node", {})
    journal = document.get("journal", {})
    node_id = node.get("id", "node-1") if isinstance(node, dict) else "node-1"
    journal_path = journal.get("path", "journal.sqlite") if isinstance(journal, dict) else ""
    if not isinstance(node_id, str) or not isinstance(journal_path, str) or not journal_path:
        raise ConfigError(f"{path}: keys 'node.id' and 'journal.path' must be strings")
    return node_id, resolve_path(path.resolve().parent, journal_path)


def cmd_init(args: argparse.Namespace) -> int:
    if args.directory is None or args.config is None:
        raise UsageError("usage: bastion console init DIR --config NODE_CONFIG")
    target = Path(args.directory)
    console_toml = target / "console.toml"
    if console_toml.exists():
        raise UsageError(f"{console_toml} already exists; it is never overwritten")
    node_config = Path(args.config)
    node_id, journal = _node_section(node_config)
    clock = wall_clock()
    vault = unlock(vault_path(args), clock=clock)
    store = UserStore.for_vault(vault, clock=clock, config=_users_config(args))
    key_hex = vault.get(USERS_KEY).reveal()
    make_private_dir(target)
    tls = target / "tls"
    make_private_dir(tls)
    create_server_cert(tls / "console.pem", tls / "console.key", hosts=args.host or DEFAULT_HOSTS)
    write_private(target / "users.key", (key_hex + "\n").encode("ascii"))
    console_toml.write_text(
        _CONSOLE_TOML.format(
            users=store.path.resolve(),
            node=node_id,
            socket=socket_path(journal.resolve()),
        ),
        encoding="utf-8",
    )
    print(f"wrote {target}/")
    print("  console.toml          the console's config (loopback only: edit 'allow')")
    print(
        "  tls/console.pem, .key a self-signed certificate for "
        + ", ".join(args.host or DEFAULT_HOSTS)
    )
    print("  users.key             the operator store's key (0600; keep it so)")
    print(f"next: add the console's uid to [access] consoles in {node_config}, then")
    print(f"  bastion console {console_toml}")
    return EXIT_OK


_CONSOLE_TOML: Final = """\
# bastion console (docs/configuration.md, "console.toml"); paths relative to this file
users = "{users}"
users_key = "users.key"
# who may connect at all (CIDR); everyone else gets 403
allow = ["127.0.0.1/32", "::1/128"]
session_ttl_s = 28800
idle_timeout_s = 900
step_up_s = 120

[listen]
host = "127.0.0.1"
port = 8443

[tls]
cert = "tls/console.pem"
key = "tls/console.key"

[login]
max_per_source_per_min = 10
source_lockout_s = 900

[[nodes]]
name = "{node}"
socket = "{socket}"
"""
