"""The drill's recover-only node, logged on to the venues: the restored desk recovers
from its restored journal and reconciles its orders, fills and positions with each FIX
venue through a read-only session (``[dr.venue_sessions.NAME]``), exactly as
``bastion recover`` does with the desk's own session.

Why a session of its own: the desk's session is the live node's. Logging on with its
CompIDs would take the live session over (a newer fencing epoch), or be refused, and
would move its sequence numbers; a drill must never disturb the desk it tests. A
read-only session (a broker's drop-copy or query session; the venue simulator's
``[[read_only_sessions]]``) answers order status, mass status and positions for the
desk's account and refuses orders, and its sequence numbers are its own: the drill
asks for them to start at 1 (``reset_on_logon``) with a session store in the scratch
desk. Reconciliation then works by order status, as after any change of session
(``bastion.venues.fix.recovery``): no resend, fills never invented; an order the
venue works that the restored journal lacks is adopted (the backup's RPO showing),
a cumulative quantity or a position that differs is a mismatch.

What the drill's node is kept from: every FIX venue of the restored config must have
its read-only session (one without would log on as the live node: refused), whose
SenderCompID is none of the restored config's FIX sessions', in any case; the HA
member's lease (``[ha]``) is dropped (recover-only never takes one); recording and
backup shipping are dropped, monitoring and alerting do not run in recover-only; and
every local path (the journal, its control socket and anchors, the vault, the
strategies' files, which an inline strategy's import writes a bytecode cache beside)
must lie in the scratch desk, or a path the backup restored under ``outside/`` (a path
still pointing at the source desk is refused: the drill would write there). Each FIX
venue's session store is the drill's own, in the scratch desk, also when the drill
recovers without logging on (``offline_config``: its kernel still opens the stores). A
PostgreSQL journal is opened in the drill's scratch database, under the journal's own
name (its seals bind it).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec

from bastion.backup.config import DrVenueSessionConfig
from bastion.backup.pg_scratch import ScratchDatabase
from bastion.clock import Clock
from bastion.config import PaperConfig, load_config, resolve_path
from bastion.errors import BackupError, ConfigError
from bastion.journal.config import JournalConfig
from bastion.journal.keys import JournalKeys
from bastion.vault.config import load_secrets
from bastion.vault.refs import MemorySecrets, Secret, SecretNotFound, SecretSource
from bastion.venues.fix.config import CancelOnDisconnect, FixVenueConfig

DRILL_STORE: Final = "dr-drill/fix-{venue}.sqlite"
"""The drill's FIX session store, in the scratch desk (one per venue)."""
_SCRATCH_SECRET: Final = "dr/scratch-journal"
"""The scratch database's password, as the drill's node asks for it."""


class VenueRecovery(msgspec.Struct, kw_only=True):
    """What the drill's recover-only node found."""

    node_id: str
    positions: dict[str, Decimal]
    """The recovered positions (instrument units), before reconciliation."""
    reconciliation: dict[str, Any]
    """``bastion recover``'s reconciliation report (all venues summed)."""
    mismatches: list[str]
    """The reconciliation's; a node that exited without reconciling says so here."""


def recover_against_venues(
    config_path: Path,
    keys: JournalKeys,
    sessions: dict[str, DrVenueSessionConfig],
    *,
    clock: Clock,
    scratch: ScratchDatabase | None = None,
) -> VenueRecovery:
    """Recover the restored desk at ``config_path`` and reconcile it with its venues
    through ``sessions``, recover-only (nothing is traded, nothing of the live node's
    session is used)."""
    from bastion.node.runner import recover_node

    desk = config_path.parent
    restored = load_config(config_path, PaperConfig)
    config = drill_config(restored, sessions, desk=desk, scratch=scratch)
    secrets = _secrets(config, desk, scratch, clock)
    code, report = recover_node(
        config, base_dir=desk, source=f"{config_path} (DR drill)", secrets=secrets, keys=keys
    )
    instruments = {i.id: i.to_instrument() for i in config.instruments}
    positions = {
        iid: instruments[iid].size(raw)
        for iid, raw in report.get("positions", {}).items()
        if iid in instruments
    }
    reconciliation = report.get("reconciliation") or {}
    mismatches = [str(m) for m in reconciliation.get("mismatches", [])]
    if code != 0 and not mismatches:
        mismatches = [f"the recover-only node exited {code} without reconciling"]
    return VenueRecovery(
        node_id=config.node.id,
        positions=positions,
        reconciliation=reconciliation,
        mismatches=mismatches,
    )


