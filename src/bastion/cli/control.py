"""The operator's commands to a running node, over its control socket (``bastion.node.control``):
``kill``, ``resume``, ``status``, ``enable`` / ``disable`` (a strategy), ``risk set | clear |
list | raise-ceiling`` (temporary limit overrides and their bounds), ``approvals`` and
``approve`` (four-eyes). The node knows who asks from the kernel (the socket's peer
uid), so nothing here says who; the client speaks only to a process running as the
journal's owner. Each prints the node's answer as JSON; exit 0 done (or, for a
four-eyes command, waiting for a second operator: the answer has ``pending``), 1 the
node refused or failed, 2 no node listening or bad arguments.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Final

import msgspec

from bastion.cli.common import usage
from bastion.config import PaperConfig, default_paper_config, load_config, resolve_path
from bastion.errors import CommandRefused, UsageError

_KILL_EPILOG: Final = """\
Talks to the node over its control socket, <journal path>.sock (for the embedded
defaults: ./bastion-journal.sqlite.sock). The node at once goes HALTED (journaled,
so it stays HALTED across restarts until `bastion resume`), cancels every open
order and, with --flatten, sends a market order that closes each position (the
price collar still checks it). With --venue NAME only that venue is halted: its
open orders are canceled and new orders for its instruments are rejected, while the
node trades on at its other venues; the halt is journaled with who and why, so the
venue stays halted across restarts until `bastion resume --venue NAME`. The node's
answer is printed as JSON.

exit codes: 0 done, 1 the node reported an error, 2 no node listening or bad
arguments.

examples:
  bastion kill mydesk/paper.toml --flatten --why "runaway strategy"
  bastion kill mydesk/paper.toml --venue FIXSIM --why "venue trading badly"
  bastion kill                     # the node running on the embedded defaults
"""

_RESUME_EPILOG: Final = """\
Sets the node's trading state back to ACTIVE (journaled, with who and why). With
four-eyes on (the default of a live node), resuming a HALTED node waits for a
second operator: the answer is {"ok": true, "pending": ID, ...} and another risk
officer runs `bastion approve CONFIG ID --why TEXT` within the window.

examples:
  bastion resume mydesk/paper.toml --why "fixed the strategy config"
  bastion resume mydesk/paper.toml --instrument XYZ.SIM --why "news checked"
  bastion resume mydesk/paper.toml --venue FIXSIM --why "venue back to normal"
"""

_STATUS_EPILOG: Final = """\
Prints, as JSON: the trading state and why, whether it was restored from the
journal, open orders, positions, denials per reason, disabled strategies, paused
instruments, how many risk overrides are active, each venue's state (connected,
halted, open orders, instruments) and the instruments that cannot trade now
(their venue disconnected or halted); "you": the operator the node takes you for
(from your local account) and your roles; "access": operators or owner only, the
four-eyes windows and how many approvals are pending.

example:
  bastion status mydesk/paper.toml
"""

_ENABLE_EPILOG: Final = """\
A strategy the risk gate disabled (too many fills in a window, its daily loss or
drawdown limit) stays disabled, across restarts, until an operator enables it.
Journaled with who and why.

example:
  bastion enable mydesk/paper.toml ema_cross --why "fills were a venue replay"
"""

_RISK_EPILOG: Final = """\
A limit is named by its key in [risk] (max_order_quantity), or by table, name and
key: instruments.XYZ.SIM.collar_pct, strategies.ema_cross.max_fills,
venues.SIM.max_messages_per_s, accounts.desk_a.max_cash_usage. The value is written
as in TOML (quotes not needed). An override is temporary: it ends by itself after
--for (at most 7 days), or with `bastion risk clear`; then the config file's value
applies again. Every override, its end and who asked why are journaled.

An override may loosen a limit at most [access] max_override_factor (2 by default)
times the config's value (divided by it for a limit that is looser lower, such as
fills_window_ms); beyond that it is refused, naming the ceiling. An admin raises one
limit's ceiling with `bastion risk raise-ceiling` (until the node stops). With
four-eyes on, a value looser than the config's, and every raised ceiling, wait for a
second operator (`bastion approve`).

examples:
  bastion risk set mydesk/paper.toml max_order_quantity 50 --for 30m --why "index rebalance"
  bastion risk list mydesk/paper.toml
  bastion risk clear mydesk/paper.toml 3 --why "rebalance done"
  bastion risk raise-ceiling mydesk/paper.toml max_order_quantity 500 --why "rebalance"
