"""End-to-end tests share the session stack from tests/stack_fixtures.py (see tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.stack_fixtures import User, photo_files, wait_for

__all__ = ["User", "photo_files", "wait_for"]


@pytest.fixture(autouse=True)
def _clean_faults(clean_faults: None) -> None:
    """Every test here leaves the emulators without faults."""
