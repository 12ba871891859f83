"""Supabase-shaped JWTs for the local stack: API keys and user access tokens (HS256)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt


def mint_token(
    secret: str,
    *,
    role: str,
    sub: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    ttl_seconds: int = 3600,
    **claims: Any,
) -> str:
    """Sign a token the way Supabase Auth does (legacy HS256 project secret)."""
    now = int(time.time())
    payload: dict[str, Any] = {"role": role, "iat": now, "exp": now + ttl_seconds, **claims}
    if sub is not None:
        payload["sub"] = sub
    if issuer is not None:
        payload["iss"] = issuer
    if audience is not None:
        payload["aud"] = audience
    return jwt.encode(payload, secret, algorithm="HS256")


def service_role_key(secret: str) -> str:
    """The legacy `service_role` API key: a long-lived JWT with role service_role."""
    return mint_token(secret, role="service_role", issuer="supabase", ttl_seconds=10 * 365 * 86400)


def anon_key(secret: str) -> str:
    """The legacy `anon` API key."""
    return mint_token(secret, role="anon", issuer="supabase", ttl_seconds=10 * 365 * 86400)


def user_access_token(
    secret: str, supabase_url: str, user_id: str, *, ttl_seconds: int = 3600, **claims: Any
) -> str:
    """An access token as Supabase Auth issues it to a signed-in user."""
    return mint_token(
        secret,
        role="authenticated",
        sub=user_id,
        issuer=f"{supabase_url.rstrip('/')}/auth/v1",
        audience="authenticated",
        ttl_seconds=ttl_seconds,
        session_id=str(uuid.uuid4()),
        aal="aal1",
        is_anonymous=False,
        **claims,
    )
