"""Who is at the other end of the control socket: the kernel says, not the client.

On a Unix socket the kernel reports the peer's uid, gid and pid (``SO_PEERCRED``: the
process that connected, as it was then; ``peer_credentials``). ``Identities`` turns the
uid into an ``Operator``:

- with an operator store (``[access]`` in the config): the operator whose ``os_uid``
  is that uid (``UserStore.by_uid``, read afresh for every request, so a disabled
  operator is refused from the next request on, without a restart); a disabled one is
  refused, an unmapped uid is refused;
- without one (a one-person paper desk): only the node's own uid, as the built-in
  *owner*, named after that account (``pwd``) and holding every role; any other uid is
  refused.

A name the client sends is never read: a request carrying ``who`` is refused
(``bastion.node.control``). The one exception is a console (``bastion console``, a
process that signs operators in with password and TOTP): a request from a uid listed in
``[access] consoles`` may carry ``on_behalf`` (``identify_delegated``), and is then the
store's operator of that name (who must exist, be enabled and not be locked out; their
roles and strategies are the store's), with ``source`` ``console <address> (uid N)``.
From any other uid, ``on_behalf`` is refused. A console's request without
``on_behalf`` is its own operator's when the store maps its uid to one, else the
console itself (``CONSOLE_READER``): a viewer, which may read (the console's polling of
``view`` for every browser at once) and do nothing else.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from collections.abc import Callable, Collection
from typing import Final, NamedTuple, Protocol

import msgspec
import structlog

from bastion.errors import BastionError
from bastion.security.roles import Command, Role, allowed_any

__all__ = [
    "CONSOLE_READER",
    "SOURCE_LOCAL",
    "Identities",
    "Operator",
    "PeerCredentials",
    "UsersByUid",
    "account_name",
    "peer_credentials",
]

log = structlog.get_logger("bastion.node.identity")

SOURCE_LOCAL: Final = "local socket"
CONSOLE_READER: Final = "console"
"""The name of a console's own, read-only, identity (no ``on_behalf``, no operator)."""
_UCRED: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid


class PeerCredentials(NamedTuple):
    """What the kernel says of the process at the other end of a Unix socket."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: object) -> PeerCredentials | None:
    """``SO_PEERCRED`` of ``sock`` (a socket, or the wrapper asyncio's
    ``get_extra_info("socket")`` hands out); None when the kernel does not say."""
    getsockopt = getattr(sock, "getsockopt", None)
    if getsockopt is None:
        return None
    try:
        raw = getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    if not isinstance(raw, bytes) or len(raw) != _UCRED.size:
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


class Operator(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated operator: their name and roles, as the store (or the built-in
    owner) has them, and the process that asks (``uid``, ``pid``) over ``source``."""

    name: str
    roles: tuple[Role, ...]
    strategies: tuple[str, ...] = ()
    uid: int
    pid: int
    source: str = SOURCE_LOCAL
    owner: bool = False
    """The built-in owner of a node without an operator store."""
    delegated: bool = False
    """Named by a console (``on_behalf``): ``uid`` and ``pid`` are the console's."""

    def may(self, command: Command, *, strategy: str | None = None) -> bool:
        return allowed_any(self.roles, command, strategy=strategy, assigned=self.strategies)

    @property
    def role_names(self) -> list[str]:
        return [r.value for r in self.roles]

    def describe(self) -> str:
        """``alice (risk_officer)``: how a refusal names them."""
        return f"{self.name} ({', '.join(self.role_names)})"

    def whoami(self) -> dict[str, object]:
        """What ``bastion status`` shows of the asker."""
        return {
            "operator": self.name,
            "roles": self.role_names,
            "strategies": list(self.strategies),
            "uid": self.uid,
            "source": self.source,
            "owner": self.owner,
            "delegated": self.delegated,
        }


class UsersByUid(Protocol):
    """What identification needs of the operator store (``UserStore``)."""

    def by_uid(self, os_uid: int) -> _User | None: ...

    def find(self, name: str) -> _User | None: ...


