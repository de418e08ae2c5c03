"""``bastion ha``: the high-availability group of a node. ``status`` prints who leads,
the lease's epoch and each member's role and lag; ``switchover`` asks the leader to hand
the lead to a standby (admin; journaled with who and why)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final

import msgspec

from bastion.cli.common import EXIT_OK, Commands, Formatter, usage, wall_clock, wrap
from bastion.cli.control import control_socket, send
from bastion.config import PaperConfig, load_config
from bastion.errors import UsageError
from bastion.ha import standby
from bastion.ha.lease import Lease
from bastion.vault.config import load_secrets

_HA_EPILOG: Final = """\
status reads the leader lease (who holds it, at which fencing epoch) and asks each
member on its control socket for its own view (ha_status): the leader its epoch, a
standby how far it has applied the journal and its lag in events and seconds. A
member that does not answer is shown as unreachable (status still exits 0). The
node's own socket is asked; --member NAME=SOCKET adds another member's. Every member's
row in the group's members table is read too, so members on other hosts appear with
their role, lag, host and heartbeat age (lost once it is older than
ha.standby_lost_s).

switchover asks the leader (the node of CONFIG) to hand over: it releases the lease
(for --to MEMBER only, if given) and the standby that takes it promotes its state and
starts trading. Admin only; journaled with the operator and --why.

examples:
  bastion ha status mydesk/paper.toml
  bastion ha status mydesk/paper.toml --json
  bastion ha switchover mydesk/paper.toml --to node-b --why "kernel patch on node-a"
"""


def open_group(config: str) -> standby.Group | None:
    """The group of the node config at path ``config``: its lease and members table,
    read-only (the database and password from the config and its vault); None when the
    node has no ``[ha]``."""
    path = Path(config)
    node = load_config(path, PaperConfig)
    if node.ha is None:
        return None
    secrets = load_secrets(
        node.secret_refs(),
        vault=node.vault,
        base_dir=path.resolve().parent,
        scope="live" if node.node.mode == "live" else "paper",
        clock=wall_clock(),
    )
    url, password = node.ha_database(secrets)
    lease = Lease(node.ha, url=url, password=password)
    return standby.Group(
        member=node.ha.member,
        lease=standby.ReadOnlyLease(lease),
        members=standby.MembersTable(lease, url=url, password=password),
    )


def _ask(path: Path) -> dict[str, Any]:
    from bastion.node.control import request

    return request(path, {"cmd": "ha_status"}, timeout_s=5.0)


def _members(args: argparse.Namespace, group: standby.Group | None) -> dict[str, Path]:
    own = "this node" if group is None else group.member
    sockets = {own: control_socket(args.config)}
    for item in args.member:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--member {item!r}: expected NAME=SOCKET")
        sockets[name] = Path(path)
    return sockets


def cmd_status(args: argparse.Namespace) -> int:
    group = open_group(args.config)
    status = standby.gather_status(
        None if group is None else group.lease,
        _members(args, group),
        _ask,
        members=None if group is None else group.members,
    )
    if args.json:
        print(msgspec.json.encode(status).decode(), flush=True)
    else:
        print(standby.render(status), flush=True)
    return EXIT_OK


def cmd_switchover(args: argparse.Namespace) -> int:
    req: dict[str, object] = {"cmd": "ha_switchover", "why": args.why}
    if args.to is not None:
        req["to"] = args.to
    return send(args.config, req)


def add_ha_commands(commands: Commands, formatter: Formatter) -> None:
    ha = commands.add_parser(
        "ha",
        help="the node's high-availability group: status, switchover",
        description=wrap("bastion ha: who leads, the standbys' lag, a planned switchover."),
        epilog=_HA_EPILOG,
        formatter_class=formatter,
    )
    ha.set_defaults(handler=lambda _args: usage(ha))
    sub = ha.add_subparsers(dest="ha_command", metavar="COMMAND", title="commands")
    status = sub.add_parser(
        "status", help="who leads, the epoch, each member's role and lag", formatter_class=formatter
    )
    status.add_argument("config", metavar="CONFIG", help="the node's config file (TOML)")
    status.add_argument(
        "--member",
        metavar="NAME=SOCKET",
        action="append",
        default=[],
        help="another member's control socket to ask (repeatable)",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)
    switch = sub.add_parser(
        "switchover", help="hand the lead to a standby (admin)", formatter_class=formatter
    )
    switch.add_argument("config", metavar="CONFIG", help="the leader's config file (TOML)")
    switch.add_argument("--to", metavar="MEMBER", default=None, help="the standby to lead")
    switch.add_argument("--why", metavar="TEXT", required=True, help="reason, journaled")
    switch.set_defaults(handler=cmd_switchover)
