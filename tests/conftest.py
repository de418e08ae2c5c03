"""Shared test helpers: ``eventually`` polling, running the CLI, the shared benchmark data.

Import the helper with ``from conftest import eventually`` or take the ``eventually``
fixture. Keep helpers in this one conftest: a second ``conftest.py`` in a subfolder
(without ``__init__.py`` files) would shadow the module name ``conftest``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
RunBastion = Callable[..., subprocess.CompletedProcess[str]]

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DATA_DIR = REPO_ROOT / ".cache" / "bench-data"
BENCH_N = 100_000
# Leading hex digits of the sha256 that shared/bench/WORKLOAD.md gives for the 100k files.
BENCH_SHA256_PREFIX = {"parquet": "d0c4535b", "csv": "c2e73d9d"}


def eventually(predicate: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    An ``AssertionError`` raised by the predicate counts as "not yet". At the deadline
    the last assertion is re-raised, or an AssertionError says what timed out.
    """
    deadline = time.monotonic() + timeout_s
    last_error: AssertionError | None = None
    while True:
        try:
            result = predicate()
        except AssertionError as e:
            last_error = e
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            if last_error is not None:
                raise last_error
            name = getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"condition {name} not met within {timeout_s}s")
        time.sleep(interval_s)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test a compiled risk gate built from older sources than the checkout's."""
    from bastion.risk import native

    stale = native.stale()
    if stale:
        pytest.exit(
            f"the compiled risk modules {', '.join(stale)} are older than their sources: "
            "./test rebuilds them (or run: .venv/bin/pip install -e .)",
            returncode=2,
        )


IDLE_STRATEGY = """
from bastion.strategy.base import Strategy


class Idle(Strategy):
    pass
"""
"""A strategy that sends nothing by itself (``idle.py``, class ``Idle``): tests drive
the kernel's orders directly."""


@pytest.fixture(scope="module")
def idle_strategy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``idle.py`` (``IDLE_STRATEGY``)."""
    path = tmp_path_factory.mktemp("idle")
    (path / "idle.py").write_text(IDLE_STRATEGY)
    return path


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., object]:
    """The ``eventually`` helper, for tests that prefer a fixture to an import."""
    return eventually


def shared_dir() -> Path:
    """The project's shared/ folder: a sibling of the repo root (or $BASTION_SHARED_DIR)."""
    override = os.environ.get("BASTION_SHARED_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _bench_files_ok(paths: dict[str, Path]) -> bool:
    return all(
        path.is_file() and _sha256(path).startswith(BENCH_SHA256_PREFIX[kind])
        for kind, path in paths.items()
    )


@pytest.fixture(scope="session")
def bench_quotes_100k() -> dict[str, Path]:
    """The shared benchmark's 100k quotes: ``{"parquet": Path, "csv": Path}``.

    Generated once by shared/bench/gen_quotes.py into .cache/bench-data, then checked
    against the published sha256 so every engine reads the very same series.
    """
    paths = {
        "parquet": BENCH_DATA_DIR / f"quotes_{BENCH_N}.parquet",
        "csv": BENCH_DATA_DIR / f"quotes_{BENCH_N}.csv",
    }
    if _bench_files_ok(paths):
        return paths
    generator = shared_dir() / "bench" / "gen_quotes.py"
    if not generator.is_file():
        pytest.fail(
            f"shared benchmark generator not found at {generator}; shared/ must sit beside "
            "the repo (or set BASTION_SHARED_DIR to it)",
            pytrace=False,
        )
    BENCH_DATA_DIR.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(generator), "--n", str(BENCH_N), "--out-dir", str(BENCH_DATA_DIR)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"{generator} failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
    if not _bench_files_ok(paths):
        found = {kind: _sha256(p)[:8] for kind, p in paths.items() if p.is_file()}
        pytest.fail(
            f"benchmark files in {BENCH_DATA_DIR} do not match the published sha256 "
            f"prefixes {BENCH_SHA256_PREFIX}: got {found}",
            pytrace=False,
        )
    return paths


@pytest.fixture
def run_bastion(tmp_path: Path) -> RunBastion:
    """Run ``python -m bastion ARGS...`` in ``cwd`` (default: tmp_path); capture text output."""

    def run(
        *args: str | Path, cwd: Path | None = None, timeout_s: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        return subprocess.run(
            [sys.executable, "-m", "bastion", *(str(a) for a in args)],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    return run
