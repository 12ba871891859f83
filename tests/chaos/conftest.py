"""A local stack of its own for the chaos tests (its Replicate and gateway faults are switched on
wholesale), on the session's Postgres and PostgREST; started and stopped with the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.stack import LocalStack
from tests.chaos.harness import ChaosOptions
from tests.stack_fixtures import stack_on


@pytest.fixture(scope="module")
def chaos_stack(
    pg: LocalPostgres,
    rest: LocalPostgrest,
    jwt_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalStack]:
    data_dir = tmp_path_factory.mktemp("chaos")
    # The run fires its own sweeps; its Replicate and gateway faults are switched on wholesale.
    extra = ChaosOptions().env()
    with stack_on(
        pg, rest, jwt_secret, data_dir, reaches=False, train_seconds=1.0, extra_env=extra
    ) as local:
        yield local