"""

_APPROVE_EPILOG: Final = """\
A four-eyes command (a resume after a kill, an override looser than the config, a
raised ceiling) runs only when a second, different operator approves it within its
window ([access.four_eyes]): one whose roles may approve it (the approve right and
the command's own). Approving your own request, an expired or an already used id is
refused and journaled.

examples:
  bastion approvals mydesk/live.toml
  bastion approve mydesk/live.toml 7.a1 --why "checked the fills with alice"
"""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def control_socket(config: str | None) -> Path:
    """The control socket of the node that runs with ``config`` (or the embedded defaults)."""
    from bastion.node.control import socket_path

    if config is not None:
        config_path = Path(config)
        node_config = load_config(config_path, PaperConfig)
        base_dir = config_path.resolve().parent
    else:
        node_config, base_dir = default_paper_config()
    return socket_path(resolve_path(base_dir, node_config.journal.path))


def send(config: str | None, req: dict[str, object]) -> int:
    """Send one request to the node and print its answer; raise if it refused."""
    from bastion.node.control import NoNodeListening, request

    try:
        response = request(control_socket(config), req)
    except NoNodeListening as e:
        raise UsageError(str(e)) from None
    print(msgspec.json.encode(response).decode(), flush=True)
    if response.get("ok") is not True:
        raise CommandRefused(f"the node refused: {response.get('error', 'no reason given')}")
    return 0


def duration_s(text: str) -> float:
    """``90s``, ``30m``, ``4h``, ``1d`` (or plain seconds) as seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is not None:
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        try:
            seconds = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a duration: {text!r} (e.g. 90s, 30m, 4h, 1d)"
            ) from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return seconds


def cmd_kill(args: argparse.Namespace) -> int:
    req: dict[str, object] = {"cmd": "kill", "flatten": args.flatten, "why": args.why}
    if args.venue is not None:
        req["venue"] = args.venue
    return send(args.config, req)


def cmd_resume(args: argparse.Namespace) -> int:
    req: dict[str, object] = {"cmd": "resume", "why": args.why}
    if args.instrument is not None:
        req["instrument"] = args.instrument
    if args.venue is not None:
        req["venue"] = args.venue
    return send(args.config, req)


def cmd_status(args: argparse.Namespace) -> int:
    return send(args.config, {"cmd": "status"})


def cmd_enable(args: argparse.Namespace) -> int:
    return send(args.config, {"cmd": "enable", "strategy": args.strategy, "why": args.why})


def cmd_disable(args: argparse.Namespace) -> int:
    return send(args.config, {"cmd": "disable", "strategy": args.strategy, "why": args.why})


def cmd_risk_set(args: argparse.Namespace) -> int:
    req = {
        "cmd": "risk_set",
        "path": args.key,
        "value": args.value,
        "for_s": args.for_s,
        "why": args.why,
    }
    return send(args.config, req)


def cmd_risk_clear(args: argparse.Namespace) -> int:
    return send(args.config, {"cmd": "risk_clear", "id": args.id, "why": args.why})


def cmd_raise_ceiling(args: argparse.Namespace) -> int:
    req = {"cmd": "raise_ceiling", "path": args.key, "value": args.value, "why": args.why}
    return send(args.config, req)


def cmd_approvals(args: argparse.Namespace) -> int:
    return send(args.config, {"cmd": "approvals_list"})


def cmd_approve(args: argparse.Namespace) -> int:
    return send(args.config, {"cmd": "approve", "id": args.id, "why": args.why})


def cmd_risk_list(args: argparse.Namespace) -> int:
    return send(args.config, {"cmd": "risk_list"})


