"""Every route, driven by Hypothesis with generated bodies, headers, query strings and tokens
(tests/security/fuzz.py): never a 5xx, the error envelope always `{error: {code, message}}`,
nothing left behind by a refusal. A bounded example count here (`FUZZ_EXAMPLES`, default 30 per
route); `python -m bench.fuzz` runs many more and records the figures."""

from __future__ import annotations

import os

import httpx
import pytest

from devstack.stack import LocalStack
from shared.contract import routes
from tests.security.fuzz import FuzzWorld, fuzz_route

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def world(stack: LocalStack, http: httpx.Client) -> FuzzWorld:
    return FuzzWorld.make(stack, http)


@pytest.mark.parametrize("route", [pytest.param(r, id=r.operation_id) for r in routes.ROUTES])
def test_no_generated_request_gets_a_5xx_or_leaves_anything(
    world: FuzzWorld, route: routes.Route
) -> None:
    fuzz_route(world, route, EXAMPLES)
    assert sum(world.answers.values()) >= EXAMPLES  # the requests were sent
