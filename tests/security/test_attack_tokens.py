"""Only a valid Supabase access token of a signed-in user gets past the door, on every user route,
through the local Function URLs (DESIGN §6)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from devstack.stack import LocalStack
from devstack.tokens import anon_key, service_role_key
from shared.api import auth
from tests.security.attacks import (
    ROUTES,
    SigningKey,
    bearer,
    error_of,
    get_status,
    hmac_token,
    insert_job,
    jwks,
    refusals,
    unsigned_token,
    user_claims,
)
from tests.stack_fixtures import User

JWKS_PATH = "/auth/v1/.well-known/jwks.json"

# A forged token for (stack, user id); every one is refused with 401 and its code on every route.
Forge = Callable[[LocalStack, str], str]


def _hs256(stack: LocalStack, user_id: str, secret: str | None = None, **overrides: Any) -> str:
    claims = user_claims(stack, user_id, **overrides)
    return hmac_token((secret or stack.jwt_secret).encode(), claims)


BAD_TOKENS: dict[str, tuple[Forge, str]] = {
    "garbage": (lambda s, u: "not-a-jwt", "invalid_token"),
    "three-garbage-parts": (lambda s, u: "eyJhbGciOi.eyJzdWIi.c2ln", "invalid_token"),
    "expired": (
        lambda s, u: _hs256(s, u, exp=int(time.time()) - 120, iat=int(time.time()) - 3720),
        "token_expired",
    ),
    "not-yet-valid-nbf": (lambda s, u: _hs256(s, u, nbf=int(time.time()) + 600), "invalid_token"),
    "issued-in-the-future": (
        lambda s, u: _hs256(s, u, iat=int(time.time()) + 600),
        "invalid_token",
    ),
    "no-expiry": (lambda s, u: _hs256(s, u, exp=None), "invalid_token"),
    "wrong-audience": (lambda s, u: _hs256(s, u, aud="anon"), "invalid_token"),
    "no-audience": (lambda s, u: _hs256(s, u, aud=None), "invalid_token"),
    "wrong-issuer": (lambda s, u: _hs256(s, u, iss="https://evil.test/auth/v1"), "invalid_token"),
    "other-project-issuer": (
        lambda s, u: _hs256(s, u, iss="https://abcdefghijklmnop.supabase.co/auth/v1"),
        "invalid_token",
    ),
    "signed-with-another-secret": (
        lambda s, u: _hs256(s, u, secret="another-project-secret-0123456789abcdef"),
        "invalid_token",
    ),
    "alg-none": (lambda s, u: unsigned_token(user_claims(s, u)), "invalid_token"),
    "alg-HS512": (
        lambda s, u: hmac_token(s.jwt_secret.encode(), user_claims(s, u), alg="HS512"),
        "invalid_token",
    ),
    "anon-key-as-user-token": (lambda s, u: anon_key(s.jwt_secret), "invalid_token"),
    "service-role-key-from-a-browser": (
        lambda s, u: service_role_key(s.jwt_secret),
        "invalid_token",
    ),
    "service-role-claims-with-user-audience": (
        lambda s, u: _hs256(s, u, role="service_role"),
        "invalid_token",
    ),
    "anon-role-with-user-audience": (lambda s, u: _hs256(s, u, role="anon"), "invalid_token"),
    "no-subject": (lambda s, u: _hs256(s, u, sub=None), "invalid_token"),
    "subject-not-a-uuid": (lambda s, u: _hs256(s, u, sub="admin"), "invalid_token"),
}


@pytest.fixture
def planted(stack: LocalStack, db: psycopg.Connection, user: User) -> str:
    """A pending job of `user`: a forged token that got through would start or read it."""
    return insert_job(db, user.id)


def test_no_token_is_401_on_every_route(stack: LocalStack, http: httpx.Client, planted: str):
    answers = refusals(http, stack, ROUTES, {}, planted)
    assert answers == dict.fromkeys(answers, (401, "missing_token"))
    assert set(answers) == {route.name for route in ROUTES}


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Basic dXNlcjpwYXNz", "invalid_token"),
        ("Bearer", "invalid_token"),
        ("Token abc", "invalid_token"),
        ("Bearerabc.def.ghi", "invalid_token"),
    ],
)
def test_a_malformed_authorization_header_is_401_on_every_route(
    stack: LocalStack, http: httpx.Client, planted: str, header: str, code: str
):
    answers = refusals(http, stack, ROUTES, {"Authorization": header}, planted)
    assert answers == dict.fromkeys(answers, (401, code))


@pytest.mark.parametrize("forgery", list(BAD_TOKENS))
def test_a_bad_token_is_401_on_every_route(
    stack: LocalStack,
    http: httpx.Client,
    db: psycopg.Connection,
    user: User,
    planted: str,
    forgery: str,
):
    forge, code = BAD_TOKENS[forgery]
    jobs_before = db.execute("select count(*) from public.ai_training_jobs").fetchone()
    answers = refusals(http, stack, ROUTES, bearer(forge(stack, user.id)), planted)
    assert answers == dict.fromkeys(answers, (401, code))
    assert db.execute("select count(*) from public.ai_training_jobs").fetchone() == jobs_before
    row = db.execute(
        "select status, deletion_requested_at from public.ai_training_jobs where id = %s",
        [planted],
    ).fetchone()
    assert row == ("pending", None)  # not started, canceled or deleted


def test_the_genuine_token_opens_the_door(
    stack: LocalStack, http: httpx.Client, user: User, planted: str
):
    # The control for every refusal above: the same request with the real token is answered.
    response = get_status(http, stack, user.headers, planted)
    assert response.status_code == 200 and response.json()["jobId"] == planted


# --------------------------------------------------------------------------- asymmetric keys


def _jwks_fetches(stack: LocalStack) -> int:
    assert stack.gateway is not None
    return stack.gateway.counters.count("GET", JWKS_PATH)


def _publish(stack: LocalStack, *keys: SigningKey) -> None:
    assert stack.gateway is not None
    stack.gateway.jwks = jwks(*keys)


def _status_with(stack: LocalStack, http: httpx.Client, token: str, job_id: str) -> httpx.Response:
    return get_status(http, stack, bearer(token), job_id)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_asymmetric_tokens_are_checked_against_the_jwks(
    stack: LocalStack, http: httpx.Client, user: User, planted: str, alg: str
):
    key = SigningKey.new(alg)
    _publish(stack, key, SigningKey.new("RS256" if alg == "ES256" else "ES256"))
    response = _status_with(stack, http, key.sign(user_claims(stack, user.id)), planted)
    assert response.status_code == 200 and response.json()["jobId"] == planted
    # Signed by a key of the same kind and kid that the project never published: refused.
    impostor = SigningKey(kid=key.kid, alg=alg, private=SigningKey.new(alg).private)
    forged = _status_with(stack, http, impostor.sign(user_claims(stack, user.id)), planted)
    assert error_of(forged) == (401, "invalid_token")
    # The asymmetric path checks the claims just like HS256 does.
    expired = key.sign(user_claims(stack, user.id, exp=int(time.time()) - 120))
    assert error_of(_status_with(stack, http, expired, planted)) == (401, "token_expired")
    wrong_aud = key.sign(user_claims(stack, user.id, aud="anon"))
    assert error_of(_status_with(stack, http, wrong_aud, planted)) == (401, "invalid_token")


def test_the_jwks_is_fetched_once_and_an_unknown_kid_triggers_one_refresh(
    stack: LocalStack, http: httpx.Client, user: User, planted: str
):
    first, rotated_in = SigningKey.new("ES256"), SigningKey.new("ES256")
    _publish(stack, first)
    before = _jwks_fetches(stack)
    for _ in range(3):
        token = first.sign(user_claims(stack, user.id))
        assert _status_with(stack, http, token, planted).status_code == 200
    assert _jwks_fetches(stack) == before + 1  # once per container, not per request

    _publish(stack, first, rotated_in)
    token = rotated_in.sign(user_claims(stack, user.id))
    assert _status_with(stack, http, token, planted).status_code == 200
    assert _jwks_fetches(stack) == before + 2  # the unknown kid: exactly one refresh

    # Made-up kids cannot turn every request into a JWKS fetch: one forced refresh per cooldown.
    for n in range(3):
        made_up = SigningKey(kid=f"made-up-{n}", alg="ES256", private=first.private)
        response = _status_with(stack, http, made_up.sign(user_claims(stack, user.id)), planted)
        assert error_of(response) == (401, "invalid_token")
    assert _jwks_fetches(stack) == before + 2


def test_a_key_removed_from_the_jwks_stops_working_after_the_refresh(
    stack: LocalStack, http: httpx.Client, user: User, planted: str
):
    retired, current = SigningKey.new("RS256"), SigningKey.new("ES256")
    _publish(stack, retired)
    assert _status_with(stack, http, retired.sign(user_claims(stack, user.id)), planted).is_success
    _publish(stack, current)  # the project revokes the old key
    # The first token with the new kid refreshes the keys; from then on the old key is refused.
    assert _status_with(stack, http, current.sign(user_claims(stack, user.id)), planted).is_success
    old = _status_with(stack, http, retired.sign(user_claims(stack, user.id)), planted)
    assert error_of(old) == (401, "invalid_token")


def test_a_revoked_key_stops_working_when_the_keys_age_out(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    planted: str,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(auth, "JWKS_MAX_AGE_SECONDS", 0.0)  # every request sees an aged-out set
    revoked = SigningKey.new("ES256")
    _publish(stack, revoked)
    assert _status_with(stack, http, revoked.sign(user_claims(stack, user.id)), planted).is_success
    _publish(stack)
    response = _status_with(stack, http, revoked.sign(user_claims(stack, user.id)), planted)
    assert error_of(response) == (401, "invalid_token")


@pytest.mark.parametrize("form", ["pem", "jwk-json"])
def test_key_confusion_hs256_signed_with_the_public_key_is_refused(
    stack: LocalStack, http: httpx.Client, user: User, planted: str, form: str
):
    key = SigningKey.new("RS256")
    _publish(stack, key)
    public = key.public_pem if form == "pem" else json.dumps(key.jwk).encode()
    token = hmac_token(public, user_claims(stack, user.id), kid=key.kid)
    assert error_of(_status_with(stack, http, token, planted)) == (401, "invalid_token")


def test_a_token_cannot_borrow_a_key_of_another_algorithm(
    stack: LocalStack, http: httpx.Client, user: User, planted: str
):
    ec_key, rsa_key = SigningKey.new("ES256"), SigningKey.new("RS256")
    _publish(stack, ec_key)
    # RS256 header naming the EC key's kid, signed with some RSA key.
    token = SigningKey(kid=ec_key.kid, alg="RS256", private=rsa_key.private).sign(
        user_claims(stack, user.id)
    )
    assert error_of(_status_with(stack, http, token, planted)) == (401, "invalid_token")


@pytest.fixture
def silent_jwks() -> Iterator[str]:
    """A JWKS URL that accepts the connection and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/auth/v1/.well-known/jwks.json"


def test_the_jwks_fetch_has_a_timeout(
    stack: LocalStack,
    user: User,
    planted: str,
    silent_jwks: str,
    function_env: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(auth, "JWKS_TIMEOUT_SECONDS", 0.3)
    token = SigningKey.new("ES256").sign(user_claims(stack, user.id))
    with function_env(SUPABASE_JWKS_URL=silent_jwks), httpx.Client(timeout=20.0) as client:
        # Without a timeout the handler would wait forever and this client would time out instead.
        response = _status_with(stack, client, token, planted)
    # Upstream trouble, not a bad token: the frontend should retry, not sign the person out.
    assert error_of(response) == (503, "token_check_unavailable")


def test_without_a_jwt_secret_hs256_tokens_are_refused(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    planted: str,
    function_env: Callable[..., Any],
):
    # A project on asymmetric keys only: even a token signed with the old secret is refused.
    with function_env(SUPABASE_JWT_SECRET=None):
        response = get_status(http, stack, user.headers, planted)
    assert error_of(response) == (401, "invalid_token")
