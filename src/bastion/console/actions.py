"""The one table of what each console route needs, and what each action sends a node.

``READS`` are the GET routes that need ``Command.READ``; ``ACTIONS`` the POST routes
that change something: each with the ``Command`` the role matrix is asked about
(which may depend on the body: a kill with ``flatten`` is ``FLATTEN``), whether it
needs a fresh step-up, its body's schema and the control-socket request it becomes.
``PUBLIC`` and ``SESSION`` name the routes that need no role. The tests enumerate the
app's routes against these, so a route cannot be added without saying what it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar

import msgspec

from bastion.security.roles import Command

__all__ = [
    "ACTIONS",
    "PUBLIC",
    "READS",
    "SESSION",
    "STRATEGY_ACTIONS",
    "Action",
    "BodyError",
    "LoginBody",
    "StepUpBody",
    "decode_body",
]

T = TypeVar("T", bound=msgspec.Struct)

Why = Annotated[str, msgspec.Meta(max_length=1000)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=30 * 86_400)]


class _Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class LoginBody(_Body, frozen=True):
    name: Annotated[str, msgspec.Meta(max_length=64)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]
    totp: Annotated[str, msgspec.Meta(max_length=16)]


class StepUpBody(_Body, frozen=True):
    totp: Annotated[str, msgspec.Meta(max_length=16)]


class EmptyBody(_Body, frozen=True):
    pass


class KillBody(_Body, frozen=True):
    why: Why
    flatten: bool = False
    venue: Text | None = None


class ResumeBody(_Body, frozen=True):
    why: Why
    venue: Text | None = None
    instrument: Text | None = None


class PauseBody(_Body, frozen=True):
    instrument: Text
    for_s: Seconds
    why: Why


class WhyBody(_Body, frozen=True):
    why: Why


class OverrideBody(_Body, frozen=True):
    path: Text
    value: Text
    for_s: Seconds
    why: Why


class CeilingBody(_Body, frozen=True):
    path: Text
    value: Text
    why: Why


class BodyError(ValueError):
    """A request body that is not the route's JSON; the message names the field."""


def decode_body(raw: bytes, schema: type[T]) -> T:
    """``raw`` as ``schema``, or ``BodyError`` naming the field at fault."""
    try:
        return msgspec.json.decode(raw or b"{}", type=schema)
    except msgspec.ValidationError as e:
        message, at, where = str(e).partition(" - at `$")
        field: str | None = where.rstrip("`").lstrip(".") if at else None
        if field is None and "field `" in message:  # missing or unknown: named in the text
            field = message.split("field `", 1)[1].rsplit("`", 1)[0]
        text = message[:1].lower() + message[1:]
        raise BodyError(text if field is None else f"field '{field}': {text}") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise BodyError("the body is not valid JSON") from None


Params = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Action:
    """A POST route that sends one command to a node on an operator's behalf."""

    name: str
    path: str
    body: type[_Body]
    step_up: bool
    command: Callable[[Any, Params], Command]
    request: Callable[[Any, Params], dict[str, Any]]


STRATEGY_ACTIONS: Final[Mapping[str, tuple[Command, str]]] = {
    "enable": (Command.STRATEGY_ENABLE, "enable"),
    "disable": (Command.STRATEGY_DISABLE, "disable"),
    "start": (Command.STRATEGY_START, "strategy_start"),
    "stop": (Command.STRATEGY_STOP, "strategy_stop"),
}
"""A strategy route's ``{action}``: its command and the node's ``cmd``."""


def _some(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


ACTIONS: Final[tuple[Action, ...]] = (
    Action(
        "kill",
        "/api/nodes/{node}/kill",
        KillBody,
        True,
        lambda b, _p: Command.FLATTEN if b.flatten else Command.KILL,
        lambda b, _p: _some(cmd="kill", flatten=b.flatten, why=b.why, venue=b.venue),
    ),
    Action(
        "resume",
        "/api/nodes/{node}/resume",
        ResumeBody,
        True,
        lambda b, _p: Command.RESUME if b.instrument is None else Command.RESUME_INSTRUMENT,
        lambda b, _p: _some(cmd="resume", why=b.why, venue=b.venue, instrument=b.instrument),
    ),
    Action(
        "pause",
        "/api/nodes/{node}/pause",
        PauseBody,
        False,
        lambda _b, _p: Command.PAUSE_INSTRUMENT,
        lambda b, _p: {
            "cmd": "pause_instrument",
            "instrument": b.instrument,
            "for_s": b.for_s,
            "why": b.why,
        },
    ),
    Action(
        "strategy",
        "/api/nodes/{node}/strategies/{strategy}/{action}",
        WhyBody,
        False,
        lambda _b, p: STRATEGY_ACTIONS[p["action"]][0],
        lambda b, p: {
            "cmd": STRATEGY_ACTIONS[p["action"]][1],
            "strategy": p["strategy"],
            "why": b.why,
        },
    ),
    Action(
        "override",
        "/api/nodes/{node}/overrides",
        OverrideBody,
        True,
        lambda _b, _p: Command.RISK_SET,
        lambda b, _p: {
            "cmd": "risk_set",
            "path": b.path,
            "value": b.value,
            "for_s": b.for_s,
            "why": b.why,
        },
    ),
    Action(
        "override_clear",
        "/api/nodes/{node}/overrides/{id}/clear",
        WhyBody,
        False,
        lambda _b, _p: Command.RISK_CLEAR,
        lambda b, p: {"cmd": "risk_clear", "id": p["id"], "why": b.why},
    ),
    Action(
        "ceiling",
        "/api/nodes/{node}/ceilings",
        CeilingBody,
        True,
        lambda _b, _p: Command.RAISE_CEILING,
        lambda b, _p: {"cmd": "raise_ceiling", "path": b.path, "value": b.value, "why": b.why},
    ),
    Action(
        "approve",
        "/api/nodes/{node}/approvals/{id}/approve",
        WhyBody,
        True,
        lambda _b, _p: Command.APPROVE,
        lambda b, p: {"cmd": "approve", "id": p["id"], "why": b.why},
    ),
    Action(
        "alert_ack",
        "/api/nodes/{node}/alerts/{id}/ack",
        WhyBody,
        False,
        lambda _b, _p: Command.ALERT_ACK,
        lambda b, p: {"cmd": "alert_ack", "id": p["id"], "why": b.why},
    ),
)

READS: Final[Mapping[str, str]] = {
    "nodes": "/api/nodes",
    "node": "/api/nodes/{node}",
    "equity": "/api/nodes/{node}/equity",
    "audit": "/api/nodes/{node}/audit",
    "events": "/api/events",
}
"""The GET routes that need ``Command.READ``, by route name."""

SESSION: Final[Mapping[str, tuple[str, str]]] = {
    "me": ("GET", "/api/me"),
    "logout": ("POST", "/api/logout"),
    "step_up": ("POST", "/api/step-up"),
}
"""The routes that need a session (and CSRF for a POST) but no role."""

PUBLIC: Final[Mapping[str, str]] = {
    "index": "/",
    "login_page": "/login",
    "static": "/static",
    "login": "/api/login",
}
"""The routes anyone allowed to connect may use: the page itself and signing in."""
