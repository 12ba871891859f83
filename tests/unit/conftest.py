"""Unit-test fixtures: `deps`, the use cases' container over in-memory fakes."""

from __future__ import annotations

import pytest

from shared.services.deps import Deps
from tests.unit.helpers import make_deps


@pytest.fixture
def deps() -> Deps:
    """Fakes that enforce the database's rules; status reads always look at Replicate."""
    return make_deps(status_refresh_seconds=0)
