"""End-to-end tests share the session stack from tests/stack_fixtures.py (see tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from devstack.stack import LocalStack
from shared import bootstrap
from tests.stack_fixtures import User, photo_files, wait_for

__all__ = ["User", "photo_files", "wait_for"]


@pytest.fixture(autouse=True)
def _clean_faults(clean_faults: None) -> None:
    """Every test here leaves the emulators without faults."""


@pytest.fixture
def function_settings(stack: LocalStack) -> Iterator[Callable[..., None]]:
    """`function_settings(NAME="value")`: the handlers' environment for this test, as a redeploy
    with that configuration would have it; restored afterwards."""
    saved: dict[str, str | None] = {}

    def set_values(**values: str) -> None:
        for name, value in values.items():
            saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        bootstrap.reset()  # settings are read once per container

    yield set_values
    for name, before in saved.items():
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
    bootstrap.reset()


@pytest.fixture
def refresh_every(function_settings: Callable[..., None]) -> Callable[[float], None]:
    """STATUS_REFRESH_SECONDS for the handlers during this test."""
    return lambda seconds: function_settings(STATUS_REFRESH_SECONDS=str(seconds))