def add_operator_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    def command(name: str, help_text: str, epilog: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(
            name,
            help=help_text,
            description=f"bastion {name}: {help_text}.",
            epilog=epilog,
            formatter_class=formatter,
        )
        parser.add_argument(
            "config", metavar="CONFIG", nargs="?", help="the node's config file (TOML); optional"
        )
        return parser

    kill = command(
        "kill", "halt the running node, cancel all orders, optionally flatten", _KILL_EPILOG
    )
    kill.add_argument(
        "--flatten", action="store_true", help="also close every position with market orders"
    )
    kill.add_argument("--why", metavar="TEXT", default="", help="reason, journaled")
    kill.add_argument(
        "--venue",
        metavar="NAME",
        help="halt only this venue (cancel its orders, refuse new ones); the node trades on",
    )
    kill.set_defaults(handler=cmd_kill)

    resume = command("resume", "set a halted node back to ACTIVE", _RESUME_EPILOG)
    resume.add_argument("--why", metavar="TEXT", default="", help="reason, journaled")
    resume.add_argument(
        "--instrument",
        metavar="ID",
        help="end this instrument's pause (time-window collar) early instead",
    )
    resume.add_argument(
        "--venue", metavar="NAME", help="let this venue take orders again (after kill --venue)"
    )
    resume.set_defaults(handler=cmd_resume)

    status = command(
        "status",
        "the running node's trading state, open orders, positions and risk controls",
        _STATUS_EPILOG,
    )
    status.set_defaults(handler=cmd_status)

    enable = command("enable", "enable a strategy the risk gate disabled", _ENABLE_EPILOG)
    enable.add_argument("strategy", metavar="STRATEGY", help="the strategy's name")
    enable.add_argument("--why", metavar="TEXT", required=True, help="reason, journaled")
    enable.set_defaults(handler=cmd_enable)

    disable = command(
        "disable",
        "disable a strategy: its new orders are denied until it is enabled",
        _ENABLE_EPILOG,
    )
    disable.add_argument("strategy", metavar="STRATEGY", help="the strategy's name")
    disable.add_argument("--why", metavar="TEXT", required=True, help="reason, journaled")
    disable.set_defaults(handler=cmd_disable)

    approvals = command(
        "approvals", "the four-eyes requests waiting for a second operator", _APPROVE_EPILOG
    )
    approvals.set_defaults(handler=cmd_approvals)
    approve = commands.add_parser(
        "approve",
        help="approve another operator's four-eyes request: it runs now",
        description="bastion approve: approve another operator's four-eyes request.",
        epilog=_APPROVE_EPILOG,
        formatter_class=formatter,
    )
    approve.add_argument("config", metavar="CONFIG", help="the node's config file (TOML)")
    approve.add_argument("id", metavar="ID", help="the request's id (bastion approvals)")
    approve.add_argument("--why", metavar="TEXT", required=True, help="reason, journaled")
    approve.set_defaults(handler=cmd_approve)

    risk = commands.add_parser(
        "risk",
        help="temporary overrides of the running node's risk limits",
        description="bastion risk: set, clear and list temporary risk limit overrides.",
        epilog=_RISK_EPILOG,
        formatter_class=formatter,
    )
    sub = risk.add_subparsers(dest="risk_command", metavar="COMMAND", title="commands")
    risk.set_defaults(handler=lambda _args: usage(risk))
    set_ = sub.add_parser(
        "set", help="override one limit for a while", epilog=_RISK_EPILOG, formatter_class=formatter
    )
    set_.add_argument("config", metavar="CONFIG", help="the node's config file (TOML)")
    set_.add_argument("key", metavar="KEY", help="e.g. max_order_quantity, instruments.ID.KEY")
    set_.add_argument("value", metavar="VALUE", help="the new value, as in TOML")
    set_.add_argument(
        "--for",
        dest="for_s",
        metavar="DURATION",
        type=duration_s,
        required=True,
        help="how long: 90s, 30m, 4h, 1d (at most 7d)",
    )
    set_.add_argument("--why", metavar="TEXT", required=True, help="reason, journaled")
    set_.set_defaults(handler=cmd_risk_set)
    clear = sub.add_parser("clear", help="end an override now", formatter_class=formatter)
    clear.add_argument("config", metavar="CONFIG", help="the node's config file (TOML)")
    clear.add_argument("id", metavar="ID", help="the override's id (bastion risk list)")
    clear.add_argument("--why", metavar="TEXT", default="", help="reason, journaled")
    clear.set_defaults(handler=cmd_risk_clear)
    list_ = sub.add_parser("list", help="the active overrides", formatter_class=formatter)
    list_.add_argument("config", metavar="CONFIG", help="the node's config file (TOML)")
    list_.set_defaults(handler=cmd_risk_list)
    ceiling = sub.add_parser(
        "raise-ceiling",
        help="let overrides of one limit go further (admin; four-eyes)",
        epilog=_RISK_EPILOG,
        formatter_class=formatter,
    )
    ceiling.add_argument("config", metavar="CONFIG", help="the node's config file (TOML)")
    ceiling.add_argument("key", metavar="KEY", help="e.g. max_order_quantity, instruments.ID.KEY")
    ceiling.add_argument("value", metavar="VALUE", help="the new ceiling, as in TOML")
    ceiling.add_argument("--why", metavar="TEXT", required=True, help="reason, journaled")
    ceiling.set_defaults(handler=cmd_raise_ceiling)
