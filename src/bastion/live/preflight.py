"""What a node checks before it trades: the run manifest it journals, the journal's
mode (paper and live never share one), and for a live node the conditions that must
hold before real orders go out (monitoring on, a clean tree, an arming)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from bastion.config import PaperConfig, resolve_path
from bastion.errors import ConfigError
from bastion.journal.locator import JournalLocator
from bastion.live.arming import ARM_KEY_NAME, refuse_used, verify_arming
from bastion.live.separation import (
    JournalMode,
    check_journal_dir,
    check_journal_runs,
    mark_journal_dir,
)
from bastion.manifest import collect_manifest
from bastion.model.events import LiveArmed, RunManifest
from bastion.vault.refs import Secret, SecretNotFound, SecretSource


def node_manifest(
    config: PaperConfig, *, base_dir: Path, source: str, who: str, ts_ns: int
) -> RunManifest:
    """The manifest of this start (epoch 0: the caller sets it once the journal gave one).

    ``source``: the config file (or a description, for the embedded defaults, whose
    canonical encoding is hashed instead)."""
    config_path: Path | None = Path(source)
    if config_path is not None and config_path.is_file():
        try:
            config_bytes = config_path.read_bytes()
        except OSError as error:
            raise ConfigError(f"config file {config_path}: cannot read it: {error}") from error
        desk = config_path.resolve().parent
    else:
        config_path, config_bytes, desk = None, msgspec.json.encode(config), base_dir
    return collect_manifest(
        config_path=config_path,
        config_bytes=config_bytes,
        desk=desk,
        strategy_paths=[(s.path, resolve_path(base_dir, s.path)) for s in config.strategies],
        node_id=config.node.id,
        epoch=0,
        mode=config.node.mode,
        who=who,
        ts_ns=ts_ns,
    )


def check_live_start(config: PaperConfig, manifest: RunManifest) -> None:
    """Refuse to start a live node without monitoring (nobody would hear of a venue
    disconnect or a journal falling behind), without operators (``check_live_access``)
    or whose code is not exactly a commit (unless ``node.allow_dirty``): the manifest
    must say what ran."""
    check_live_access(config)
    if config.node.mode != "live":
        return
    monitoring = config.monitoring
    if monitoring is None or not monitoring.enabled:
        raise ConfigError(
            "live node: monitoring is off; a node trading money must serve its metrics "
            'and health: add a [monitoring] section (listen = "127.0.0.1:9464", '
            "docs/monitoring.md)" + ("" if monitoring is None else " and remove enabled = false")
        )
    if config.node.allow_dirty or not manifest.git_dirty:
        return
    what = (
        f"files not in git: {', '.join(manifest.untracked)}"
        if manifest.untracked
        else "tracked files have changes not committed"
    )
    raise ConfigError(
        f"live node: the desk's git tree is dirty ({what}); commit the changes, or set "
        "node.allow_dirty = true to run them anyway (the run manifest records it)"
    )


def check_live_access(config: PaperConfig) -> None:
    """A live node has named operators (``[access]``: an operator store with roles and
    four-eyes), never just whoever runs as its account."""
    if config.node.mode != "live" or config.access is not None:
        return
    raise ConfigError(
        "key 'access': a live node needs operators: add an [access] section and its "
        "operators (bastion users add NAME --role risk_officer --uid UID --config CONFIG); "
        "without it, anyone using the node's account could kill, resume or override "
        "limits, unnamed and without a second operator"
    )


def admit_start(
    config: PaperConfig,
    manifest: RunManifest,
    *,
    journal: JournalLocator,
    secrets: SecretSource | None,
    now_ns: int,
    trading: bool,
    read_journal: bool = True,
) -> LiveArmed | None:
    """Admit this start on ``journal`` (SQLite or PostgreSQL, read only), or refuse it
    before the journal is opened for writing.

    Every node: the journal (and the directory of its local path) must not be the other
    mode's (``bastion.live.separation``); the directory is marked with this mode. A live
    node that will trade (``trading``; ``bastion recover`` sends no order) has its
    arming verified (``bastion.live.arming``) with the vault's ``live/arm`` key from
    ``secrets``: the returned ``LiveArmed`` is journaled once the journal is open, and
    the token deleted once that is committed (``discard_arming``).

    ``read_journal=False`` (an HA member, before it stands by): only the local checks
    (the directory's marker; the arming's MAC, expiry, node and config); what reads the
    group's journal (the other mode's runs, an arming already used) is ``admit_writer``,
    once the member holds the lease. A standby starts while the database may be away,
    and waits for it; the arming is checked for expiry when the member starts, not when
    it takes over hours later."""
    mode = _mode(config)
    check_journal_dir(journal.path, mode)
    if read_journal:
        check_journal_runs(journal, mode)
    armed = None
    if mode == "live" and trading:
        armed = verify_arming(
            journal,
            key=_arm_key(secrets),
            node_id=config.node.id,
            config_sha256=manifest.config_sha256,
            now_ns=now_ns,
            check_used=read_journal,
        )
    mark_journal_dir(journal.path, mode)
    return armed


def admit_writer(config: PaperConfig, journal: JournalLocator, armed: LiveArmed | None) -> None:
    """What ``admit_start(read_journal=False)`` left for the member about to write the
    group's journal: not the other mode's, and its arming not used already."""
    check_journal_runs(journal, _mode(config))
    if armed is not None:
        refuse_used(armed, journal)


def _mode(config: PaperConfig) -> JournalMode:
    return "live" if config.node.mode == "live" else "paper"


def _arm_key(secrets: SecretSource | None) -> Secret | None:
    if secrets is None:
        return None
    try:
        return secrets.get(ARM_KEY_NAME)
    except SecretNotFound:
        return None
