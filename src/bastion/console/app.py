"""The console's ASGI application: the routes of the contract behind the guards.

``create_app`` wires one ``Console`` (``bastion.console.state``) into a Starlette app
and wraps it in the guards (``bastion.console.guards``): the object returned is what
uvicorn serves; its ``routes`` are the Starlette routes, which the tests enumerate.
The single-page app is served from ``static_dir`` (the package's ``static/``): ``/``
and ``/login`` are its ``index.html``; a console installed without it answers 404.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.clock import Clock
from bastion.console import api, auth
from bastion.console.actions import ACTIONS, PUBLIC, READS, SESSION
from bastion.console.client import NodeClient
from bastion.console.config import ConsoleConfig
from bastion.console.guards import Allowlist, RequestShape, SecurityHeaders
from bastion.console.state import Console, error
from bastion.security.store import UserStore
from bastion.tasks import TaskManager

__all__ = ["ConsoleApp", "create_app", "package_static_dir"]


def package_static_dir() -> Path:
    """The single-page app shipped with the package."""
    return Path(str(resources.files("bastion.console").joinpath("static")))


class ConsoleApp:
    """The guarded ASGI app; ``console`` its parts, ``routes`` its Starlette routes."""

    def __init__(self, console: Console, starlette: Starlette, guarded: ASGIApp) -> None:
        self.console = console
        self.starlette = starlette
        self._guarded = guarded

    @property
    def routes(self) -> list[BaseRoute]:
        return self.starlette.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guarded(scope, receive, send)


def _page(console: Console) -> api.Endpoint:
    async def page(_request: Request) -> Response:
        index = console.static_dir / "index.html"
        if not index.is_file():
            return error(404, "the console's pages are not installed")
        return FileResponse(index, media_type="text/html; charset=utf-8")

    return page


async def _not_installed(scope: Scope, receive: Receive, send: Send) -> None:
    await error(404, "not found")(scope, receive, send)


def _routes(console: Console) -> list[BaseRoute]:
    static: ASGIApp = (
        StaticFiles(directory=console.static_dir) if console.static_dir.is_dir() else _not_installed
    )
    page = _page(console)
    reads = {
        "nodes": api.nodes,
        "node": api.node,
        "equity": api.equity,
        "audit": api.audit,
        "events": api.events,
    }
    sessions = {"me": auth.me_route, "logout": auth.logout, "step_up": auth.step_up}
    routes: list[BaseRoute] = [
        Route(PUBLIC["index"], page, methods=["GET"], name="index"),
        Route(PUBLIC["login_page"], page, methods=["GET"], name="login_page"),
        Route(PUBLIC["login"], auth.login, methods=["POST"], name="login"),
        Mount(PUBLIC["static"], app=static, name="static"),
    ]
    routes += [
        Route(path, sessions[name], methods=[method], name=name)
        for name, (method, path) in SESSION.items()
    ]
    routes += [Route(path, reads[name], methods=["GET"], name=name) for name, path in READS.items()]
    routes += [
        Route(a.path, api.action_endpoint(a), methods=["POST"], name=a.name) for a in ACTIONS
    ]
    return routes


def create_app(
    config: ConsoleConfig,
    *,
    store: UserStore,
    clients: Mapping[str, NodeClient],
    clock: Clock,
    static_dir: Path | None = None,
    poll: bool = True,
) -> ConsoleApp:
    """The console for ``config``: sessions over ``store``, actions to ``clients``.
    ``poll``: watch the nodes (off in tests that poll by hand)."""
    console = Console.build(
        config,
        store=store,
        clients=dict(clients),
        clock=clock,
        static_dir=static_dir or package_static_dir(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        tasks = TaskManager()
        if poll:
            console.poller.start()
        tasks.spawn("console-auth-recorder", console.recorder.run())
        try:
            yield
        finally:
            await console.poller.stop()
            await tasks.cancel_all()
            await console.recorder.close(console.config.node_timeout_s)

    starlette = Starlette(routes=_routes(console), lifespan=lifespan)
    # Starlette answers a path off by a trailing slash with a redirect to a URL built
    # from the Host header: a forged Host would choose where the browser goes. 404.
    starlette.router.redirect_slashes = False
    starlette.state.console = console
    guarded = SecurityHeaders(
        Allowlist(RequestShape(starlette, max_body_bytes=config.max_body_bytes), config.networks())
    )
    return ConsoleApp(console, starlette, guarded)
