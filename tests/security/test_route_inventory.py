"""Every route the three Function URL apps register is attacked by this suite (it is in
`attacks.ROUTES`, whose token, ownership and injection tests run on every entry), or it is in the
explicit allow-list below with the reason it takes no user token. A new route that nobody added
here fails, so it cannot quietly skip authentication."""

from __future__ import annotations

import pytest

from tests.contract_check import FUNCTIONS, normalised
from tests.contract_check import registered as registered_on
from tests.security.attacks import ROUTES

# Routes without a user's token, each with what protects it instead.
NOT_USER_ROUTES = {
    # Replicate's webhooks: a Standard Webhooks signature (tests/security/test_attack_webhooks.py).
    ("check_training_status", "POST", "/webhooks/replicate"),
    ("check_training_status", "POST", "/webhooks/replicate/previews"),
}


def registered(function: str) -> set[tuple[str, str, str]]:
    return {(function, method, path) for method, path in registered_on(function)}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_registered_route_is_attacked_or_allowed_on_purpose(function: str) -> None:
    attacked = {(r.function, r.method, normalised(r.path)) for r in ROUTES}
    routes = registered(function)
    assert routes, f"{function} registers no route?"
    assert routes - attacked - NOT_USER_ROUTES == set()


def test_the_lists_name_no_route_that_does_not_exist() -> None:
    every = set().union(*(registered(f) for f in FUNCTIONS))
    listed = {(r.function, r.method, normalised(r.path)) for r in ROUTES} | NOT_USER_ROUTES
    assert listed - every == set()
