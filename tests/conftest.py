"""Shared fixtures. Local-stack fixtures: `jwt_secret`, `pg`, `rest`, `db` (real servers)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import apply_schema

# The local stack's fixtures (session `stack`, `user`, `http`, …) for tests/e2e and tests/security.
pytest_plugins = ["tests.stack_fixtures"]

REPO = Path(__file__).resolve().parents[1]
_deselected: list[pytest.Item] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The API contract against every answer the local Function URLs gave during the run
    (tests/contract_check.py): a code a route answered but does not declare fails the run, and
    after a whole, passing run so does a declared code nobody answered (unless declared for
    safety)."""
    from tests.contract_check import REACHING_SUITES, run_problems
    from tests.stack_fixtures import RECORDED

    if not RECORDED:
        return
    ran = {Path(item.path) for item in session.items}
    suites = {path for suite in REACHING_SUITES for path in (REPO / suite).rglob("test_*.py")}
    options = session.config.option
    whole = (
        suites <= ran
        and not _deselected
        and not options.keyword
        and not options.markexpr
        and session.testsfailed == 0
    )
    problems = run_problems(RECORDED, whole_run=whole)
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.section("API contract: answers against shared/contract/routes.py", red=True)
            for problem in problems:
                reporter.line(problem)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(address: object) -> None:
    """Refuse any connection a test makes beyond 127.0.0.0/8 (and unix sockets)."""
    if isinstance(address, tuple) and address:
        host = str(address[0])
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            raise OSError(f"tests may only connect to loopback, not {host}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _loopback_only(address)
    _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _loopback_only(address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


@pytest.fixture(scope="session", autouse=True)
def _no_network_beyond_loopback() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = _real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
