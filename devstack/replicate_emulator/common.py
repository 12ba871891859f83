"""Ids, timestamps, recorded error bodies and cursor pagination shared by the emulator."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import string
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

JSON = dict[str, Any]

# Recorded bodies (the team reference, Replicate section 1); texts marked "emulator" are our choice
# where the real body is unconfirmed.
UNAUTHENTICATED: JSON = {
    "title": "Unauthenticated",
    "detail": "You did not pass a valid authentication token",
    "status": 401,
}
DESTINATION_MISSING: JSON = {
    "detail": "The specified training destination does not exist",
    "status": 404,
}
INVALID_VERSION: JSON = {
    "title": "Invalid version or not permitted",
    "detail": (
        "The specified version does not exist (or perhaps you don't have permission to use it?)"
    ),
    "status": 422,
}
FILE_TOO_LARGE: JSON = {"detail": "Files must be less than 100MB in size"}
FILE_NOT_FOUND: JSON = {"detail": "File not found"}
NOT_FOUND: JSON = {"detail": "Not found.", "status": 404}  # emulator
MODEL_EXISTS: JSON = {  # emulator: real 409 body is unconfirmed
    "title": "Conflict",
    "detail": "A model with that owner and name already exists.",
    "status": 409,
}
TRAINED_IMAGE_FAILED = (
    "Training failed. Failed to create trained image after successful training run."
)

_STATUS_TITLES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def throttled_body(seconds: float) -> JSON:
    """The rate-limit body from the docs, naming the wait."""
    return {"detail": f"Request was throttled. Your rate limit resets in ~{round(seconds)}s."}


def problem(status: int, detail: str, **extra: Any) -> JSON:
    """A problem+json body for cases with no recorded text."""
    body: JSON = {"title": _STATUS_TITLES.get(status, "Error"), "detail": detail, "status": status}
    body.update(extra)
    return body


def invalid_fields(*fields: tuple[str, str, str]) -> JSON:
    """422 in the shape of the 2024 validation changelog: (type, field, description)."""
    items = [{"type": t, "field": f, "description": d} for t, f, d in fields]
    return problem(422, "; ".join(d for _, _, d in fields), invalid_fields=items)


def dumps(obj: Any) -> bytes:
    """Compact JSON like the real API sends."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --- ids ---------------------------------------------------------------------------------


def new_training_id() -> str:
    """26 lowercase base32 chars (128 random bits), like `zz4ibbonubfz7carwiefibzgga`."""
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def new_version_id() -> str:
    return secrets.token_hex(32)


def new_file_id() -> str:
    """Base64 of a UUID string, like the recorded `NGZiNmY2...`; url-safe so it fits a path."""
    return base64.urlsafe_b64encode(str(uuid.uuid4()).encode()).decode()


_ALNUM = string.ascii_letters + string.digits


def new_message_id() -> str:
    """Standard Webhooks style id, like `msg_p5jXN8AQM9LWM0D4loKWxJek`."""
    return "msg_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# --- timestamps --------------------------------------------------------------------------


def whole_microseconds(ts: float) -> float:
    """`ts` on a whole microsecond: a run's later times (created + boot + train) then round to
    exactly the right microsecond in `iso`."""
    return round(ts * 1_000_000) / 1_000_000


def iso(ts: float, digits: int = 6) -> str:
    """ISO-8601 UTC with `Z`; the real API varies the fraction (9 on create, 6 on get, 3 files).

    Rounded to the digits shown, so a run of exactly T seconds shows exactly T between its
    timestamps (truncating would be a microsecond short now and then).
    """
    scale = 10 ** max(digits, 0)
    seconds, fraction = divmod(round(ts * scale), scale)
    base = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return base + "Z"
    return f"{base}.{fraction:0{digits}d}Z"


# --- pagination --------------------------------------------------------------------------


def encode_cursor(direction: str, seq: int) -> str:
    # Opaque like the real `cD0yMDIy...` (base64 of "p=..."); the direction rides inside.
    return base64.urlsafe_b64encode(f"{direction}={seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, _, seq = raw.partition("=")
        if direction not in ("n", "p"):
            return None
        return direction, int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def paginate(
    items: Sequence[T],
    seq_of: Callable[[T], int],
    cursor: str | None,
    page_size: int,
    url_for: Callable[[str], str],
) -> tuple[list[T], str | None, str | None] | None:
    """One page of `items` (sorted newest first), with absolute next/previous URLs.

    Keyset cursors stay correct when new items arrive between page reads.
    Returns None for a cursor we did not issue.
    """
    if cursor is None:
        page = list(items[:page_size])
    else:
        decoded = decode_cursor(cursor)
        if decoded is None:
            return None
        direction, seq = decoded
        if direction == "n":
            page = [i for i in items if seq_of(i) < seq][:page_size]
        else:
            newer = [i for i in items if seq_of(i) > seq]
            page = newer[-page_size:]
    next_url = previous_url = None
    if page:
        oldest, newest = seq_of(page[-1]), seq_of(page[0])
        if any(seq_of(i) < oldest for i in items):
            next_url = url_for(encode_cursor("n", oldest))
        if cursor is not None and any(seq_of(i) > newest for i in items):
            previous_url = url_for(encode_cursor("p", newest))
    return page, next_url, previous_url
