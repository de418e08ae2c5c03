"""Four-eyes arming: an admin's request to arm a live node, and a second admin's
approval that turns it into the arming (``bastion.live.arming``).

On a desk with operators (``[access]``), ``bastion arm`` is given by an admin: the
local account running it (``invoking_uid``) must map to an enabled operator allowed
``arm_live`` (``arming_admin``), who then steps up with a fresh TOTP code before
anything is written (``UserStore.verify_totp``; ``require_step_up`` turns a refusal
into ``NotArmed``), requester and approver alike. With four-eyes on for ``arm_live``
(the default of a live node), ``bastion arm CONFIG --why TEXT`` does not arm: it
writes a request beside the journal (``<journal>.arm-request``, 0600) naming the
config's SHA-256, the node, who asked (name and uid) and why, valid for the approval
window, MACed with the live vault's ``live/arm`` key like an arming. ``bastion arm
CONFIG --approve ID --why TEXT`` by another admin (another name and another uid) within
the window, for the same config and node, verifies it (``approve``), writes the arming
(who: ``alice, approved by bob``) and deletes the request, so it cannot be approved
twice. A new request replaces a pending one. The node journals the arming's who and why
(``LiveArmed``) when it starts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import msgspec

from bastion.errors import NotArmed
from bastion.security.roles import Command, Role, allowed_any
from bastion.security.users import LoginReason, LoginResult
from bastion.vault.files import write_private

__all__ = [
    "ArmRequest",
    "ArmRequestFile",
    "approve",
    "arming_admin",
    "invoking_uid",
    "new_request",
    "read_request",
    "request_path",
    "require_step_up",
    "write_request",
]

REQUEST_VERSION: Final = 1
MAX_REQUEST_BYTES: Final = 16 * 1024
_DOMAIN: Final = b"bastion arming request v1\n"


class ArmRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an admin asked: arm ``node_id`` with the config ``config_sha256`` for
    ``valid_s`` once approved; the request itself expires at ``expires_ns``."""

    version: int = REQUEST_VERSION
    request_id: str
    node_id: str
    config_sha256: str
    requested_by: str
    requested_uid: int
    why: str
    valid_s: float
    requested_at_ns: int
    expires_ns: int


class ArmRequestFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    request: ArmRequest
    mac: str


