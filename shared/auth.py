"""Supabase access-token verification, done locally with PyJWT (DESIGN §6).

HS256 tokens are checked with the project's JWT secret (legacy projects); ES256/RS256 tokens with the
project's JWKS, fetched once per container and refreshed when an unknown `kid` shows up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt

from shared.errors import Forbidden, Unauthorized
from shared.settings import Settings

ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")
CLOCK_LEEWAY_SECONDS = 30  # what PostgREST allows too
JWKS_TIMEOUT_SECONDS = 3

_jwks_clients: dict[str, jwt.PyJWKClient] = {}


@dataclass(frozen=True)
class Caller:
    """The signed-in person making a request."""

    user_id: UUID
    claims: dict[str, Any]


def _jwks_client(url: str) -> jwt.PyJWKClient:
    client = _jwks_clients.get(url)
    if client is None:
        client = jwt.PyJWKClient(url, cache_keys=True, lifespan=600, timeout=JWKS_TIMEOUT_SECONDS)
        _jwks_clients[url] = client
    return client


def bearer_token(headers: dict[str, str]) -> str:
    """The token from `Authorization: Bearer …`; header names are case-insensitive."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if not value:
        raise Unauthorized(
            "Sign in first: send your Supabase access token as 'Authorization: Bearer <token>'.",
            code="missing_token",
        )
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "The Authorization header must be 'Bearer <Supabase access token>'.",
            code="invalid_token",
        )
    return token.strip()


def verify_access_token(token: str, settings: Settings) -> Caller:
    """Check signature, expiry, audience, issuer and role; the caller is the token's `sub`."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Unauthorized("The access token is not a valid JWT.", code="invalid_token") from None
    alg = header.get("alg")
    key: Any
    if alg == "HS256":
        if settings.supabase_jwt_secret is None:
            raise Unauthorized("HS256 tokens are not accepted here.", code="invalid_token")
        key, algorithms = settings.supabase_jwt_secret.get_secret_value(), ["HS256"]
    elif alg in ASYMMETRIC_ALGORITHMS:
        try:
            key = _jwks_client(settings.jwks_url).get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise Unauthorized(
                "Could not fetch the signing keys to check your token; try again shortly.",
                code="token_check_unavailable",
            ) from None
        except jwt.PyJWKClientError:
            raise Unauthorized(
                "The access token's signing key is unknown.", code="invalid_token"
            ) from None
        algorithms = [alg]
    else:
        raise Unauthorized("The access token uses an unsupported algorithm.", code="invalid_token")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience="authenticated",
            issuer=settings.token_issuer,
            leeway=CLOCK_LEEWAY_SECONDS,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized(
            "Your session has expired; sign in again.", code="token_expired"
        ) from None
    except jwt.InvalidTokenError:
        raise Unauthorized(
            "The access token is invalid for this project; sign in again.", code="invalid_token"
        ) from None
    if claims.get("role") != "authenticated":
        raise Unauthorized("Only signed-in users may call this.", code="invalid_token")
    try:
        user_id = UUID(str(claims["sub"]))
    except ValueError:
        raise Unauthorized("The access token has no valid user id.", code="invalid_token") from None
    return Caller(user_id=user_id, claims=claims)


def authenticate(headers: dict[str, str], settings: Settings) -> Caller:
    return verify_access_token(bearer_token(headers), settings)


def check_claimed_user(caller: Caller, claimed: object) -> None:
    """A `userId` sent by the browser is optional, but when present it must be the caller."""
    if claimed in (None, ""):
        return
    try:
        same = UUID(str(claimed)) == caller.user_id
    except ValueError:
        same = False
    if not same:
        raise Forbidden("userId does not match the signed-in user.", code="user_mismatch")
