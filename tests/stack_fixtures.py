"""The whole local stack for tests over HTTP (tests/e2e, tests/security): one per session, on the
session's Postgres. Registered for the whole suite by `pytest_plugins` in tests/conftest.py, so both
directories share one stack; nothing here is autouse (unit tests never start it)."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest

from devstack.function_urls import AnswerLog, FunctionUrls
from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.replicate_emulator import ReplicateEmulator
from devstack.sample_photos import make_photo
from devstack.schema import apply_schema
from devstack.stack import LocalStack, StackOptions

# The answers of every stack the run started, for the contract checks at its end
# (tests/conftest.py); True when they count as proof that a declared code is reachable.
RECORDED: list[tuple[AnswerLog, bool]] = []


@contextmanager
def stack_on(
    pg: LocalPostgres,
    rest: LocalPostgrest,
    jwt_secret: str,
    data_dir: Path,
    reaches: bool = True,
    **options: Any,
) -> Iterator[LocalStack]:
    """A local stack on the session's Postgres and PostgREST. No timer: tests fire the schedule
    themselves, so every sweep is deliberate. `reaches=False`: its answers are checked against
    the contract but do not count as reaching a code (random faults would make that flaky)."""
    # The session's database keeps every test's rows, and the training queue's caps count them
    # all: no caps here. The queue's own tests run on a database of their own (`own_database`).
    extra_env = {
        "MAX_CONCURRENT_TRAININGS": "100000",
        "MAX_TRAININGS_PER_USER": "100",
        **options.pop("extra_env", {}),
    }
    settings = StackOptions(
        data_dir=data_dir,
        schedule_seconds=None,
        boot_seconds=0.2,
        extra_env=extra_env,
        **options,
    )
    local = LocalStack(settings).start(pg=pg, rest=rest, jwt_secret=jwt_secret)
    assert local.functions is not None
    RECORDED.append((local.functions.answers, reaches))
    try:
        yield local
    finally:
        local.stop()


class OwnDatabase:
    """A database of its own on the session's Postgres server, schema applied: for tests that
    count every row (the training queue's cap, the budget). Passed where a LocalPostgres is."""

    def __init__(self, server: LocalPostgres, name: str):
        self.server, self.name = server, name

    def dsn(self, database: str | None = None) -> str:
        return self.server.dsn(database=database or self.name)


@contextmanager
def own_database(
    pg: LocalPostgres, jwt_secret: str, data_dir: Path
) -> Iterator[tuple[LocalPostgres, LocalPostgrest]]:
    """A new database on `pg` with the whole schema, and a PostgREST of its own on it."""
    name = f"own_{secrets.token_hex(4)}"
    with psycopg.connect(pg.dsn(), autocommit=True) as db:
        db.execute(f"create database {name}")
    own = OwnDatabase(pg, name)
    apply_schema(own.dsn())
    rest = LocalPostgrest(own.dsn(), jwt_secret, log_path=data_dir / "postgrest.log")
    rest.start()
    try:
        yield cast(LocalPostgres, own), rest
    finally:
        rest.stop()
        with psycopg.connect(pg.dsn(), autocommit=True) as db:
            db.execute(f"drop database {name} with (force)")


@pytest.fixture(scope="session")
def stack(
    pg: LocalPostgres,
    rest: LocalPostgrest,
    jwt_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalStack]:
    with stack_on(pg, rest, jwt_secret, tmp_path_factory.mktemp("stack"), train_seconds=1.5) as s:
        yield s


@pytest.fixture
def emulator(stack: LocalStack) -> ReplicateEmulator:
    assert stack.replicate is not None
    return stack.replicate


@pytest.fixture
def functions(stack: LocalStack) -> FunctionUrls:
    assert stack.functions is not None
    return stack.functions


@pytest.fixture
def clean_faults(stack: LocalStack) -> Iterator[None]:
    """After the test: no injected faults, webhooks delivered again (autouse in e2e and security)."""
    yield
    assert stack.replicate is not None and stack.gateway is not None
    stack.replicate.faults.clear()
    stack.replicate.webhooks_enabled = True
    stack.gateway.storage_faults.clear()


@dataclass
class User:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_user(stack: LocalStack) -> Callable[[], User]:
    def make() -> User:
        return User(*stack.sign_in(f"{uuid.uuid4().hex[:8]}@flurrty.test"))

    return make


@pytest.fixture
def user(make_user: Callable[[], User]) -> User:
    return make_user()


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60.0) as client:
        yield client


_photo_seed = iter(range(10_000, 1_000_000))


def photo_files(count: int = 3, size: int = 640) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Distinct sample photos as multipart file fields."""
    return [
        ("photos", (f"photo{i}.jpg", make_photo(size, size, seed=next(_photo_seed)), "image/jpeg"))
        for i in range(count)
    ]


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
