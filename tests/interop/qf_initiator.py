#!/usr/bin/env python3
"""A QuickFIX FIX 4.4 initiator that interop tests drive against bastion's venue simulator.

Run as a script, not a test module::

    QF_PASSWORD=... python tests/interop/qf_initiator.py --port P --sender-comp-id TRADER \\
        --target-comp-id BASTION-SIM --store-dir DIR --username U --password-env QF_PASSWORD

It owns one FIX session and reconnects by itself (ReconnectInterval=1). Every inbound message
passes QuickFIX's FIX44.xml data dictionary first: a message the dictionary refuses is answered
by QuickFIX with a Reject and never reaches ``fromApp``, so ``status.sent`` shows it.

Control is JSON lines, as in qf_peer.py: one command per stdin line, one JSON reply per stdout
line (the commands are the ``_cmd_*`` methods of ``Controller``; a request's ``id`` is echoed).
QuickFIX keeps sequence numbers and sent messages in its file store in DIR, so a restarted
initiator resumes the same session.

The password is given by the name of an environment variable (``--password-env``), so it is
not on the command line; ``--password`` exists for manual runs. It is put into the Logon in
``toAdmin`` and shown nowhere: ``status`` never includes tag 554, logged messages mask it, and
``StoreScrubber`` masks it in the file store, where QuickFIX persists every message it sends,
the Logon included (PersistMessages cannot leave admin messages out).

Threads: QuickFIX calls ``InitiatorApp`` on its own thread while the control loop runs on the
main thread. ``_lock`` guards the recorded state and is never held while calling into QuickFIX,
because QuickFIX calls ``toApp``/``toAdmin`` while holding its session mutex.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# the script runs outside pytest: tests/ goes on the path for the shared test kit
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import quickfix as fix
import quickfix44 as fix44

from kit.qf_common import (
    JsonController,
    common_settings,
    find_data_dictionary,
    get,
    utc_now,
    write_line,
)
from kit.qf_common import parse_args as common_args

log = logging.getLogger("qf_initiator")

PASSWORD_RE = re.compile("(\x01554=)[^\x01]*")
# Tags shown in `status.received`/`status.sent`, per message type; 554 is never among them.
SUMMARY_TAGS: dict[str, tuple[int, ...]] = {
    "0": (112,),
    "1": (112,),
    "2": (7, 16),
    "3": (45, 371, 372, 373, 58),
    "4": (36, 123),
    "5": (58,),
    "A": (98, 108, 141),
    "8": (11, 41, 37, 17, 150, 39, 55, 54, 38, 44, 32, 31, 14, 151, 6, 58, 584, 911, 912),
    "9": (11, 41, 37, 39, 434, 102, 58),
    "D": (11, 55, 54, 38, 40, 44, 59),
    "F": (11, 41, 55, 54),
    "G": (11, 41, 55, 54, 38, 44),
    "AF": (584, 585),
    "V": (262, 263),
    "W": (262, 55, 268),
    "X": (262, 268),
    "Y": (262, 281, 58),
    "j": (45, 372, 380, 58),
}
ENTRY_TAGS = (279, 269, 55, 270, 271)
EXEC_TAGS = (11, 41, 37, 17, 150, 39, 32, 31, 14, 151, 6, 55, 54, 38, 44, 58, 584, 911, 912)


def masked(message: fix.Message) -> str:
    return PASSWORD_RE.sub(r"\1***", message.toString()).replace("\x01", "|")


class StoreScrubber:
    """Masks the password in the Logons QuickFIX's FileStore keeps in its ``*.body`` files.

    The mask has the password's length, so BodyLength and the offsets in the ``*.header``
    index stay right; the CheckSum is recomputed, because QuickFIX re-parses stored messages
    with CheckSum validation when it answers a ResendRequest, and drops the whole
    ResendRequest (leaving the counterparty's gap open) if one of them is invalid. QuickFIX
    only ever appends to the body, after seeking to its end, so rewriting bytes in place is safe.
    """

    def __init__(self, store_dir: Path, password: str | None) -> None:
        self._store_dir = store_dir
        secret = password.encode() if password else b""
        self._needle = b"\x01554=" + secret + b"\x01" if secret else b""
        self._mask = b"*" * len(secret)
        self._lock = threading.Lock()

    def scrub(self) -> int:
        """Mask every stored copy of the password; returns how many were masked."""
        if not self._needle:
            return 0
        masked_count = 0
        with self._lock:
            for body in self._store_dir.glob("*.body"):
                data = bytearray(body.read_bytes())
                spans = []
                at = data.find(self._needle)
                while at >= 0:
                    spans.append(self._mask_message(data, at))
                    at = data.find(self._needle, at + 1)
                if not spans:
                    continue
                with body.open("r+b") as f:
                    for first, last in spans:
                        f.seek(first)
                        f.write(data[first:last])
                masked_count += len(spans)
        return masked_count

    def _mask_message(self, data: bytearray, at: int) -> tuple[int, int]:
        """Mask the password found at ``at``; fix the CheckSum; return the message's span."""
        value = at + len(b"\x01554=")
        data[value : value + len(self._mask)] = self._mask
        first = data.rfind(b"8=FIX", 0, at)
        trailer = data.find(b"\x0110=", value)  # the SOH that ends the body, then "10=NNN"
        if first < 0 or trailer < 0:
            return value, value + len(self._mask)  # a torn message: mask only
        checksum = sum(data[first : trailer + 1]) % 256
        data[trailer + 4 : trailer + 7] = b"%03d" % checksum
        return first, trailer + 7


class InitiatorApp(fix.Application):  # type: ignore[misc]
    """QuickFIX callbacks: credentials into the Logon, and a record of every message.

    Each callback catches everything: an exception escaping a director callback would end
    QuickFIX's thread.
    """

    def __init__(
        self, *, username: str | None, password: str | None, scrubber: StoreScrubber
    ) -> None:
        super().__init__()
        self._username = username
        self._password = password
        self._scrubber = scrubber
        self._logon_stored = False  # a Logon went to the store and was not masked yet
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self.logged_on = False
        self.logons = 0
        self.logouts = 0
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.exec_reports: list[dict[str, Any]] = []
        self.logout_texts: list[str] = []

    def onCreate(self, sessionID: fix.SessionID) -> None:
        log.info("session created %s", sessionID.toString())

    def _scrub_logon(self) -> None:
        """Called on QuickFIX's thread after it has stored (then sent) a Logon."""
        if self._logon_stored:
            self._logon_stored = False
            self._scrubber.scrub()

    def onLogon(self, sessionID: fix.SessionID) -> None:
        self._scrub_logon()
        with self.changed:
            self.logged_on = True
            self.logons += 1
            self.changed.notify_all()
        log.info("logon %s", sessionID.toString())

    def onLogout(self, sessionID: fix.SessionID) -> None:
        # QuickFIX calls this on every disconnect after a Logon was sent, even a refused one.
        self._scrub_logon()
        with self.changed:
            self.logged_on = False
            self.logouts += 1
            self.changed.notify_all()
        log.info("logout %s", sessionID.toString())

    def toAdmin(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        try:
            if get(message.getHeader(), 35) == "A":
                if self._username is not None:
                    message.setField(553, self._username)
                if self._password is not None:
                    message.setField(554, self._password)
                    self._logon_stored = True  # QuickFIX stores it once toAdmin returns
            self._record(message, self.sent, "sent")
        except Exception:
            log.exception("toAdmin failed")

    def toApp(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        try:
            self._record(message, self.sent, "sent")
        except Exception:
            log.exception("toApp failed")

    def fromAdmin(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        try:
            self._scrub_logon()
            entry = self._record(message, self.received, "received")
            if entry["msg_type"] == "5":
                with self.changed:
                    self.logout_texts.append(entry["tags"].get("58", ""))
                    self.changed.notify_all()
        except Exception:
            log.exception("fromAdmin failed")

    def fromApp(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        try:
            entry = self._record(message, self.received, "received")
            if entry["msg_type"] == "8":
                report = {str(t): v for t in EXEC_TAGS if (v := get(message, t)) is not None}
                report["43"] = "Y" if entry["poss_dup"] else "N"
                with self.changed:
                    self.exec_reports.append(report)
                    self.changed.notify_all()
        except Exception:
            log.exception("fromApp failed")

    def _record(
        self, message: fix.Message, into: list[dict[str, Any]], what: str
    ) -> dict[str, Any]:
        header = message.getHeader()
        msg_type = get(header, 35) or ""
        log.info("%s %s", what, masked(message))
        tags = SUMMARY_TAGS.get(msg_type, ())
        entry: dict[str, Any] = {
            "msg_type": msg_type,
            "seq": int(get(header, 34) or 0),
            "poss_dup": get(header, 43) == "Y",
            "tags": {str(t): v for t in tags if t != 554 and (v := get(message, t)) is not None},
        }
        if msg_type in ("W", "X"):
            entry["entries"] = md_entries(message, msg_type)
        with self.changed:
            into.append(entry)
            self.changed.notify_all()
        return entry

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "logged_on": self.logged_on,
                "logons": self.logons,
                "logouts": self.logouts,
                "received": list(self.received),
                "sent": list(self.sent),
                "exec_reports": list(self.exec_reports),
                "logout_texts": list(self.logout_texts),
            }


def md_entries(message: fix.Message, msg_type: str) -> list[dict[str, str]]:
    """The NoMDEntries (268) group of a W or X, as QuickFIX's dictionary parsed it."""
    group = (
        fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
        if msg_type == "W"
        else fix44.MarketDataIncrementalRefresh.NoMDEntries()
    )
    entries = []
    for i in range(1, int(get(message, 268) or "0") + 1):
        message.getGroup(i, group)
        entries.append({str(t): v for t in ENTRY_TAGS if (v := get(group, t)) is not None})
    return entries


class Controller(JsonController):
    """Runs one JSON command per stdin line; every reply is one JSON line on stdout."""

    def __init__(self, app: InitiatorApp, session_id: fix.SessionID) -> None:
        self.app = app
        self.session_id = session_id

    def session(self) -> fix.Session:
        return fix.Session.lookupSession(self.session_id)

    def _send(
        self,
        msg_type: str,
        fields: Iterable[tuple[int, object]],
        groups: Iterable[fix.Group] = (),
    ) -> dict[str, Any]:
        if not self.app.logged_on:
            raise ValueError("not logged on")
        message = fix.Message()
        message.getHeader().setField(35, msg_type)
        for tag, value in fields:
            if value is not None:
                message.setField(tag, str(value))
        for group in groups:
            message.addGroup(group)
        if not fix.Session.sendToTarget(message, self.session_id):
            raise ValueError(f"QuickFIX did not send {msg_type}")
        return {}

    def _cmd_wait_logon(self, *, timeout_s: float = 10.0, min_logons: int = 1) -> dict[str, Any]:
        """Wait until logged on, with at least ``min_logons`` logons since the start."""
        with self.app.changed:
            ok = self.app.changed.wait_for(
                lambda: self.app.logged_on and self.app.logons >= min_logons, timeout=timeout_s
            )
        if not ok:
            raise ValueError(f"not logged on within {timeout_s} s")
        return {"logons": self.app.logons}

    def _cmd_new_order(
        self,
        *,
        cl_ord_id: str,
        symbol: str,
        side: str,
        qty: str,
        ord_type: str = "2",
        price: str | None = None,
        tif: str = "0",
    ) -> dict[str, Any]:
        fields = [
            (11, cl_ord_id), (55, symbol), (54, side), (60, utc_now()),
            (38, qty), (40, ord_type), (44, price), (59, tif),
        ]  # fmt: skip
        return self._send("D", fields)

    def _cmd_cancel(
        self, *, cl_ord_id: str, orig_cl_ord_id: str, symbol: str, side: str
    ) -> dict[str, Any]:
        fields = [(41, orig_cl_ord_id), (11, cl_ord_id), (55, symbol), (54, side), (60, utc_now())]
        return self._send("F", fields)

    def _cmd_replace(
        self,
        *,
        cl_ord_id: str,
        orig_cl_ord_id: str,
        symbol: str,
        side: str,
        qty: str,
        price: str,
    ) -> dict[str, Any]:
        fields = [
            (41, orig_cl_ord_id), (11, cl_ord_id), (55, symbol), (54, side),
            (60, utc_now()), (38, qty), (40, "2"), (44, price),
        ]  # fmt: skip
        return self._send("G", fields)

    def _cmd_mass_status(self, *, req_id: str) -> dict[str, Any]:
        return self._send("AF", [(584, req_id), (585, "7")])

    def _cmd_subscribe(self, *, req_id: str, symbol: str) -> dict[str, Any]:
        groups: list[fix.Group] = []
        for entry_type in ("0", "1"):  # bid, offer
            entry = fix44.MarketDataRequest.NoMDEntryTypes()
            entry.setField(269, entry_type)
            groups.append(entry)
        related = fix44.MarketDataRequest.NoRelatedSym()
        related.setField(55, symbol)
        groups.append(related)
        fields = [(262, req_id), (263, "1"), (264, "1"), (265, "1")]
        return self._send("V", fields, groups)

    def _cmd_status(self) -> dict[str, Any]:
        session = self.session()
        return {
            "next_sender_seq": session.getExpectedSenderNum(),
            "next_target_seq": session.getExpectedTargetNum(),
            **self.app.snapshot(),
        }


def settings_text(args: argparse.Namespace, dictionary: Path) -> str:
    return "\n".join(
        [
            "[DEFAULT]",
            "ConnectionType=initiator",
            "ReconnectInterval=1",
            *common_settings(dictionary, args.store_dir),
            f"SocketConnectHost={args.host}",
            f"SocketConnectPort={args.port}",
            "",
            "[SESSION]",
            "BeginString=FIX.4.4",
            f"SenderCompID={args.sender_comp_id}",
            f"TargetCompID={args.target_comp_id}",
            f"HeartBtInt={args.heartbeat_s}",
            "",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return common_args(__doc__.splitlines()[0], "TRADER", "BASTION-SIM", argv)[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s qf_initiator %(threadName)s %(message)s",
    )
    args.store_dir.mkdir(parents=True, exist_ok=True)
    config = args.store_dir / "qf_initiator.cfg"
    config.write_text(settings_text(args, find_data_dictionary()))
    session_id = fix.SessionID("FIX.4.4", args.sender_comp_id, args.target_comp_id)
    scrubber = StoreScrubber(args.store_dir, args.password)
    scrubber.scrub()  # a Logon stored by a predecessor killed before it could mask it
    app = InitiatorApp(username=args.username, password=args.password, scrubber=scrubber)
    settings = fix.SessionSettings(str(config))
    # No LogFactory: a FileLog would write our Logon, password included, to disk.
    initiator = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings)
    try:
        initiator.start()
    except (fix.ConfigError, fix.RuntimeError) as e:
        write_line({"ready": False, "error": str(e)})
        return 1
    write_line({"ready": True})
    controller = Controller(app, session_id)
    try:
        controller.serve(sys.stdin)
    finally:
        # A graceful Logout when logged on; otherwise there is nobody to wait for.
        initiator.stop(not app.logged_on)
        scrubber.scrub()
    return 0


if __name__ == "__main__":
    sys.exit(main())
