"""Take a run manifest: hash the config and strategy files, ask git about the desk."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bastion import __version__
from bastion.errors import ConfigError
from bastion.model.events import RunManifest

GIT_TIMEOUT_S: Final = 10.0
# git reads only these of the node's environment (never a secret handed down in it)
_GIT_ENV: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True, slots=True)
class GitState:
    """The desk's git repository: ``commit`` checked out, whether tracked files are
    modified, and which of the run's files git does not track."""

    commit: str
    modified: bool
    untracked: tuple[str, ...]

    @property
    def dirty(self) -> bool:
        """What ran is not exactly a commit: a tracked file changed, or a file of the
        run (config, strategy) is not in the repository at all."""
        return self.modified or bool(self.untracked)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(args: list[str], cwd: Path) -> str | None:
    """``git args`` in ``cwd``: its stdout, or None when git is missing, ``cwd`` is not
    in a repository, or git fails."""
    exe = shutil.which("git")
    if exe is None:
        return None
    env = {k: os.environ[k] for k in _GIT_ENV if k in os.environ}
    env["GIT_OPTIONAL_LOCKS"] = "0"  # a status never takes the index lock of a live desk
    try:
        done = subprocess.run(
            [exe, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(desk: Path, run_files: Iterable[Path]) -> GitState | None:
    """The state of the git repository ``desk`` is in (None: not in one, or no git).

    Modified means a tracked file differs from the commit (untracked files elsewhere,
    such as the journal, do not count); every file in ``run_files`` must be tracked."""
    top = _git(["rev-parse", "--show-toplevel"], desk)
    commit = _git(["rev-parse", "--verify", "HEAD"], desk)
    if top is None or commit is None:
        return None
    root = Path(top.strip())
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    untracked: list[str] = []
    for path in run_files:
        try:
            rel = path.resolve().relative_to(root.resolve())
        except ValueError:  # outside the repository: not versioned with it
            untracked.append(str(path))
            continue
        if _git(["ls-files", "--error-unmatch", "--", str(rel)], root) is None:
            untracked.append(str(rel))
    return GitState(
        commit=commit.strip(),
        modified=status is None or bool(status.strip()),
        untracked=tuple(untracked),
    )


def collect_manifest(
    *,
    config_path: Path | None,
    config_bytes: bytes,
    desk: Path,
    strategy_paths: Iterable[tuple[str, Path]],
    node_id: str,
    epoch: int,
    mode: str,
    who: str,
    ts_ns: int,
) -> RunManifest:
    """The manifest of a start. ``config_bytes``: the config file's content (or, for
    embedded defaults with no ``config_path``, their canonical encoding); ``desk``: the
    directory whose git repository is asked; ``strategy_paths``: each strategy file as
    the config names it, with where it resolves to. An unreadable file is a
    ``ConfigError``."""
    files: dict[str, str] = {}
    resolved: list[Path] = [] if config_path is None else [config_path]
    for name, path in strategy_paths:
        try:
            files[name] = sha256_file(path)
        except OSError as error:
            raise ConfigError(f"strategy file {path}: cannot read it: {error}") from error
        resolved.append(path)
    git = git_state(desk, resolved)
    return RunManifest(
        ts_ns=ts_ns,
        node_id=node_id,
        epoch=epoch,
        mode=mode,
        version=__version__,
        python=platform.python_version(),
        host=socket.gethostname(),
        who=who,
        config_path="" if config_path is None else str(config_path),
        config_sha256=hashlib.sha256(config_bytes).hexdigest(),
        files=files,
        git_commit=None if git is None else git.commit,
        git_dirty=None if git is None else git.dirty,
        untracked=[] if git is None else list(git.untracked),
    )
