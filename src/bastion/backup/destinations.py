"""Where backups are stored: a directory (mounted off-site storage) or an S3-compatible
object store (``obstore``). One small interface, ``Destination``: put a local file
under a name, get one back, list the names, delete one.

Both write so that a reader never sees half an object: the directory writes
``NAME.partial``, fsyncs and renames; the object store's PUT (multipart for a large
file) makes the object appear only once complete. A backup's record is put after its
blob, so a backup is listed only once both are whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from bastion.backup.config import BackupConfig, DirDestinationConfig, S3DestinationConfig
from bastion.errors import BackupError, ConfigError
from bastion.vault.files import make_private_dir
from bastion.vault.refs import SecretSource

PARTIAL_SUFFIX: Final = ".partial"


class ObjectTooLarge(BackupError):
    """An object read back is larger than the reader allows (``Destination.get``)."""


_CHUNK: Final = 1 << 20


class Destination(Protocol):
    """A place to keep backups, named for messages by ``where``."""

    where: str

    def put(self, name: str, source: Path) -> None: ...
    def get(self, name: str, target: Path, *, max_bytes: int | None = None) -> None:
        """``name`` into ``target``; ``BackupError`` as soon as it is over ``max_bytes``
        (a store's object is the store's writer's to size, not ours)."""
        ...

    def names(self) -> list[str]: ...
    def delete(self, name: str) -> None: ...


class DirDestination:
    """Backups as files in ``root`` (0700), written ``.partial`` then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def put(self, name: str, source: Path) -> None:
        target = self.root / name
        partial = target.with_name(target.name + PARTIAL_SUFFIX)
        try:
            make_private_dir(self.root)
            with source.open("rb") as src, partial.open("wb") as out:
                while block := src.read(_CHUNK):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            partial.chmod(0o600)
            partial.replace(target)
            _fsync_dir(self.root)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise BackupError(
                f"backup destination {self.where}: cannot write {name}: {error}"
            ) from None

    def get(self, name: str, target: Path, *, max_bytes: int | None = None) -> None:
        try:
            with (self.root / name).open("rb") as src, target.open("wb") as out:
                _copy_bounded(iter(lambda: src.read(_CHUNK), b""), out, name, max_bytes, self)
        except FileNotFoundError:
            raise BackupError(f"backup destination {self.where}: no {name}") from None
        except OSError as error:
            raise BackupError(
                f"backup destination {self.where}: cannot read {name}: {error}"
            ) from None

    def names(self) -> list[str]:
        try:
            return sorted(
                p.name
                for p in self.root.iterdir()
                if p.is_file() and not p.name.endswith(PARTIAL_SUFFIX)
            )
        except FileNotFoundError:
            return []
        except OSError as error:
            raise BackupError(f"backup destination {self.where}: cannot list: {error}") from None

    def delete(self, name: str) -> None:
        try:
            (self.root / name).unlink(missing_ok=True)
        except OSError as error:
            raise BackupError(
                f"backup destination {self.where}: cannot delete {name}: {error}"
            ) from None


def _copy_bounded(
    chunks: Iterator[bytes],
    out: BinaryIO,
    name: str,
    max_bytes: int | None,
    destination: Destination,
) -> None:
    """Write ``chunks`` to ``out``, refusing (``ObjectTooLarge``) once more than
    ``max_bytes`` came."""
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if max_bytes is not None and written > max_bytes:
            raise ObjectTooLarge(
                f"backup destination {destination.where}: {name} is over {max_bytes:,} bytes"
            )
        out.write(chunk)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Destination:
    """Backups as objects under ``prefix/`` in an S3 bucket (obstore's client)."""

    def __init__(
        self,
        config: S3DestinationConfig,
        *,
        node_prefix: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        from obstore.store import S3Store

        self._prefix = "/".join(p for p in (config.prefix.strip("/"), node_prefix) if p)
        self.where = f"s3://{config.bucket}/{self._prefix}"
        options: dict[str, object] = {}
        if config.endpoint is not None:
            options["endpoint"] = config.endpoint
            options["virtual_hosted_style_request"] = False
        if access_key_id is not None and secret_access_key is not None:
            options["access_key_id"] = access_key_id
            options["secret_access_key"] = secret_access_key
        self._store = S3Store(
            config.bucket,
            region=config.region,
            client_options={"allow_http": config.allow_http, "timeout": "120s"},
            **options,  # type: ignore[arg-type]
        )

    def _key(self, name: str) -> str:
        return f"{self._prefix}/{name}" if self._prefix else name

    def put(self, name: str, source: Path) -> None:
        import obstore

        try:
            obstore.put(self._store, self._key(name), source)
        except Exception as error:  # obstore's errors are its own tree plus OSError
            raise BackupError(
                f"backup destination {self.where}: cannot put {name}: {_describe(error)}"
            ) from None

    def get(self, name: str, target: Path, *, max_bytes: int | None = None) -> None:
        import obstore

        try:
            result = obstore.get(self._store, self._key(name))
            with target.open("wb") as out:
                chunks = (bytes(c) for c in result.stream(min_chunk_size=_CHUNK))
                _copy_bounded(chunks, out, name, max_bytes, self)
        except FileNotFoundError:
            raise BackupError(f"backup destination {self.where}: no {name}") from None
        except BackupError:
            raise
        except Exception as error:
            raise BackupError(
                f"backup destination {self.where}: cannot get {name}: {_describe(error)}"
            ) from None

    def names(self) -> list[str]:
        import obstore

        prefix = f"{self._prefix}/" if self._prefix else ""
        try:
            objects = obstore.list(self._store, prefix=self._prefix or None).collect()
        except Exception as error:
            raise BackupError(
                f"backup destination {self.where}: cannot list: {_describe(error)}"
            ) from None
        return sorted(o["path"][len(prefix) :] for o in objects if o["path"].startswith(prefix))

    def delete(self, name: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, self._key(name))
        except FileNotFoundError:
            return
        except Exception as error:
            raise BackupError(
                f"backup destination {self.where}: cannot delete {name}: {_describe(error)}"
            ) from None


def _describe(error: Exception) -> str:
    """The first line of a client error (obstore's run to many lines of context)."""
    return (str(error).splitlines() or [type(error).__name__])[0][:300]


def open_destination(
    config: BackupConfig, *, base_dir: Path, node_id: str, secrets: SecretSource | None
) -> Destination:
    """The config's destination, for this node's backups (each node has its own folder
    or prefix, so two desks can share a store)."""
    destination = config.destination
    if isinstance(destination, DirDestinationConfig):
        return DirDestination(config.destination_dir(base_dir) / node_id)
    access, secret = _s3_credentials(destination, secrets)
    return S3Destination(
        destination, node_prefix=node_id, access_key_id=access, secret_access_key=secret
    )


def _s3_credentials(
    config: S3DestinationConfig, secrets: SecretSource | None
) -> tuple[str | None, str | None]:
    if config.access_key_id is None or config.secret_access_key is None:
        return os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if secrets is None:
        raise ConfigError("key 'backup.destination.access_key_id': needs the vault; none is open")
    values = [secrets.get(name).reveal() for _key, name in config.secret_refs()]
    return values[0], values[1]
