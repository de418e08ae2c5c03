"""Fixtures every test may take: running the CLI, the shared benchmark data, an idle
strategy. Helpers live in the test kit (tests/kit), never here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from bastion.vault import redact
from kit import bench_data
from kit.node_process import RunBastion, bastion_cmd, child_env
from kit.postgres import PostgresServer, postgres_server
from kit.s3_server import S3Server, s3_server
from kit.strategies import IDLE_STRATEGY


def pytest_configure(config: pytest.Config) -> None:
    """Property tests draw the same examples on every run, so a failure in CI is one
    anyone can reproduce; ``BASTION_HYPOTHESIS=explore`` draws new ones (and keeps them)."""
    settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
    settings.register_profile("explore", print_blob=True)
    settings.load_profile(os.environ.get("BASTION_HYPOTHESIS", "deterministic"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test compiled modules built from older sources than the checkout's."""
    from bastion import native

    stale = native.stale()
    if stale:
        pytest.exit(
            f"the compiled modules {', '.join(stale)} are older than their sources: "
            "./test rebuilds them (or run: .venv/bin/pip install -e .)",
            returncode=2,
        )


@pytest.fixture(scope="module")
def idle_strategy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``idle.py`` (``IDLE_STRATEGY``)."""
    path = tmp_path_factory.mktemp("idle")
    (path / "idle.py").write_text(IDLE_STRATEGY)
    return path


@pytest.fixture(scope="session")
def bench_quotes_100k() -> dict[str, Path]:
    """The shared benchmark's 100k quotes: ``{"parquet": Path, "csv": Path}``."""
    return bench_data.bench_quotes_100k()


@pytest.fixture
def run_bastion(tmp_path: Path) -> RunBastion:
    """Run ``python -m bastion ARGS...`` in ``cwd`` (default: tmp_path); capture text output."""

    def run(
        *args: str | Path, cwd: Path | None = None, timeout_s: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            bastion_cmd(*args),
            cwd=cwd or tmp_path,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    return run


@pytest.fixture(autouse=True)
def _no_secret_outlives_its_test() -> Iterator[None]:
    """Each test starts with a process that has loaded no secret: the redaction set a
    test fills (a vault opened, a password read) does not mask another test's logs."""
    yield
    redact.forget_all()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (tests that stop or kill theirs
    start their own with ``kit.postgres.postgres_server``)."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_dsn(postgres: PostgresServer) -> str:
    """A libpq URL to a new, empty database of its own on the session's server."""
    return postgres.dsn(postgres.create_database())


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real S3-compatible object store (SeaweedFS) on loopback for the session."""
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server