def drill_config(
    config: PaperConfig,
    sessions: dict[str, DrVenueSessionConfig],
    *,
    desk: Path,
    scratch: ScratchDatabase | None,
) -> PaperConfig:
    """The restored config as the drill's node runs it: each FIX venue through its
    read-only session, no HA lease, nothing recorded, every local path in ``desk``;
    ``BackupError`` naming what would reach the live desk."""
    fix = {v.name: v for v in config.venue_configs() if isinstance(v, FixVenueConfig)}
    unknown = sorted(set(sessions) - set(fix))
    if unknown:
        raise BackupError(
            f"[dr.venue_sessions] names {', '.join(unknown)}: not a FIX venue of the "
            f"restored config (its FIX venues: {', '.join(sorted(fix)) or 'none'})"
        )
    missing = sorted(set(fix) - set(sessions))
    if missing:
        raise BackupError(
            f"FIX venue(s) {', '.join(missing)} have no [dr.venue_sessions.NAME]: the "
            "drill would log on with the live node's session; give each a read-only one"
        )
    has_password = scratch is not None and scratch.password is not None
    live = {v.sender_comp_id.casefold(): v.name for v in fix.values()}
    replaced = {
        name: _through(fix[name], session, desk=desk, live=live)
        for name, session in sessions.items()
    }
    return _local(
        config,
        desk=desk,
        scratch=scratch,
        password=f"secret:{_SCRATCH_SECRET}" if has_password else None,
        replaced=replaced,
    )


def offline_config(
    config: PaperConfig, *, desk: Path, scratch: ScratchDatabase | None
) -> PaperConfig:
    """The restored config as the drill recovers it without logging on (its kernel
    connects to nothing, but builds every venue): each FIX venue's session store the
    drill's own, every local path in ``desk``, no HA lease, nothing recorded."""
    fix = [v for v in config.venue_configs() if isinstance(v, FixVenueConfig)]
    replaced = {
        v.name: msgspec.structs.replace(v, store_path=_drill_store(desk, v.name)) for v in fix
    }
    return _local(config, desk=desk, scratch=scratch, password=None, replaced=replaced)


def _local(
    config: PaperConfig,
    *,
    desk: Path,
    scratch: ScratchDatabase | None,
    password: str | None,
    replaced: dict[str, Any],
) -> PaperConfig:
    """``config`` with the FIX venues ``replaced`` (by name), its journal, vault and
    strategies' files in ``desk`` (``confined``), and nothing that reaches the live
    desk's HA group, recording or backups."""
    journal = drill_journal(config, desk, scratch, password=password)
    vault = msgspec.structs.replace(
        config.vault, path=confined(desk, config.vault.path, "vault.path")
    )
    strategies = [
        msgspec.structs.replace(s, path=confined(desk, s.path, f"strategies[{n}].path"))
        for n, s in enumerate(config.strategies)
    ]
    venues = [replaced.get(v.name, v) for v in config.venues]
    fix_venue = None if config.fix_venue is None else replaced[config.fix_venue.name]
    return msgspec.structs.replace(
        config,
        venues=venues,
        fix_venue=fix_venue,
        journal=journal,
        vault=vault,
        strategies=strategies,
        ha=None,
        recording=None,
        backup=None,
        run_for_s=None,
    )


def drill_journal(
    config: PaperConfig, desk: Path, scratch: ScratchDatabase | None, *, password: str | None
) -> JournalConfig:
    """The restored config's ``[journal]`` as the drill opens it: its local path in
    ``desk`` (``confined``); a PostgreSQL journal in the ``scratch`` database, under the
    journal's own name, ``password`` its reference (None: given when opened, or none).
    ``BackupError`` for a PostgreSQL journal without a scratch database."""
    journal = config.journal
    if journal.backend == "postgres":
        if scratch is None:
            raise BackupError(
                "the restored journal is a PostgreSQL one: the drill opens it only in its "
                "scratch database ([dr] scratch_url), never at the source's url"
            )
        journal = msgspec.structs.replace(
            journal, url=scratch.url, password=password, name=config.journal_name()
        )
    return msgspec.structs.replace(journal, path=confined(desk, journal.path, "journal.path"))


