"""Opening a NATS connection from a ``NatsConnection``: credentials from the vault, TLS,
reconnect settings, and the connection's life logged (``nats_disconnected``,
``nats_reconnected``, ``nats_error``). The first connection is retried until it
succeeds: a handler or node started before its NATS server waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from bastion.feeds.nats.config import NatsConnection

log = structlog.get_logger("bastion.feeds.nats")


async def connect(
    config: NatsConnection,
    *,
    key: str,
    name: str,
    base_dir: Path,
    secrets: Any = None,
    on_reconnected: Callable[[], Awaitable[None]] | None = None,
) -> Any:
    """A connected ``nats.aio.client.Client`` (retried every ``reconnect_wait_ms`` until
    the first connection succeeds). ``ConfigError`` for a secret or TLS file that
    cannot be read: waiting would not fix it."""
    from nats.aio.client import Client  # nats-py: loaded by the processes that use it
    from nats.errors import NoServersError

    options: dict[str, Any] = {
        "servers": list(config.servers),
        "name": name,
        "connect_timeout": config.connect_timeout_ms / 1000,
        "reconnect_time_wait": config.reconnect_wait_ms / 1000,
        "max_reconnect_attempts": config.max_reconnect_attempts,
        "ping_interval": config.ping_interval_ms / 1000,
        "max_outstanding_pings": config.max_outstanding_pings,
        "allow_reconnect": True,
    }
    password = config.secret("password", key, secrets)
    token = config.secret("token", key, secrets)
    if password is not None:
        options["user"] = config.user
        options["password"] = password.reveal()
    elif config.user is not None:
        options["user"] = config.user
    if token is not None:
        options["token"] = token.reveal()
    if config.tls is not None:
        tls = config.tls.client(base_dir, f"{key}.tls", secrets=secrets)
        options["tls"] = tls.context
        if tls.server_hostname is not None:
            options["tls_hostname"] = tls.server_hostname

    async def error_cb(error: Exception) -> None:
        log.warning("nats_error", connection=name, error=f"{type(error).__name__}: {error}")

    async def disconnected_cb() -> None:
        log.warning("nats_disconnected", connection=name)

    async def reconnected_cb() -> None:
        log.info("nats_reconnected", connection=name, server=_server(client))
        if on_reconnected is not None:
            await on_reconnected()

    options.update(
        error_cb=error_cb, disconnected_cb=disconnected_cb, reconnected_cb=reconnected_cb
    )
    attempts = 0
    while True:
        client = Client()
        try:
            await client.connect(**options)
        except (NoServersError, OSError, TimeoutError) as error:
            attempts += 1
            if attempts == 1 or attempts % 20 == 0:
                log.warning(
                    "nats_unreachable",
                    connection=name,
                    servers=config.servers,
                    attempts=attempts,
                    error=f"{type(error).__name__}: {error}",
                )
            await asyncio.sleep(config.reconnect_wait_ms / 1000)
            continue
        log.info("nats_connected", connection=name, server=_server(client), attempts=attempts + 1)
        return client


def _server(client: Any) -> str:
    url = getattr(client, "connected_url", None)
    return "" if url is None else f"{url.hostname}:{url.port}"
