"""Local sign-up and password sign-in on the gateway, through the real `supabase` client's
`auth.sign_up` / `auth.sign_in_with_password`, and the refusals as Supabase Auth sends them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from devstack.stack import LocalStack
from devstack.tokens import anon_key, service_role_key
from supabase import Client, create_client

PASSWORD = "correct horse battery"


@pytest.fixture
def anon(stack: LocalStack) -> Client:
    return create_client(stack.supabase_url, anon_key(stack.jwt_secret))


def new_email() -> str:
    return f"auth-{uuid.uuid4().hex[:10]}@flurrty.test"


def user_row(db: psycopg.Connection, email: str) -> tuple[Any, ...] | None:
    return db.execute(
        "select id::text, encrypted_password, email_confirmed_at, last_sign_in_at"
        " from auth.users where email = %s",
        (email,),
    ).fetchone()


def test_sign_up_then_sign_in_with_the_supabase_client_gives_tokens_the_functions_accept(
    stack: LocalStack, anon: Client, http: httpx.Client, db: psycopg.Connection
) -> None:
    email = new_email()
    signed_up = anon.auth.sign_up({"email": email, "password": PASSWORD})
    assert signed_up.user is not None and signed_up.session is not None
    assert signed_up.user.email == email and signed_up.user.email_confirmed_at is not None
    assert signed_up.user.app_metadata == {"provider": "email", "providers": ["email"]}

    row = user_row(db, email)
    assert row is not None and row[0] == signed_up.user.id
    assert row[1].startswith("$scrypt$") and PASSWORD not in row[1]  # stored hashed, salted
    assert row[3] is None

    session = anon.auth.sign_in_with_password(
        {"email": email.upper(), "password": PASSWORD}
    ).session
    assert session is not None
    assert session.token_type == "bearer" and session.expires_in == 3600
    assert session.expires_at is not None and session.refresh_token
    assert session.user.id == signed_up.user.id
    assert user_row(db, email)[3] is not None  # type: ignore[index]  # last_sign_in_at recorded

    claims = jwt.decode(
        session.access_token, stack.jwt_secret, algorithms=["HS256"], audience="authenticated"
    )
    assert claims["sub"] == session.user.id
    assert claims["iss"] == f"{stack.supabase_url}/auth/v1"
    assert (claims["role"], claims["email"], claims["aal"]) == ("authenticated", email, "aal1")
    assert claims["amr"][0]["method"] == "password"
    assert abs(claims["exp"] - session.expires_at) <= 1

    # The functions take it like any Supabase access token: an unknown job, not a bad token.
    status = http.get(
        stack.url("check_training_status"),
        params={"jobId": str(uuid.uuid4())},
        headers={"Authorization": f"Bearer {session.access_token}"},
    )
    assert status.status_code == 404 and status.json()["error"]["code"] == "job_not_found"

    # The admin read the backend uses for e-mail notices sees the same user.
    key = service_role_key(stack.jwt_secret)
    admin = http.get(
        f"{stack.supabase_url}/auth/v1/admin/users/{session.user.id}",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    )
    assert admin.status_code == 200 and admin.json()["email"] == email


def test_wrong_password_and_unknown_email_are_the_same_refusal(anon: Client) -> None:
    email = new_email()
    anon.auth.sign_up({"email": email, "password": PASSWORD})
    for credentials in (
        {"email": email, "password": "wrong password"},
        {"email": new_email(), "password": PASSWORD},
    ):
        with pytest.raises(AuthApiError) as caught:
            anon.auth.sign_in_with_password(credentials)  # type: ignore[arg-type]
        assert (caught.value.status, caught.value.code) == (400, "invalid_credentials")
        assert caught.value.message == "Invalid login credentials"


def test_sign_up_refusals_leave_no_user_behind(anon: Client, db: psycopg.Connection) -> None:
    email = new_email()
    with pytest.raises(AuthWeakPasswordError) as weak:
        anon.auth.sign_up({"email": email, "password": "12345"})
    assert (weak.value.status, weak.value.code, weak.value.reasons) == (
        422,
        "weak_password",
        ["length"],
    )
    assert "at least 6 characters" in weak.value.message

    with pytest.raises(AuthApiError) as invalid:
        anon.auth.sign_up({"email": "not-an-address", "password": PASSWORD})
    assert (invalid.value.status, invalid.value.code) == (400, "email_address_invalid")
    assert user_row(db, email) is None and user_row(db, "not-an-address") is None

    anon.auth.sign_up({"email": email, "password": PASSWORD})
    with pytest.raises(AuthApiError) as twice:
        anon.auth.sign_up({"email": email, "password": "another password"})
    assert (twice.value.status, twice.value.code, twice.value.message) == (
        422,
        "user_already_exists",
        "User already registered",
    )


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        ({}, 401, {"message": "No API key found in request"}),
        ({"apikey": "not-a-key"}, 401, {"message": "Invalid authentication credentials"}),
    ],
)
def test_the_auth_routes_want_the_projects_apikey_as_kong_does(
    stack: LocalStack,
    http: httpx.Client,
    headers: dict[str, str],
    status: int,
    body: dict[str, str],
) -> None:
    for path in ("signup", "token?grant_type=password"):
        response = http.post(
            f"{stack.supabase_url}/auth/v1/{path}",
            json={"email": new_email(), "password": PASSWORD},
            headers=headers,
        )
        assert (response.status_code, response.json()) == (status, body)


def test_errors_take_the_shape_the_clients_api_version_asks_for(
    stack: LocalStack, http: httpx.Client
) -> None:
    url = f"{stack.supabase_url}/auth/v1/token"
    headers = {"apikey": anon_key(stack.jwt_secret)}
    body = {"email": new_email(), "password": PASSWORD}

    legacy = http.post(url, params={"grant_type": "password"}, json=body, headers=headers)
    assert (legacy.status_code, legacy.json()) == (
        400,
        {"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"},
    )
    assert "x-supabase-api-version" not in legacy.headers

    versioned = http.post(
        url,
        params={"grant_type": "password"},
        json=body,
        headers={**headers, "X-Supabase-Api-Version": "2024-01-01"},
    )
    assert versioned.json() == {
        "code": "invalid_credentials",
        "message": "Invalid login credentials",
    }
    assert versioned.headers["x-supabase-api-version"] == "2024-01-01"

    refresh = http.post(
        url, params={"grant_type": "refresh_token"}, json={"refresh_token": "x"}, headers=headers
    )
    assert refresh.status_code == 400 and refresh.json()["error_code"] == "validation_failed"

    broken = http.post(
        f"{stack.supabase_url}/auth/v1/signup",
        content=b"{not json",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400 and broken.json()["error_code"] == "bad_json"
