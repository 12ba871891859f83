"""Local e-mail + password accounts in the `auth.users` stub, answered the way Supabase Auth
(GoTrue) answers `POST /auth/v1/signup` and `POST /auth/v1/token?grant_type=password`.

The JSON follows GoTrue's `AccessTokenResponse` and `models.User` (supabase/auth, read with the
look-up tools; the same fields `supabase_auth`'s `Session` and `User` parse). Sign-up confirms at
once, as a local Supabase project does (the CLI turns e-mail confirmations off), so it returns a
session. Access tokens are minted like devstack/tokens.py does for every other local user. Left
out: refresh tokens are random and cannot be redeemed (no `grant_type=refresh_token`), no
identities rows, no rate limits, no phone sign-up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from devstack.tokens import user_access_token

ACCESS_TOKEN_SECONDS = 3600
PASSWORD_MIN_LENGTH = 6  # GoTrue's default GOTRUE_PASSWORD_MIN_LENGTH
# GoTrue's own e-mail check is stricter; this is enough to refuse obvious typos.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass
class AuthError(Exception):
    """A refusal as GoTrue sends it: HTTP status, its `error_code`, the message."""

    status: int
    code: str
    message: str
    extra: dict[str, Any] | None = None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"$scrypt${_SCRYPT['n']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    parts = (stored or "").split("$")
    if len(parts) != 5 or parts[1] != "scrypt":
        return False
    salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    params = {**_SCRYPT, "n": int(parts[2])}
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=len(expected), **params)
    return hmac.compare_digest(digest, expected)


_USER_COLUMNS = (
    "id::text, aud, role, email, email_confirmed_at, last_sign_in_at, raw_app_meta_data,"
    " raw_user_meta_data, created_at, updated_at, is_anonymous"
)


def user_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """One auth.users row (selected as `_USER_COLUMNS`) as GoTrue's `models.User` JSON."""
    (user_id, aud, role, email, confirmed, last_sign_in, app_meta, user_meta, created, updated,
     anonymous) = row  # fmt: skip

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    body: dict[str, Any] = {
        "id": user_id,
        "aud": aud or "authenticated",
        "role": role or "authenticated",
        "email": email or "",
        "phone": "",
        "app_metadata": app_meta or {"provider": "email", "providers": ["email"]},
        "user_metadata": user_meta or {},
        "identities": [],
        "created_at": iso(created),
        "updated_at": iso(updated or created),
        "is_anonymous": bool(anonymous),
    }
    if confirmed is not None:
        body["email_confirmed_at"] = body["confirmed_at"] = iso(confirmed)
    if last_sign_in is not None:
        body["last_sign_in_at"] = iso(last_sign_in)
    return body


def read_user(dsn: str, user_id: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"select {_USER_COLUMNS} from auth.users where id = %s", (user_id,)
        ).fetchone()
    return user_json(row) if row else None


def _credentials(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """(e-mail, password, user data) from a sign-up or sign-in body, or the refusal GoTrue sends."""
    try:
        params = json.loads(body or b"{}")
    except ValueError as exc:
        raise AuthError(400, "bad_json", f"Could not parse request body as JSON: {exc}") from None
    if not isinstance(params, dict):
        raise AuthError(400, "bad_json", "Could not parse request body as JSON: not an object")
    if params.get("phone"):
        raise AuthError(400, "phone_provider_disabled", "Phone logins are disabled")
    data = params.get("data") or {}
    if not isinstance(data, dict):
        raise AuthError(400, "bad_json", "data must be a JSON object")
    return str(params.get("email") or "").strip().lower(), str(params.get("password") or ""), data


def sign_up(dsn: str, body: bytes) -> str:
    """Create a confirmed e-mail user; returns its id."""
    email, password, data = _credentials(body)
    if not password:
        raise AuthError(422, "validation_failed", "Signup requires a valid password")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AuthError(
            422,
            "weak_password",
            f"Password should be at least {PASSWORD_MIN_LENGTH} characters.",
            {"weak_password": {"reasons": ["length"]}},
        )
    if not email:
        raise AuthError(422, "validation_failed", "To signup, please provide your email")
    if not _EMAIL.match(email):
        raise AuthError(400, "email_address_invalid", f'Email address "{email}" is invalid')
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "insert into auth.users (aud, role, email, encrypted_password, email_confirmed_at,"
            " raw_app_meta_data, raw_user_meta_data)"
            " values ('authenticated', 'authenticated', %s, %s, now(), %s, %s)"
            " on conflict (email) do nothing returning id::text",
            (
                email,
                hash_password(password),
                json.dumps({"provider": "email", "providers": ["email"]}),
                json.dumps(data),
            ),
        ).fetchone()
    if row is None:
        raise AuthError(422, "user_already_exists", "User already registered")
    return str(row[0])


def sign_in(dsn: str, body: bytes) -> str:
    """Check an e-mail + password; returns the user's id and records the sign-in."""
    email, password, _ = _credentials(body)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select id::text, encrypted_password, email_confirmed_at from auth.users"
            " where email = %s",
            (email,),
        ).fetchone()
        if row is None or not email or not verify_password(password, row[1]):
            raise AuthError(400, "invalid_credentials", "Invalid login credentials")
        if row[2] is None:
            raise AuthError(400, "email_not_confirmed", "Email not confirmed")
        conn.execute("update auth.users set last_sign_in_at = now() where id = %s", (row[0],))
    return str(row[0])


def session(dsn: str, jwt_secret: str, supabase_url: str, user_id: str) -> dict[str, Any]:
    """GoTrue's AccessTokenResponse for a user who just signed up or in."""
    user = read_user(dsn, user_id)
    assert user is not None
    now = int(time.time())
    token = user_access_token(
        jwt_secret,
        supabase_url,
        user_id,
        ttl_seconds=ACCESS_TOKEN_SECONDS,
        email=user["email"],
        phone="",
        app_metadata=user["app_metadata"],
        user_metadata=user["user_metadata"],
        amr=[{"method": "password", "timestamp": now}],
    )
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "expires_at": now + ACCESS_TOKEN_SECONDS,
        "refresh_token": secrets.token_urlsafe(9),
        "user": user,
    }
