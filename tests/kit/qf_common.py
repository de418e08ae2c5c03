"""What the QuickFIX child processes of the interop tests share (not a test module).

``qf_peer.py`` (a QuickFIX acceptor) and ``qf_initiator.py`` (a QuickFIX initiator)
both read JSON commands on stdin and answer one JSON line each on stdout; this module
holds that control loop, the session settings they have in common and small helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import sys
import sysconfig
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import quickfix as fix

log = logging.getLogger("qf_common")


def find_data_dictionary() -> Path:
    """FIX44.xml as installed by the quickfix wheel under ``<prefix>/share/quickfix``."""
    roots = [Path(sys.prefix), Path(sysconfig.get_path("data"))]
    roots.append(Path(sysconfig.get_path("purelib")).parents[2])  # site-packages/../../..
    for root in roots:
        candidate = root / "share" / "quickfix" / "FIX44.xml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("FIX44.xml not found under " + ", ".join(map(str, roots)))


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def get(fields: fix.FieldMap, tag: int) -> str | None:
    return fields.getField(tag) if fields.isSetField(tag) else None


def common_settings(dictionary: Path, store_dir: Path) -> list[str]:
    """Settings both ends use: always on, persisted, never reset, lenient on extra tags."""
    return [
        "StartTime=00:00:00",
        "EndTime=00:00:00",
        # Else QuickFIX may take midnight UTC for a new session and reset sequence numbers.
        "NonStopSession=Y",
        "UseDataDictionary=Y",
        f"DataDictionary={dictionary}",
        "ResetOnLogon=N",
        "ResetOnLogout=N",
        "ResetOnDisconnect=N",
        "PersistMessages=Y",
        "ValidateUserDefinedFields=N",
        "AllowUnknownMsgFields=Y",
        f"FileStorePath={store_dir}",
    ]


def parse_args(
    description: str, sender: str, target: str, argv: list[str] | None = None
) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The arguments both child processes take; the password from ``--password-env``
    (an environment variable, so it is not on the command line) or ``--password``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sender-comp-id", default=sender)
    parser.add_argument("--target-comp-id", default=target)
    parser.add_argument("--store-dir", type=Path, required=True)
    parser.add_argument("--username")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password-env", help="environment variable holding the password")
    secret.add_argument("--password", help="the password itself (visible in ps; prefer -env)")
    parser.add_argument("--heartbeat-s", type=int, default=30)
    args = parser.parse_args(argv)
    if args.password_env is not None:
        args.password = os.environ.get(args.password_env)
        if not args.password:
            parser.error(f"environment variable {args.password_env} is not set")
    if (args.username is None) != (args.password is None):
        parser.error("--username and a password go together")
    return parser, args


def write_line(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


class JsonController:
    """Runs one JSON command per line through a ``_cmd_<name>`` method; replies in JSON.

    A request may carry an ``id``, echoed in its reply. Bad JSON, unknown commands, bad
    arguments and failing commands are answered with ``{"ok": false, "error": ...}``:
    the process outlives any one command.
    """

    running = True

    def handle(self, line: str) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as e:
            return {"ok": False, "error": f"bad JSON: {e}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a command is a JSON object"}
        request_id = request.pop("id", None)
        reply = self._run(request.pop("cmd", None), request)
        return reply if request_id is None else {**reply, "id": request_id}

    def _guard(self, cmd: str) -> contextlib.AbstractContextManager[object]:
        """Held while ``cmd`` runs (a subclass may serialise some commands)."""
        return contextlib.nullcontext()

    def _run(self, cmd: object, args: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self, f"_cmd_{cmd}", None) if isinstance(cmd, str) else None
        if method is None or not isinstance(cmd, str):
            return {"ok": False, "error": f"unknown command: {cmd!r}"}
        try:
            inspect.signature(method).bind(**args)
        except TypeError as e:
            return {"ok": False, "error": f"bad arguments for {cmd}: {e}"}
        try:
            with self._guard(cmd):
                return {"ok": True, **method(**args)}
        except (ValueError, KeyError, fix.SessionNotFound) as e:
            return {"ok": False, "error": str(e) or type(e).__name__}
        except Exception as e:
            log.exception("command %s failed", cmd)
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}

    def _cmd_quit(self) -> dict[str, Any]:
        self.running = False
        return {}

    def serve(self, lines: Iterable[str]) -> None:
        """Answer every line until ``quit`` or the end of input."""
        for line in lines:
            if not line.strip():
                continue
            write_line(self.handle(line))
            if not self.running:
                break
