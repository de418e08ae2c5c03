"""``bastion console CONFIG``: the console app from its config, served by uvicorn over
TLS only.

The process holds the operator store and its key, and nothing else secret: no vault,
no venue credential. uvicorn is told to trust no proxy header (``X-Forwarded-For``
would otherwise let a client choose the address the allowlist checks) and to send no
``Server`` header.
"""

from __future__ import annotations

import socket
from pathlib import Path

import structlog
import uvicorn

from bastion.clock import Clock, LiveClock
from bastion.config import resolve_path
from bastion.console.app import ConsoleApp, create_app
from bastion.console.client import NodeClient
from bastion.console.config import ConsoleConfig, load_console_config, read_users_key
from bastion.security.store import UserStore

__all__ = ["build_app", "serve", "uvicorn_server"]

log = structlog.get_logger("bastion.console.server")


def build_app(
    config: ConsoleConfig,
    base_dir: Path,
    *,
    clock: Clock,
    static_dir: Path | None = None,
) -> ConsoleApp:
    """The console app for ``config`` (relative paths from ``base_dir``)."""
    key = read_users_key(resolve_path(base_dir, config.users_key))
    store = UserStore(
        resolve_path(base_dir, config.users), key, clock=clock, config=config.users_config
    )
    clients = {
        name: NodeClient(name, path, timeout_s=config.node_timeout_s)
        for name, path in config.node_sockets(base_dir).items()
    }
    return create_app(config, store=store, clients=clients, clock=clock, static_dir=static_dir)


def uvicorn_server(app: ConsoleApp, config: ConsoleConfig, base_dir: Path) -> uvicorn.Server:
    """A uvicorn server for ``app``: HTTPS with the config's certificate, nothing else."""
    settings = uvicorn.Config(
        app,
        host=config.listen.host,
        port=config.listen.port,
        ssl_certfile=str(resolve_path(base_dir, config.tls.cert)),
        ssl_keyfile=str(resolve_path(base_dir, config.tls.key)),
        proxy_headers=False,
        server_header=False,
        forwarded_allow_ips="",
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(settings)


def serve(path: Path, *, sockets: list[socket.socket] | None = None) -> None:
    """Run the console of the config at ``path`` until interrupted."""
    config, base_dir = load_console_config(path)
    app = build_app(config, base_dir, clock=LiveClock())  # the process's one clock
    server = uvicorn_server(app, config, base_dir)
    log.info(
        "console_listening",
        url=f"https://{config.listen.host}:{config.listen.port}/",
        nodes=sorted(app.console.clients),
    )
    server.run(sockets=sockets)
