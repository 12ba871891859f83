import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.tokens import anon_key, mint_token, service_role_key, user_access_token
from shared.api import auth
from shared.domain.caller import check_claimed_user
from shared.errors import UpstreamError
from tests.unit.helpers import JWT_SECRET, SUPABASE_URL, make_settings, raises_status

SETTINGS = make_settings()
USER = str(uuid.uuid4())


def test_a_user_token_is_accepted():
    token = user_access_token(JWT_SECRET, SUPABASE_URL, USER)
    caller = auth.authenticate({"Authorization": f"Bearer {token}"}, SETTINGS)
    assert str(caller.user_id) == USER


def _user_token(**overrides: Any) -> str:
    claims: dict[str, Any] = dict(
        role="authenticated", sub=USER, issuer=f"{SUPABASE_URL}/auth/v1", audience="authenticated"
    )
    claims.update(overrides)
    secret = claims.pop("secret", JWT_SECRET)
    return mint_token(secret, **claims)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(_user_token(ttl_seconds=-120), id="expired"),
        pytest.param(_user_token(audience="anon"), id="wrong-audience"),
        pytest.param(_user_token(issuer="https://evil.test/auth/v1"), id="wrong-issuer"),
        pytest.param(
            _user_token(secret="another-secret-another-secret-0123456789"), id="other-secret"
        ),
        pytest.param(_user_token(role="service_role"), id="service-role-claim"),
        pytest.param(service_role_key(JWT_SECRET), id="service-role-key"),
        pytest.param(anon_key(JWT_SECRET), id="anon-key"),
        pytest.param("not.a.jwt", id="garbage"),
        pytest.param(
            jwt.encode(
                {
                    "sub": USER,
                    "role": "authenticated",
                    "aud": "authenticated",
                    "iss": f"{SUPABASE_URL}/auth/v1",
                    "exp": int(time.time()) + 60,
                },
                None,  # type: ignore[arg-type]
                algorithm="none",
            ),
            id="alg-none",
        ),
    ],
)
def test_bad_tokens_are_401(token):
    with raises_status(401):
        auth.authenticate({"authorization": f"Bearer {token}"}, SETTINGS)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}]
)
def test_missing_or_malformed_header_is_401(headers):
    with raises_status(401):
        auth.authenticate(headers, SETTINGS)


def test_es256_token_needs_the_jwks_and_is_refused_without_it():
    auth.signing_keys.cache_clear()
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        {
            "sub": USER,
            "role": "authenticated",
            "aud": "authenticated",
            "iss": f"{SUPABASE_URL}/auth/v1",
            "exp": int(time.time()) + 60,
        },
        key,
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    # The JWKS URL points at a port nobody listens on: the check fails closed, as upstream trouble
    # (503: the token may well be fine), not as a bad token.
    settings = make_settings(supabase_jwks_url="http://127.0.0.1:9/jwks.json")
    with pytest.raises(UpstreamError) as refused:
        auth.authenticate({"Authorization": f"Bearer {token}"}, settings)
    assert refused.value.code == "token_check_unavailable"


def test_user_id_mismatch_is_403_and_match_or_absence_is_fine():
    token = user_access_token(JWT_SECRET, SUPABASE_URL, USER)
    caller = auth.authenticate({"Authorization": f"Bearer {token}"}, SETTINGS)
    check_claimed_user(caller, None)
    check_claimed_user(caller, USER)
    with raises_status(403):
        check_claimed_user(caller, str(uuid.uuid4()))
    with raises_status(403):
        check_claimed_user(caller, "not-a-uuid")


def test_signing_keys_skip_unusable_entries_and_survive_a_failed_refresh(monkeypatch):
    usable = jwt.algorithms.ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
    )
    published = {"keys": [{"kty": "nope", "kid": "odd"}, "not-a-key", {**usable, "kid": "k1"}]}
    keys = auth.SigningKeys("http://127.0.0.1:9/jwks.json")
    monkeypatch.setattr(keys._client, "fetch_data", lambda: published)
    assert keys.get("k1") is not None and keys.get("odd") is None

    def unreachable():
        raise jwt.PyJWKClientConnectionError("connection refused")

    # The set has aged out and the JWKS is down: the keys fetched before keep working (a Supabase
    # hiccup must not sign everyone out), while a kid never seen is upstream trouble (503).
    monkeypatch.setattr(auth, "JWKS_MAX_AGE_SECONDS", 0.0)
    monkeypatch.setattr(keys._client, "fetch_data", unreachable)
    assert keys.get("k1") is not None
    with pytest.raises(UpstreamError):
        keys.get("k2")
