"""Files that hold secrets: refused when other users could read or replace them, and
written atomically, private from the first byte.

``ensure_private`` is the check (as ssh does for its keys: name the path and the fix);
``write_private`` replaces a file so that a crash leaves the old or the new content,
never a mix; ``make_private_dir`` creates a directory only its owner can enter.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Final

from bastion.errors import InsecureFile

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
_OTHERS: Final = stat.S_IRWXG | stat.S_IRWXO


def ensure_private(path: Path, what: str) -> None:
    """Refuse ``path`` (a file, or a directory) if a group or other users may read,
    write or enter it, or if it belongs to another user (root's files excepted).

    ``what`` says what the file is in the message ("vault", "vault key file"). A
    missing path is the caller's to report: ``FileNotFoundError`` passes through."""
    info = path.stat()
    kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
    fix = DIR_MODE if kind == "directory" else FILE_MODE
    uid = os.geteuid()
    if info.st_uid not in (uid, 0):
        raise InsecureFile(
            f"{what} {path}: the {kind} belongs to another user (uid {info.st_uid}); "
            f"it must be yours: chown {uid} {path}"
        )
    if info.st_mode & _OTHERS:
        raise InsecureFile(
            f"{what} {path}: permissions {stat.S_IMODE(info.st_mode):04o} are too open: "
            f"other users may read or change it; fix: chmod {fix:o} {path}"
        )


def ensure_safe_parent(path: Path, what: str) -> None:
    """Refuse ``path`` if another user may replace it: its directory is writable by a
    group or others without the sticky bit (which keeps them from renaming our file)."""
    parent = path.resolve().parent
    mode = parent.stat().st_mode
    writable_by_others = mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable_by_others and not mode & stat.S_ISVTX:
        raise InsecureFile(
            f"{what} {path}: its directory {parent} is writable by other users, who could "
            f"replace the file; fix: chmod go-w {parent}"
        )


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700 if it does not exist."""
    if path.is_dir():
        return
    make_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=DIR_MODE)
    os.chmod(path, DIR_MODE)  # mkdir's mode is cut by the umask


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a temporary file (mode 0600 from its
    creation) in the same directory, fsynced, renamed over ``path``, then the directory
    fsynced so the rename itself survives a power cut."""
    directory = path.parent
    temp = directory / f".{path.name}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()  # left by a crash of this same pid number
    fd = os.open(temp, flags, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
