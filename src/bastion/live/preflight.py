"""What a node checks before it trades: the run manifest it journals, and for a live
node the conditions that must hold before real orders go out."""

from __future__ import annotations

from pathlib import Path

import msgspec

from bastion.config import PaperConfig, resolve_path
from bastion.errors import ConfigError
from bastion.manifest import collect_manifest
from bastion.model.events import RunManifest


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
    """Refuse to start a live node whose code is not exactly a commit (unless
    ``node.allow_dirty``): the manifest must say what ran."""
    if config.node.mode != "live" or config.node.allow_dirty or not manifest.git_dirty:
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
