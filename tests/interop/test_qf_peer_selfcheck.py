"""Self-check of the QuickFIX peer with a hand-encoded FIX 4.4 client on a raw socket.

These tests exercise the peer, not bastion: if they fail, the fault is in qf_peer.py or in
QuickFIX's behaviour, never in bastion's FIX layer.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from kit.quickfix import QfPeer

SOH = "\x01"
Msg = dict[int, str]


def encode(fields: list[tuple[int, str]]) -> bytes:
    """A FIX 4.4 message from body fields (35 first); BodyLength and CheckSum computed here."""
    body = "".join(f"{tag}={value}{SOH}" for tag, value in fields)
    head = f"8=FIX.4.4{SOH}9={len(body.encode())}{SOH}"
    checksum = sum((head + body).encode()) % 256
    return f"{head}{body}10={checksum:03d}{SOH}".encode()


def decode(raw: bytes) -> Msg:
    """Tag -> value (the last one wins; these tests never look inside repeating groups)."""
    text = raw.decode()
    body, trailer = text[: text.rindex(f"{SOH}10=") + 1], text[text.rindex("10=") :]
    assert int(trailer[3:6]) == sum(body.encode()) % 256, f"bad checksum: {text!r}"
    msg: Msg = {}
    for pair in text.rstrip(SOH).split(SOH):
        tag, _, value = pair.partition("=")
        msg[int(tag)] = value
    return msg


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


class RawFixClient:
    """The BASTION end of a session, one message at a time, with every wait bounded."""

    def __init__(self, port: int, *, next_seq: int = 1, timeout_s: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.timeout_s = timeout_s
        self.next_seq = next_seq
        self.buffer = b""

    def __enter__(self) -> RawFixClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.sock.close()

    def send(self, msg_type: str, *fields: tuple[int, str], poss_dup: bool = False) -> int:
        seq = self.next_seq
        self.next_seq += 1
        header = [(35, msg_type), (34, str(seq)), (49, "BASTION"), (56, "QFVENUE")]
        header.append((52, utc_now()))
        self.sock.sendall(encode(header + list(fields)))
        return seq

    def logon(self, password: str = "s3cret-pw") -> int:
        return self.send("A", (98, "0"), (108, "1"), (553, "trader"), (554, password))

    def read(self) -> Msg | None:
        """The next message, or None at EOF; a TestRequest is answered on the way."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            end = self.buffer.find(b"\x0110=")
            if end >= 0 and (stop := self.buffer.find(b"\x01", end + 1)) >= 0:
                raw, self.buffer = self.buffer[: stop + 1], self.buffer[stop + 1 :]
                msg = decode(raw)
                if msg[35] == "1":
                    self.send("0", (112, msg[112]))
                return msg
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no complete FIX message within {self.timeout_s}s"
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def read_until(self, msg_type: str) -> Msg:
        """Skip heartbeats and other traffic up to the next message of ``msg_type``."""
        deadline = time.monotonic() + self.timeout_s
        skipped: list[str] = []
        while time.monotonic() < deadline:
            msg = self.read()
            assert msg is not None, f"connection closed while waiting for 35={msg_type}"
            if msg[35] == msg_type:
                return msg
            skipped.append(msg[35])
        raise AssertionError(f"no 35={msg_type} within {self.timeout_s}s; got {skipped}")


def new_order(client: RawFixClient, cl_ord_id: str, qty: str = "100", px: str = "10.5") -> int:
    return client.send(
        "D", (11, cl_ord_id), (55, "AAPL"), (54, "1"), (60, utc_now()),
        (38, qty), (40, "2"), (44, px),
    )  # fmt: skip


def test_when_logon_and_order_then_new_and_fill_reports(qf_peer: QfPeer) -> None:
    """A Logon is answered, a NewOrderSingle acknowledged, and a `fill` reported as a Trade."""
    with RawFixClient(qf_peer.port) as client:
        client.logon()
        logon = client.read_until("A")
        assert (logon[49], logon[56], logon[108]) == ("QFVENUE", "BASTION", "1")

        new_order(client, "ORD-1")
        new = client.read_until("8")
        assert (new[150], new[39], new[11], new[37]) == ("0", "0", "ORD-1", "QF-1")
        assert (new[151], new[14], new[6], new[44]) == ("100", "0", "0", "10.5")

        fill = qf_peer.command("fill", cl_ord_id="ORD-1", qty="40", px="10.5")
        assert fill["ok"], fill
        trade = client.read_until("8")
        assert (trade[150], trade[39], trade[17]) == ("F", "1", fill["exec_id"])
        assert (trade[32], trade[31], trade[14], trade[151], trade[851]) == (
            "40", "10.5", "40", "60", "1",
        )  # fmt: skip

        status = qf_peer.command("status")
        assert status["logged_on"] and status["logons"] == 1
        assert status["orders"]["ORD-1"]["cum_qty"] == "40"
        assert [r["msg_type"] for r in status["received"]][:2] == ["A", "D"]
        assert status["sent_exec_ids"] == [new[17], trade[17]]


def test_when_wrong_password_then_logout_and_close(qf_peer: QfPeer, tmp_path: Path) -> None:
    """Bad credentials get a Logout with a reason, then the peer closes the connection."""
    with RawFixClient(qf_peer.port) as client:
        client.logon(password="wrong-pw")
        logout = client.read_until("5")
        assert logout[58].endswith("invalid username or password")  # QuickFIX adds a prefix
        assert client.read() is None  # EOF

    status = qf_peer.command("status")
    assert (status["logged_on"], status["rejected_logons"]) == (False, 1)
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(b"s3cret-pw" in data or b"wrong-pw" in data for data in written)


def test_when_filled_while_disconnected_then_resent_after_reconnect(qf_peer: QfPeer) -> None:
    """QuickFIX stores a report sent while the session is down and resends it on request."""
    with RawFixClient(qf_peer.port) as client:
        client.logon()
        client.read_until("A")
        new_order(client, "ORD-7")
        new = client.read_until("8")
        assert qf_peer.command("disconnect")["logged_on"] is False
        while client.read() is not None:
            pass  # the peer dropped the TCP connection: EOF after anything in flight
        next_seq = client.next_seq
        last_peer_seq = int(new[34])

    fill = qf_peer.command("fill", cl_ord_id="ORD-7", qty="100", px="10.4")
    assert fill["ok"], fill
    assert qf_peer.command("status")["next_sender_seq"] > last_peer_seq + 1

    with RawFixClient(qf_peer.port, next_seq=next_seq) as client:
        client.logon()
        logon = client.read_until("A")
        assert int(logon[34]) > last_peer_seq + 1  # a gap: the fill went to the store
        client.send("2", (7, str(last_peer_seq + 1)), (16, "0"))
        resent = client.read_until("8")
        assert (resent[17], resent[150], resent[39], resent[43]) == (fill["exec_id"], "F", "2", "Y")
        assert 122 in resent and int(resent[34]) < int(logon[34])
