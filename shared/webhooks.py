"""Standard Webhooks verification, as Replicate signs its webhooks (reference/replicate.md §5)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from shared.errors import BadRequest, Unauthorized

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
        raise BadRequest(
            "Missing webhook-id, webhook-timestamp or webhook-signature.", code="bad_webhook"
        )
    try:
        sent = int(timestamp)
    except ValueError:
        raise BadRequest("webhook-timestamp is not a number.", code="bad_webhook") from None
    current = time.time() if now is None else now
    if abs(current - sent) > TOLERANCE_SECONDS:
        # Outside the tolerance even a valid signature is refused: that is what stops replays.
        raise Unauthorized(
            f"The webhook timestamp is more than {TOLERANCE_SECONDS} seconds away from now.",
            code="stale_webhook",
        )
    expected = sign(secret, webhook_id, timestamp, body).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return webhook_id
    raise Unauthorized("The webhook signature does not match.", code="bad_signature")