class _User(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def roles(self) -> tuple[Role, ...]: ...

    @property
    def strategies(self) -> tuple[str, ...]: ...

    @property
    def os_uid(self) -> int | None: ...

    @property
    def disabled(self) -> bool: ...

    def locked(self, now_ns: int) -> bool: ...


def account_name(uid: int) -> str:
    """The OS account name of ``uid`` (``uid N`` when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


class Identities:
    """Peers to operators for one node: from ``store`` (None: the owner alone, the
    account ``owner_uid``, by default the node's own). ``consoles``: the uids that may
    name the operator they act for (``[access] consoles``); ``now_ns``: the clock a
    lockout is read against."""

    def __init__(
        self,
        store: UsersByUid | None,
        *,
        owner_uid: int | None = None,
        consoles: Collection[int] = (),
        now_ns: Callable[[], int],
    ) -> None:
        self.store = store
        self.owner_uid = os.geteuid() if owner_uid is None else owner_uid
        self.consoles = frozenset(consoles)
        self._now_ns = now_ns
        self._owner_name = account_name(self.owner_uid)

    def is_console(self, peer: PeerCredentials) -> bool:
        """Whether ``peer`` runs as a console's account (``[access] consoles``)."""
        return peer.uid in self.consoles

    def identify_delegated(self, peer: PeerCredentials, name: str, source: str) -> Operator | str:
        """The store's operator ``name``, for whom the console at ``peer`` asks from
        ``source``; or why not (the peer is no console, the operator is unknown, disabled
        or locked out)."""
        if not self.is_console(peer):
            return (
                f"uid {peer.uid} ({account_name(peer.uid)}) is not a console ([access] "
                f"consoles) and may not act on behalf of {name}"
            )
        if self.store is None:
            return "this node has no operators ([access]): nobody to act on behalf of"
        try:
            user = self.store.find(name)
        except BastionError as error:
            log.error("operator_store_unreadable", error=str(error))
            return f"the operator store cannot be read ({error})"
        if user is None:
            return f"no operator {name!r} in the store"
        if user.disabled:
            return f"operator {name} is disabled"
        if user.locked(self._now_ns()):
            return f"operator {name} is locked out"
        return Operator(
            name=user.name,
            roles=tuple(user.roles),
            strategies=tuple(user.strategies),
            uid=peer.uid,
            pid=peer.pid,
            source=f"console {source} (uid {peer.uid})",
            delegated=True,
        )

    @property
    def mode(self) -> str:
        """``operators`` (a store) or ``owner only``."""
        return "owner only" if self.store is None else "operators"

    def identify(self, peer: PeerCredentials) -> Operator | str:
        """The operator at ``peer``, or why there is none (the refusal's reason)."""
        if self.store is None:
            if peer.uid != self.owner_uid:
                return (
                    f"uid {peer.uid} ({account_name(peer.uid)}) is not the node's account "
                    "and this node has no operators ([access]): only its owner may command it"
                )
            return Operator(
                name=self._owner_name,
                roles=tuple(Role),
                uid=peer.uid,
                pid=peer.pid,
                owner=True,
            )
        try:
            user = self.store.by_uid(peer.uid)
        except BastionError as error:  # a damaged or unreadable store: nobody is known
            log.error("operator_store_unreadable", error=str(error))
            return f"the operator store cannot be read ({error})"
        if user is None:
            if self.is_console(peer):  # the console's own polling: reads only
                return Operator(
                    name=CONSOLE_READER,
                    roles=(Role.VIEWER,),
                    uid=peer.uid,
                    pid=peer.pid,
                    source=f"console (uid {peer.uid})",
                )
            return f"uid {peer.uid} ({account_name(peer.uid)}) is not mapped to an operator"
        if user.disabled:
            return f"operator {user.name} (uid {peer.uid}) is disabled"
        return Operator(
            name=user.name,
            roles=tuple(user.roles),
            strategies=tuple(user.strategies),
            uid=peer.uid,
            pid=peer.pid,
        )

    def current(self, operator: Operator) -> Operator | str:
        """``operator`` as the store has them now (their roles may have changed, they
        may be disabled, their uid mapped to someone else), for an approval of their
        earlier request; or why they are no longer an operator. One a console named is
        looked up by name (the console's uid is shared by all its operators)."""
        if operator.delegated:
            peer = PeerCredentials(pid=operator.pid, uid=operator.uid, gid=-1)
            source = operator.source.removeprefix("console ").rpartition(" (uid ")[0]
            return self.identify_delegated(peer, operator.name, source)
        found = self.identify(PeerCredentials(pid=operator.pid, uid=operator.uid, gid=-1))
        if isinstance(found, Operator) and found.name != operator.name:
            return f"uid {operator.uid} is operator {found.name} now, not {operator.name}"
        return found
