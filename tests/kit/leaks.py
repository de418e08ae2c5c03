"""A witness for leaks: every form a secret can be written in, and the places searched
for them (files, captured output, decrypted tables, command lines of child processes).

It searches bytes, independently of the product's own redaction, and counts what it
searched so that a run that looked at little cannot pass quietly.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bastion.storage.connect import connect

SAMPLE_INTERVAL_S = 0.02  # how often the command-line watcher walks the process tree


def descendants(pid: int) -> list[int]:
    """The pids below ``pid`` now (children, grandchildren...), from ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone since the glob
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def encoded_forms(raw: bytes) -> set[bytes]:
    """``raw`` as it could be written: as is, hex (both cases), and base64 (standard
    and urlsafe) at each of the three alignments a value can have inside a longer
    encoded stream, the edge characters that depend on the neighbours stripped."""
    forms = {raw, raw.hex().encode(), raw.hex().upper().encode()}
    for shift, lead in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(b"\0" * shift + raw).rstrip(b"=")
        trail = 1 if (shift + len(raw)) % 3 else 0
        stable = encoded[lead : len(encoded) - trail]
        forms |= {stable, stable.translate(bytes.maketrans(b"+/", b"-_"))}
    return forms


def assert_forms_found_anywhere_in_a_stream() -> None:
    """The witness's own check: a value encoded at any offset inside a longer stream is
    found by one of its forms (else a leak could hide behind base64's alignment)."""
    value = b"canary-self-check-value"
    forms = encoded_forms(value)
    for before in range(4):
        for after in range(4):
            stream = b"<" * before + value + b">" * after
            for written in (
                base64.b64encode(stream),
                base64.urlsafe_b64encode(stream),
                stream.hex().encode(),
                stream.hex().upper().encode(),
            ):
                assert any(form in written for form in forms), (before, after, written)


def needles(secrets: dict[str, str]) -> dict[bytes, str]:
    """Every form of every secret, each naming the secret it betrays. A machine key
    (64 hex characters) is also searched as the 32 bytes it stands for."""
    found: dict[bytes, str] = {}
    for name, value in secrets.items():
        assert len(value) >= 16, name
        for form in encoded_forms(value.encode()):
            found[form] = name
        if name.startswith("journal/"):
            for form in encoded_forms(bytes.fromhex(value)):
                found[form] = f"{name} (raw bytes)"
    return found


class Witness:
    """What the test saw: named places (bytes) to search, and the command line of every
    process below the test, sampled by a thread while the flow runs."""

    def __init__(self) -> None:
        self.places: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cmdline-witness", daemon=True)

    def add(self, name: str, data: bytes | str) -> None:
        with self._lock:
            self.places[name] = data.encode() if isinstance(data, str) else data

    def sample_cmdlines(self) -> list[bytes]:
        """The command lines of the test's descendants now (each recorded as a place)."""
        lines = []
        for pid in descendants(os.getpid()):
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:  # gone since the walk
                continue
            if raw:
                lines.append(raw)
                shown = raw.replace(b"\0", b" ").decode(errors="replace")[:120]
                self.add(f"cmdline of pid {pid}: {shown}", raw)
        return lines

    def _watch(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.sample_cmdlines()

    @contextmanager
    def watching(self) -> Iterator[Witness]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)

    def add_files(self, root: Path) -> int:
        """Every regular file under ``root`` (SQLite WAL/SHM, anchors, logs...)."""
        n = 0
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                self.add(f"file {path.relative_to(root.parent)}", path.read_bytes())
                n += 1
        return n

    def add_database(self, path: Path, key: bytes | None) -> None:
        """Every table of a SQLite file, decrypted with ``key``: an encrypted file's bytes
        say nothing, its contents must not carry a secret either."""
        db = connect(path, key=key, readonly=True)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                cells = [
                    value if isinstance(value, bytes) else str(value).encode()
                    for row in db.execute(f'SELECT * FROM "{table}"')
                    for value in row
                ]
                self.add(f"table {table} of {path.name} (decrypted)", b"\0".join(cells))
        finally:
            db.close()

    def leaks(self, secrets: dict[str, str]) -> list[str]:
        forms = needles(secrets)
        return [
            f"{name} in {place}"
            for place, data in self.places.items()
            for form, name in forms.items()
            if form in data
        ]
