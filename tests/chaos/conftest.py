"""A local stack of its own for the chaos tests (its Replicate and gateway faults are switched on
wholesale), on the session's Postgres and PostgREST; started and stopped with the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.stack import LocalStack, StackOptions
from tests.chaos.harness import ChaosOptions


@pytest.fixture(scope="module")
def chaos_stack(
    pg: LocalPostgres,
    rest: LocalPostgrest,
    jwt_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalStack]:
    options = StackOptions(
        data_dir=tmp_path_factory.mktemp("chaos"),
        schedule_seconds=None,  # the run fires its own sweeps
        boot_seconds=0.2,
        train_seconds=1.0,
        extra_env=ChaosOptions().env(),
    )
    local = LocalStack(options).start(pg=pg, rest=rest, jwt_secret=jwt_secret)
    try:
        yield local
    finally:
        local.stop()
