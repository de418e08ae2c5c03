"""The test kit's PostgreSQL server is a real one: password authentication on TCP,
what was committed survives a SIGKILL of the server."""

from __future__ import annotations

import psycopg
import pytest

from kit.postgres import PostgresServer, postgres_server


def test_when_password_is_wrong_then_the_server_refuses(postgres: PostgresServer) -> None:
    database = postgres.create_database()
    with psycopg.connect(postgres.dsn(database)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("bastion",)
    wrong = postgres.dsn(database).replace(postgres.password, "not-the-password", 1)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)


def test_when_server_is_killed_then_committed_rows_survive_the_restart() -> None:
    with postgres_server() as server:
        dsn = server.dsn(server.create_database())
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE TABLE t (n int)")
            conn.execute("INSERT INTO t VALUES (7)")
        server.kill()
        assert not server.running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=2)
        server.start()
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT n FROM t").fetchall() == [(7,)]
