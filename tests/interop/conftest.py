"""Fixtures for interop tests: a started QuickFIX acceptor (qf_peer.py as
a child process, ``kit.quickfix.QfPeer``) killed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.net import free_tcp_port
from kit.quickfix import QfPeer


@pytest.fixture
def qf_peer(tmp_path: Path) -> Iterator[QfPeer]:
    """A started QuickFIX acceptor QFVENUE<->BASTION, user "trader", heartbeat 1 s."""
    peer = QfPeer(
        port=free_tcp_port(),
        store_dir=tmp_path / "qf-store",
        stderr_path=tmp_path / "qf_peer.stderr",
        username="trader",
        password="s3cret-pw",
        heartbeat_s=1,
    )
    peer.start()
    try:
        yield peer
    finally:
        peer.kill()