class _Operator(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def roles(self) -> tuple[Role, ...]: ...

    @property
    def disabled(self) -> bool: ...


def invoking_uid(environ: Mapping[str, str] | None = None) -> int:
    """The local account of the person running ``bastion arm``: the one that ran
    ``sudo`` when run through it (``sudo -u NODE bastion arm``: ``SUDO_UID``, which
    sudo sets itself), else the real uid.

    Only the node's account can open the live vault, so each admin arms through sudo
    from their own account. ``SUDO_UID`` is trusted as far as that account is: whoever
    can run as it can set it, and can as well MAC an arming with the vault's key."""
    env = os.environ if environ is None else environ
    sudo = env.get("SUDO_UID", "")
    return int(sudo) if sudo.isdigit() else os.getuid()


def arming_admin(user: _Operator | None, uid: int, account: str) -> _Operator:
    """``user`` (the operator mapped to ``uid``, the local ``account``) if they may arm
    a live node; ``NotArmed`` saying why not."""
    if user is None:
        raise NotArmed(
            f"uid {uid} ({account}) is not mapped to an operator: only an admin arms a "
            "live node (bastion users add NAME --role admin --uid UID)"
        )
    if user.disabled:
        raise NotArmed(f"operator {user.name} (uid {uid}) is disabled")
    if not allowed_any(user.roles, Command.ARM_LIVE):
        roles = ", ".join(r.value for r in user.roles)
        raise NotArmed(f"{user.name} ({roles}) may not {Command.ARM_LIVE.value}")
    return user


_STEP_UP_REFUSALS: Final = {
    LoginReason.BAD_TOTP: "the code is wrong",
    LoginReason.TOTP_REPLAYED: "the code was used already (each is good once): give the next",
    LoginReason.TOTP_EXPIRED: "the code is too old: give the current one (check the phone's clock)",
    LoginReason.MFA_NOT_ENROLLED: "no second factor is enrolled (bastion users reset-mfa {name})",
    LoginReason.DISABLED: "the operator is disabled",
    LoginReason.UNKNOWN_USER: "the operator is no longer in the store",
}


def require_step_up(result: LoginResult, uid: int) -> None:
    """Nothing when the arming admin's step-up (``UserStore.verify_totp``, whose outcome
    is ``result``) passed; ``NotArmed`` naming the operator and why not, never the code."""
    if result.ok:
        return
    name = result.name
    if result.reason is LoginReason.LOCKED:
        why = f"locked out until {_utc(result.locked_until_ns)} UTC after repeated refusals"
    else:
        why = _STEP_UP_REFUSALS.get(result.reason, "refused").format(name=name)
    if result.locked_out:  # this refusal started the lockout
        why += f"; {name} is now locked out until {_utc(result.locked_until_ns)} UTC"
    locked = result.reason is LoginReason.LOCKED or result.locked_out
    hint = f" (an admin's `bastion users enable {name}` ends the lockout)" if locked else ""
    raise NotArmed(f"step-up refused for {name} (uid {uid}): {why}; nothing armed{hint}")


def _utc(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def request_path(journal: Path) -> Path:
    """Where a request to arm the node journaling to ``journal`` waits."""
    return journal.with_name(journal.name + ".arm-request")


def _mac(key: bytes, request: ArmRequest) -> str:
    return hmac.new(key, _DOMAIN + msgspec.json.encode(request), hashlib.sha256).hexdigest()


def new_request(
    *,
    node_id: str,
    config_sha256: str,
    requested_by: str,
    requested_uid: int,
    why: str,
    valid_s: float,
    now_ns: int,
    window_s: float,
) -> ArmRequest:
    """A request from ``now_ns``, to be approved within ``window_s`` seconds."""
    return ArmRequest(
        request_id=os.urandom(6).hex(),
        node_id=node_id,
        config_sha256=config_sha256,
        requested_by=requested_by,
        requested_uid=requested_uid,
        why=why,
        valid_s=float(valid_s),  # as it decodes: the MAC covers the encoding
        requested_at_ns=now_ns,
        expires_ns=now_ns + round(window_s * 1e9),
    )


def write_request(path: Path, request: ArmRequest, key: bytes) -> None:
    """Store ``request`` MACed with ``key`` at ``path`` (0600; a pending one is replaced)."""
    data = ArmRequestFile(request=request, mac=_mac(key, request))
    write_private(path, msgspec.json.format(msgspec.json.encode(data)) + b"\n")


def read_request(path: Path) -> ArmRequestFile:
    """The request at ``path``; ``NotArmed`` when there is none or it is not one."""
    try:
        data = path.read_bytes()[: MAX_REQUEST_BYTES + 1]
    except FileNotFoundError:
        raise NotArmed(
            f"no arming request is pending ({path}): it was approved or replaced already, "
            "or never made; an admin asks with `bastion arm CONFIG --why TEXT`"
        ) from None
    except OSError as error:
        raise NotArmed(f"arming request {path}: cannot read it: {error.strerror}") from None
    try:
        if len(data) > MAX_REQUEST_BYTES:
            raise msgspec.DecodeError("too large")
        return msgspec.json.decode(data, type=ArmRequestFile)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise NotArmed(f"arming request {path} is not valid ({error}); ask again") from None


def approve(
    stored: ArmRequestFile,
    *,
    key: bytes,
    request_id: str,
    approver: str,
    approver_uid: int,
    node_id: str,
    config_sha256: str,
    now_ns: int,
) -> ArmRequest:
    """The request, if ``approver`` (at ``approver_uid``) may approve it now as the
    second admin; ``NotArmed`` saying why not."""
    request = stored.request
    if not hmac.compare_digest(_mac(key, request), stored.mac):
        raise NotArmed(
            "the arming request's MAC does not match the live vault's arming key (forged, "
            "edited, or made with another vault); ask again"
        )
    if request.version != REQUEST_VERSION:
        raise NotArmed(f"arming request version {request.version} is not {REQUEST_VERSION}")
    if request.request_id != request_id:
        raise NotArmed(
            f"the pending arming request is {request.request_id}, not {request_id} (a newer "
            "request replaced it, or the id is mistyped)"
        )
    if request.node_id != node_id or request.config_sha256 != config_sha256:
        raise NotArmed(
            "the arming request is for another config or node (the config changed since "
            "it was asked); ask again"
        )
    if now_ns >= request.expires_ns:
        ago = (now_ns - request.expires_ns) / 1e9
        raise NotArmed(
            f"the arming request {request_id} expired {ago:.0f} s ago; "
            f"{request.requested_by} asks again"
        )
    if approver == request.requested_by or approver_uid == request.requested_uid:
        raise NotArmed(
            f"{approver} asked for arming {request_id} and may not approve it: a second, "
            "different admin must"
        )
    return request