def _through(
    venue: FixVenueConfig, session: DrVenueSessionConfig, *, desk: Path, live: dict[str, str]
) -> Any:
    """``venue`` logging on with the read-only ``session``: its CompID, credentials,
    a store of its own in the scratch desk, sequence numbers from 1, no
    cancel-on-disconnect (it has no orders). ``live``: the restored config's FIX
    sessions' SenderCompIDs (casefolded; a venue may compare them so), with their venue:
    the session's may be none of them, at this venue or another."""
    at = live.get(session.sender_comp_id.casefold())
    if at is not None:
        where = "" if at == venue.name else f" at venue {at}"
        raise BackupError(
            f"[dr.venue_sessions.{venue.name}] sender_comp_id {session.sender_comp_id!r} "
            f"is the live node's session{where}: the drill needs a read-only session of "
            "its own"
        )
    password = session.password
    password_env = session.password_env
    if password is None and password_env is None:  # the same credentials' form is refused
        raise BackupError(f"[dr.venue_sessions.{venue.name}]: give password or password_env")
    through = msgspec.structs.replace(
        venue,
        sender_comp_id=session.sender_comp_id,
        target_comp_id=session.target_comp_id or venue.target_comp_id,
        username=session.username,
        password=password,
        password_env=password_env,
        host=session.host or venue.host,
        port=session.port or venue.port,
        account=session.account or venue.account,
        store_path=_drill_store(desk, venue.name),
        reset_on_logon=True,
        cancel_on_disconnect=CancelOnDisconnect.OFF,
    )
    try:  # replace() does not check: the session's values with the venue's
        through.check(f"venue {venue.name}")
    except ConfigError as error:
        raise ConfigError(f"[dr.venue_sessions.{venue.name}]: {error}") from None
    return through


def _drill_store(desk: Path, venue: str) -> str:
    """The drill's FIX session store for ``venue``, in the scratch desk's ``dr-drill``;
    ``BackupError`` for a venue name that would place it elsewhere (``/..`` in it)."""
    store = DRILL_STORE.format(venue=venue)
    root = (desk / DRILL_STORE).parent.resolve()
    if (desk / store).resolve().parent != root:
        raise BackupError(
            f"the restored config's venue name {venue[:64]!r} cannot name the drill's FIX "
            f"session store (it would not be in {root})"
        )
    return store


def confined(desk: Path, path: str, key: str) -> str:
    """``path`` (a config value, relative to ``desk``) as one inside ``desk``: an absolute
    path the backup restored under ``desk/outside/`` is pointed there; one still outside
    the scratch desk is refused (the drill would open the source desk's file)."""
    resolved = resolve_path(desk, path).resolve()
    root = desk.resolve()
    if resolved.is_relative_to(root):
        return path
    moved = root / "outside" / resolved.as_posix().lstrip("/")
    if moved.exists() or moved.parent.is_dir():
        return str(moved)
    raise BackupError(
        f"the restored config's {key} ({path}) is outside the scratch desk and was not "
        "restored under outside/: the drill would open the source desk's file"
    )


def _secrets(
    config: PaperConfig, desk: Path, scratch: ScratchDatabase | None, clock: Clock
) -> SecretSource:
    """The secrets the drill's node needs, from the restored vault (its passphrase from
    ``BASTION_VAULT_KEY_FILE`` or the systemd credential), and the scratch database's
    password."""
    refs = [r for r in config.secret_refs() if r[1] != _SCRATCH_SECRET]
    vault = load_secrets(
        refs,
        vault=config.vault,
        base_dir=desk,
        scope="live" if config.node.mode == "live" else "paper",
        clock=clock,
    )
    if scratch is None or scratch.password is None:
        return vault
    return _Overlay(MemorySecrets({_SCRATCH_SECRET: scratch.password}), vault)


class _Overlay:
    """The scratch database's password over the restored vault."""

    def __init__(self, first: SecretSource, then: SecretSource) -> None:
        self._first = first
        self._then = then

    def get(self, name: str) -> Secret:
        try:
            return self._first.get(name)
        except SecretNotFound:
            return self._then.get(name)
