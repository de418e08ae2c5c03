"""``console.toml``: what ``bastion console CONFIG`` serves, to whom, and which nodes.

Strict like the node's config (``bastion.config.load_config``): unknown keys are named
with the closest valid one, every bad value is one ``ConfigError`` naming the key.
Paths are relative to the config file's directory. The console refuses to start
without a TLS certificate and key, and reads the users key only from a file no group
or other user may read.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Final

import msgspec

from bastion.config import load_config, resolve_path
from bastion.errors import ConfigError
from bastion.node.control import socket_path
from bastion.security.config import UsersConfig
from bastion.vault import redact
from bastion.vault._format import KEY_BYTES
from bastion.vault.files import ensure_private

__all__ = [
    "DEFAULT_PORT",
    "ConsoleConfig",
    "ListenConfig",
    "LoginConfig",
    "NodeEntry",
    "TlsConfig",
    "load_console_config",
    "read_users_key",
]

DEFAULT_PORT: Final = 8443
LOOPBACK: Final = ("127.0.0.0/8", "::1/128")
_MAX_TTL_S: Final = 7 * 86_400


class ListenConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[listen]``: the address the HTTPS server binds (loopback by default)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT


class TlsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[tls]``: the server's certificate chain and private key (PEM files)."""

    cert: str
    key: str


class NodeEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[nodes]]``: a node the console watches, by its control socket, or by its
    journal (the socket is ``<journal>.sock`` beside it)."""

    name: str
    socket: str | None = None
    journal: str | None = None


class LoginConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[login]``: the console's own bound on sign-in attempts per source address,
    on top of the store's per-operator lockout: ``max_per_source_per_min`` refused
    attempts (sign-in or step-up) within a minute lock the source out for
    ``source_lockout_s``."""

    max_per_source_per_min: int = 10
    source_lockout_s: int = 900


class ConsoleConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The console process (docs/configuration.md, "console.toml")."""

    tls: TlsConfig
    users: str
    """The operator store (``users.bastion``), a copy or the vault's own."""
    users_key: str
    """A file (0600) holding the store's key in hex (``bastion console init`` writes it)."""
    nodes: list[NodeEntry]
    listen: ListenConfig = msgspec.field(default_factory=ListenConfig)
    allow: list[str] = msgspec.field(default_factory=lambda: list(LOOPBACK))
    """Networks (CIDR) that may connect at all; others get 403 before anything else."""
    session_ttl_s: int = 8 * 3600
    idle_timeout_s: int = 15 * 60
    step_up_s: int = 120
    login: LoginConfig = msgspec.field(default_factory=LoginConfig)
    users_config: UsersConfig = msgspec.field(default_factory=UsersConfig, name="access_users")
    """``[access_users]``: the store's lockout and hash cost (as the node's
    ``[access.users]``; its ``path`` is not read: ``users`` is)."""
    poll_interval_ms: int = 500
    node_timeout_s: float = 5.0
    max_event_clients: int = 50
    max_event_clients_per_operator: int = 8
    max_body_bytes: int = 16 * 1024
    equity_points: int = 2000

    def __post_init__(self) -> None:
        _range("listen.port", self.listen.port, 0, 65_535)
        if not self.listen.host:
            raise ConfigError("key 'listen.host': must not be empty")
        for key in ("tls.cert", "tls.key", "users", "users_key"):
            section, _, field = key.rpartition(".")
            value = getattr(self.tls if section else self, field)
            if not value:
                raise ConfigError(f"key '{key}': must not be empty")
        if not self.allow:
            raise ConfigError("key 'allow': name at least one network (e.g. \"127.0.0.1/32\")")
        for n, cidr in enumerate(self.allow):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(
                    f"key 'allow[{n}]': not a network: {cidr!r} (e.g. \"10.0.0.0/24\")"
                ) from None
        if not self.nodes:
            raise ConfigError("key 'nodes': name at least one [[nodes]] table")
        seen: set[str] = set()
        for n, node in enumerate(self.nodes):
            if not node.name or not all(c.isalnum() or c in "-_." for c in node.name):
                raise ConfigError(
                    f"key 'nodes[{n}].name': letters, digits, '-', '_', '.'; got {node.name!r}"
                )
            if node.name in seen:
                raise ConfigError(f"key 'nodes[{n}].name': duplicate node name {node.name!r}")
            seen.add(node.name)
            if (node.socket is None) == (node.journal is None):
                raise ConfigError(f"key 'nodes[{n}]': give exactly one of 'socket' or 'journal'")
        _range("session_ttl_s", self.session_ttl_s, 60, _MAX_TTL_S)
        _range("idle_timeout_s", self.idle_timeout_s, 30, self.session_ttl_s)
        _range("step_up_s", self.step_up_s, 10, 3600)
        _range("login.max_per_source_per_min", self.login.max_per_source_per_min, 1, 10_000)
        _range("login.source_lockout_s", self.login.source_lockout_s, 1, _MAX_TTL_S)
        _range("poll_interval_ms", self.poll_interval_ms, 50, 60_000)
        _range("max_event_clients", self.max_event_clients, 1, 10_000)
        _range("max_event_clients_per_operator", self.max_event_clients_per_operator, 1, 10_000)
        _range("max_body_bytes", self.max_body_bytes, 1024, 1024 * 1024)
        _range("equity_points", self.equity_points, 10, 100_000)
        if not 0.1 <= self.node_timeout_s <= 120:
            raise ConfigError(
                f"key 'node_timeout_s': must be between 0.1 and 120, got {self.node_timeout_s}"
            )

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(c, strict=False) for c in self.allow]

    def node_sockets(self, base_dir: Path) -> dict[str, Path]:
        """Each node's control socket, by name (relative paths from ``base_dir``)."""
        found: dict[str, Path] = {}
        for node in self.nodes:
            if node.socket is not None:
                found[node.name] = resolve_path(base_dir, node.socket)
            else:
                assert node.journal is not None
                found[node.name] = socket_path(resolve_path(base_dir, node.journal))
        return found


def _range(key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"key '{key}': must be between {low} and {high}, got {value}")


def load_console_config(path: Path) -> tuple[ConsoleConfig, Path]:
    """The console config at ``path`` and the directory its relative paths start from.
    ``ConfigError`` names the file and the key; the TLS files must exist."""
    config = load_config(path, ConsoleConfig)
    base = path.resolve().parent
    for key, value in (("tls.cert", config.tls.cert), ("tls.key", config.tls.key)):
        if not resolve_path(base, value).is_file():
            raise ConfigError(
                f"{path}: key '{key}': file not found: {resolve_path(base, value)} (the "
                "console serves HTTPS only; `bastion console init` makes a certificate)"
            )
    return config, base


def read_users_key(path: Path) -> bytes:
    """The users key from ``path``: 64 hex characters, in a file only its owner may read
    (``InsecureFile`` otherwise, before it is read)."""
    try:
        ensure_private(path, "users key file")
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"users key file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"users key file {path}: cannot read it: {e}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"users key file {path}: not a {KEY_BYTES}-byte key in hex "
            "(`bastion console init` exports it from the vault)"
        )
    redact.register(text)
    return key
