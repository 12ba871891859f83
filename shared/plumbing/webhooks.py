"""Standard Webhooks verification, as Replicate signs its webhooks (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256 over `id.timestamp.body`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from shared.errors import AppError, ErrorCode

TOLERANCE_SECONDS = 300


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: float | None = None) -> str:
    """Check the signature over the raw body bytes; returns the `webhook-id`."""
    lower = {k.lower(): v for k, v in headers.items()}
    webhook_id = lower.get("webhook-id")
    timestamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not webhook_id or not timestamp or not signatures:
        raise AppError(
            ErrorCode.BAD_WEBHOOK, "Missing webhook-id, webhook-timestamp or webhook-signature."
        )
    # Seconds since 1970 (at most 12 digits: past the year 30000): anything longer would reach
    # float arithmetic as an integer too large for it.
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise AppError(ErrorCode.BAD_WEBHOOK, "webhook-timestamp is not a number of seconds.")
    sent = int(timestamp)
    current = time.time() if now is None else now
    if abs(current - sent) > TOLERANCE_SECONDS:
        # Outside the tolerance even a valid signature is refused: that is what stops replays.
        raise AppError(
            ErrorCode.STALE_WEBHOOK,
            f"The webhook timestamp is more than {TOLERANCE_SECONDS} seconds away from now.",
        )
    expected = sign(secret, webhook_id, timestamp, body).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return webhook_id
    raise AppError(ErrorCode.BAD_SIGNATURE, "The webhook signature does not match.")
