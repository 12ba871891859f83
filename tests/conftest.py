"""Shared fixtures. Local-stack fixtures: `jwt_secret`, `pg`, `rest`, `db` (real servers)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import apply_schema


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    """The project's JWT secret for this run: 40 random URL-safe characters."""
    return secrets.token_urlsafe(30)


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    """A real Postgres with bootstrap.sql and every migration applied; one per test session."""
    server = LocalPostgres(tmp_path_factory.mktemp("pg") / "data")
    server.start()
    try:
        apply_schema(server.dsn())
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rest(
    pg: LocalPostgres, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPostgrest]:
    """The real PostgREST on `pg`, verifying tokens signed with `jwt_secret`."""
    server = LocalPostgrest(
        pg.dsn(), jwt_secret, log_path=tmp_path_factory.mktemp("postgrest") / "postgrest.log"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db(pg: LocalPostgres) -> Iterator[psycopg.Connection]:
    """A superuser (postgres) connection in autocommit mode; closed after the test."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        yield conn
