"""The attack suite runs against the session stack (tests/stack_fixtures.py), over real HTTP."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from devstack.stack import LocalStack
from shared import bootstrap
from shared.api import auth


def _forget_keys(stack: LocalStack) -> None:
    assert stack.gateway is not None
    stack.gateway.jwks = {"keys": []}
    auth.signing_keys.cache_clear()


@pytest.fixture(autouse=True)
def _clean_stack(clean_faults: None, stack: LocalStack) -> Iterator[None]:
    """No faults, no JWKS keys and no cached signing keys before and after every attack."""
    _forget_keys(stack)
    yield
    assert stack.gateway is not None and stack.replicate is not None
    stack.gateway.rest_faults.clear()
    stack.replicate.webhook_faults.clear()
    _forget_keys(stack)


@contextmanager
def _function_env(**changes: str | None) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        bootstrap.reset()  # the handlers read their settings again on the next request
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        bootstrap.reset()


@pytest.fixture
def function_env() -> Callable[..., AbstractContextManager[None]]:
    """`with function_env(NAME="value", OTHER=None):` runs the handlers with a changed environment
    (None unsets), as a redeploy with that configuration would; restored afterwards."""
    return _function_env
