"""The archive inside a backup: an uncompressed POSIX tar of the staged pieces and
``manifest.json``, read back refusing anything but regular files and directories under
the extraction root (no absolute paths, no ``..``, no links, no devices).

Uncompressed on purpose: the journal and stores of an encrypted desk are SQLCipher
pages, which do not compress, and the tar's offsets stay cheap to stream."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from bastion.errors import BackupError


def pack(staging: Path, out: Path) -> None:
    """Every file under ``staging`` into the tar ``out``, paths relative to it, sorted
    (the same pieces make the same archive), owner and mode normalised."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(staging).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o600
            with path.open("rb") as f:
                tar.addfile(info, f)


def unpack(archive: Path, into: Path, *, name: str) -> list[str]:
    """Extract ``archive`` into the (empty) directory ``into``; the member paths."""
    members: list[str] = []
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                _check_member(member, name)
                members.append(member.name)
            tar.extractall(into, filter="data")
    except (tarfile.TarError, EOFError) as error:
        raise BackupError(f"backup {name}: the archive inside is damaged ({error})") from None
    return members


def _check_member(member: tarfile.TarInfo, name: str) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not member.isfile():
        raise BackupError(
            f"backup {name}: the archive holds {member.name!r}, which is not a plain file "
            "inside it (refused)"
        )
