"""Supabase access-token verification, done locally with PyJWT.

HS256 tokens are checked with the project's JWT secret (legacy projects); ES256/RS256 tokens with the
project's JWKS (`SigningKeys`: fetched once per container, refreshed when a token names an unknown
`kid`, with a timeout). Every token must carry an unexpired `exp`, `aud` and `role` both
"authenticated", and the project's issuer; the caller is its `sub`.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.domain.caller import Caller
from shared.errors import AppError, ErrorCode, UpstreamError
from shared.plumbing.settings import Settings

if TYPE_CHECKING:
    import jwt

logger = Logger(child=True)


ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")


CLOCK_LEEWAY_SECONDS = 30  # what PostgREST allows too


JWKS_TIMEOUT_SECONDS = 3.0


JWKS_MAX_AGE_SECONDS = 600.0  # Supabase's edge caches the JWKS for 10 minutes as well


# Tokens with made-up `kid`s may force at most one early refetch per this many seconds.
JWKS_REFRESH_COOLDOWN_SECONDS = 30.0


class SigningKeys:
    """The project's public signing keys, shared by every request in this container.

    Only keys from the latest successful fetch are trusted (no per-`kid` cache outlives a fetch),
    so a key removed from the JWKS stops working at the next refetch: after JWKS_MAX_AGE_SECONDS,
    or early when a token names a `kid` we do not hold.
    """

    def __init__(self, url: str) -> None:
        import jwt

        # PyJWKClient only fetches here (http(s) only, no redirects, a timeout). The caching is
        # ours: PyJWT's refetches an empty key set on every call, and its per-kid LRU never expires.
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=JWKS_TIMEOUT_SECONDS)
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._forced_at = float("-inf")

    def get(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            now = time.monotonic()
            expired = self._fetched_at is None or now - self._fetched_at > JWKS_MAX_AGE_SECONDS
            unknown = kid not in self._keys
            if unknown and not expired:
                if now - self._forced_at < JWKS_REFRESH_COOLDOWN_SECONDS:
                    return None
                self._forced_at = now
            if expired or unknown:
                try:
                    self._fetch(now)
                except UpstreamError:
                    if kid not in self._keys:
                        raise
                    logger.warning("could not refresh the JWKS; using the keys fetched before")
            return self._keys.get(kid)

    def _fetch(self, now: float) -> None:
        import jwt

        try:
            data = self._client.fetch_data()
        except (jwt.PyJWKClientError, ValueError):  # unreachable, timed out, not JSON
            raise UpstreamError(
                "Could not fetch the signing keys to check your token; try again shortly.",
                ErrorCode.TOKEN_CHECK_UNAVAILABLE,
            ) from None
        listed = data.get("keys")  # fetch_data has checked that the answer is a JSON object
        keys: dict[str, jwt.PyJWK] = {}
        for raw in listed if isinstance(listed, list) else []:
            try:
                key = jwt.PyJWK(raw)
            except (jwt.PyJWTError, AttributeError, TypeError):
                continue  # a key we cannot use (unknown type, malformed); the others still count
            if key.key_id and key.public_key_use in ("sig", None):
                keys[key.key_id] = key
        self._keys, self._fetched_at = keys, now


@lru_cache(maxsize=4)
def signing_keys(jwks_url: str) -> SigningKeys:
    """One key cache per JWKS URL for this container (tests start afresh with `cache_clear`)."""
    return SigningKeys(jwks_url)


def bearer_token(headers: dict[str, str]) -> str:
    """The token from `Authorization: Bearer …`; header names are case-insensitive."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if not value:
        raise AppError(
            ErrorCode.MISSING_TOKEN,
            "Sign in first: send your Supabase access token as 'Authorization: Bearer <token>'.",
        )
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AppError(
            ErrorCode.INVALID_TOKEN,
            "The Authorization header must be 'Bearer <Supabase access token>'.",
        )
    return token.strip()


def verify_access_token(token: str, settings: Settings) -> Caller:
    """Check signature, expiry, audience, issuer and role; the caller is the token's `sub`."""
    # Imported here, not at module level: PyJWT pulls in `cryptography` (~40 ms of cold start),
    # which paths without a caller's token (webhooks, the sweep) never need.
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AppError(ErrorCode.INVALID_TOKEN, "The access token is not a valid JWT.") from None
    alg = header.get("alg")
    key: Any
    if alg == "HS256":
        if settings.supabase_jwt_secret is None:
            raise AppError(ErrorCode.INVALID_TOKEN, "HS256 tokens are not accepted here.")
        key = settings.supabase_jwt_secret.get_secret_value()
    elif alg in ASYMMETRIC_ALGORITHMS:
        kid = header.get("kid")
        jwk = signing_keys(settings.jwks_url).get(kid) if isinstance(kid, str) and kid else None
        # The key decides the algorithm: an RS256 header cannot borrow an EC key, or the reverse.
        if jwk is None or jwk.algorithm_name != alg:
            raise AppError(ErrorCode.INVALID_TOKEN, "The access token's signing key is unknown.")
        key = jwk.key
    else:
        raise AppError(ErrorCode.INVALID_TOKEN, "The access token uses an unsupported algorithm.")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience="authenticated",
            issuer=settings.token_issuer,
            leeway=CLOCK_LEEWAY_SECONDS,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise AppError(
            ErrorCode.TOKEN_EXPIRED, "Your session has expired; sign in again."
        ) from None
    except jwt.ImmatureSignatureError:
        raise AppError(
            ErrorCode.INVALID_TOKEN, "The access token is not valid yet; check your device's clock."
        ) from None
    except jwt.InvalidTokenError:
        raise AppError(
            ErrorCode.INVALID_TOKEN, "The access token is invalid for this project; sign in again."
        ) from None
    if claims.get("role") != "authenticated":
        raise AppError(ErrorCode.INVALID_TOKEN, "Only signed-in users may call this.")
    try:
        user_id = UUID(str(claims["sub"]))
    except ValueError:
        raise AppError(ErrorCode.INVALID_TOKEN, "The access token has no valid user id.") from None
    return Caller(user_id=user_id, claims=claims)


def authenticate(headers: dict[str, str], settings: Settings) -> Caller:
    return verify_access_token(bearer_token(headers), settings)
