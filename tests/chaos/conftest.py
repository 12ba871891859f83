"""A local stack of its own for the chaos tests (its Replicate and gateway faults are switched on
wholesale, and its small training cap counts every row): a database of its own on the session's
Postgres, with its own PostgREST; started and stopped with the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.postgres import LocalPostgres
from devstack.stack import LocalStack
from tests.chaos.harness import ChaosOptions
from tests.stack_fixtures import own_database, stack_on


@pytest.fixture(scope="module")
def chaos_stack(
    pg: LocalPostgres, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    data_dir = tmp_path_factory.mktemp("chaos")
    # The run fires its own sweeps; its Replicate and gateway faults are switched on wholesale.
    extra = ChaosOptions().env()
    with (
        own_database(pg, jwt_secret, data_dir) as (db, rest),
        stack_on(
            db, rest, jwt_secret, data_dir, reaches=False, train_seconds=1.0, extra_env=extra
        ) as local,
    ):
        yield local
