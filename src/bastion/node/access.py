"""The control socket's access for one node, from its config: the operators
(``[access]``: the store beside the vault, read with the vault's ``users/key``; none:
the node's own account only), the socket's mode, and the guard every request passes
(``bastion.node.authz.CommandGuard``)."""

from __future__ import annotations

from pathlib import Path

from bastion.clock import Clock
from bastion.config import PaperConfig
from bastion.errors import ConfigError
from bastion.node.actions import NodeOperator
from bastion.node.approvals import Approvals
from bastion.node.authz import CommandGuard
from bastion.node.control import SOCKET_MODE
from bastion.node.identity import Identities
from bastion.security.config import USERS_KEY, FourEyes
from bastion.vault._format import KEY_BYTES
from bastion.vault.refs import SecretNotFound, SecretSource

__all__ = ["command_guard", "node_identities", "socket_mode"]


def node_identities(
    config: PaperConfig, *, base_dir: Path, secrets: SecretSource | None, clock: Clock
) -> Identities:
    """Who may command the node: the operators of ``[access]``'s store, or (no
    ``[access]``) the node's own account. ``ConfigError`` when ``[access]`` is given but
    the vault has no operators, the store cannot be read, or it maps no local account."""
    access = config.access
    if access is None:
        return Identities(None, now_ns=clock.timestamp_ns)
    vault = config.vault.resolve(base_dir)
    try:
        if secrets is None:
            raise SecretNotFound(USERS_KEY)
        key = bytes.fromhex(secrets.get(USERS_KEY).reveal())
    except (SecretNotFound, ValueError):
        raise ConfigError(
            f"key 'access': the vault {vault} holds no operators ({USERS_KEY}); add the "
            "first one mapped to a local account: bastion users add NAME --role "
            "risk_officer --uid UID --config CONFIG"
        ) from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"key 'access': the vault's {USERS_KEY} is not a {KEY_BYTES}-byte key")
    # the store's libraries (TOTP, Argon2) are loaded only by a node that has operators
    from bastion.security.store import UserStore

    store = UserStore(access.users.resolve(vault), key, clock=clock, config=access.users)
    mapped = [u for u in store.users() if u.os_uid is not None and not u.disabled]
    if not mapped:
        raise ConfigError(
            f"key 'access': no enabled operator in {store.path} is mapped to a local "
            "account, so nobody could command this node over its control socket "
            "(bastion users set-role NAME --role ROLE --uid UID)"
        )
    return Identities(store, consoles=access.consoles, now_ns=clock.timestamp_ns)


def socket_mode(config: PaperConfig) -> int:
    """0660 for a node whose operators are the store's (``[access] socket = "group"``),
    else 0600."""
    return SOCKET_MODE if config.access is None else config.access.socket_mode


def command_guard(
    operator: NodeOperator, *, identities: Identities, epoch: int, mode: str
) -> CommandGuard:
    """The guard in front of ``operator``'s commands (approval ids ``<epoch>.a<n>``)."""
    kernel = operator.kernel
    config = kernel.config
    access = config.access if isinstance(config, PaperConfig) else None

    def window_s(action: FourEyes) -> float:
        return 0.0 if access is None else access.four_eyes.window_s(action, mode)

    return CommandGuard(
        commands=operator,
        identities=identities,
        approvals=Approvals(clock=kernel.clock, id_prefix=f"{epoch}."),
        window_s=window_s,
        publish=kernel.bus.publish,
        commit=operator.committed,
        clock=kernel.clock,
    )
