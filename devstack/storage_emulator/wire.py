"""Requests, responses and errors as the real Storage server renders them; key and bucket checks."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Protocol

import psycopg

CHUNK = 256 * 1024
# The self-hosted server's UPLOAD_FILE_SIZE_LIMIT default (50 MB); a bucket limit can only lower it.
DEFAULT_GLOBAL_FILE_SIZE_LIMIT = 50 * 1024 * 1024
# Hosted Supabase documents 2 h for signed upload URLs (self-hosted defaults to 60 s).
DEFAULT_UPLOAD_URL_TTL_SECONDS = 7200
MAX_JSON_BODY = 1024 * 1024
TMP_DIR_NAME = ".tmp-uploads"

# Same character classes as the real server's key and bucket-name checks (ASCII `\w` as in JS).
_VALID_KEY = re.compile(r"^(\w|/|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$", re.ASCII)
_VALID_BUCKET = re.compile(r"^(\w|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$", re.ASCII)
_SIZE_WITH_UNIT = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb)\s*$", re.IGNORECASE)
SORT_COLUMNS = {"name", "updated_at", "created_at", "last_accessed_at"}
# encodeURI's unescaped set: the real server builds signed URLs with it.
ENCODE_URI_SAFE = "/;,?:@&=+$-_.!~*'()#"

OBJECT_COLUMNS = (
    "id, bucket_id, name, owner, owner_id, metadata, user_metadata, version, "
    "created_at, updated_at, last_accessed_at"
)


# --------------------------------------------------------------------------- request / response


class BodyStream(Protocol):
    """The request body: `read(n)` returns at most n bytes, b"" at the end."""

    def read(self, n: int = -1, /) -> bytes: ...


@dataclass
class StorageRequest:
    """One request as the Storage server sees it (the gateway has stripped `/storage/v1`)."""

    method: str
    path: str  # still percent-encoded, no query string
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: BodyStream


@dataclass
class StorageResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # A file to stream instead of `body` (the gateway closes it); `length` bytes long.
    stream: BinaryIO | None = None
    length: int | None = None

    @classmethod
    def json(
        cls, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> StorageResponse:
        data = json.dumps(payload, separators=(",", ":"), default=_json_default).encode()
        return cls(
            status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, data
        )


class StorageError(Exception):
    """An error rendered like the real server's: HTTP 400 (or 500) with the code in the body."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        error: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error = error if error is not None else (code or "Error")
        # The real error handler answers 400 for every renderable error except 500s.
        self.http_status = (
            http_status if http_status is not None else (500 if status == 500 else 400)
        )

    def response(self) -> StorageResponse:
        body: dict[str, Any] = {"statusCode": str(self.status)}
        if self.code is not None:
            body["code"] = self.code
        body["error"] = self.error
        body["message"] = self.message
        return StorageResponse.json(self.http_status, body)


def no_such_bucket() -> StorageError:
    return StorageError(404, "NoSuchBucket", "Bucket not found", error="Bucket not found")


def no_such_key() -> StorageError:
    return StorageError(404, "NoSuchKey", "Object not found", error="not_found")


def access_denied(message: str) -> StorageError:
    return StorageError(403, "AccessDenied", message or "Access denied", error="Unauthorized")


def duplicate(code: str = "ResourceAlreadyExists") -> StorageError:
    return StorageError(409, code, "The resource already exists", error="Duplicate")


def invalid_mime(mime: str) -> StorageError:
    return StorageError(
        415, "InvalidMimeType", f"mime type {mime} is not supported", error="invalid_mime_type"
    )


def too_large() -> StorageError:
    return StorageError(
        413,
        "EntityTooLarge",
        "The object exceeded the maximum allowed size",
        error="Payload too large",
    )


def invalid_jwt(message: str) -> StorageError:
    return StorageError(400, "InvalidJWT", message)


def _invalid_key(key: str) -> StorageError:
    return StorageError(400, "InvalidKey", f"Invalid key: {key}")


def bad_request(message: str) -> StorageError:
    # Fastify's schema-validation answer: no `code`, error "Bad Request".
    return StorageError(400, None, message, error="Bad Request")


def db_error(exc: psycopg.Error) -> StorageError:
    """Map a Postgres error the way the real server's DBError.fromDBError does."""
    state = exc.sqlstate or ""
    text = exc.diag.message_primary or str(exc)
    if state == "42501":
        if "row-level security" in text:
            return access_denied("new row violates row-level security policy")
        return access_denied(text)
    if state == "23505":
        return duplicate()
    if state == "23503":
        return StorageError(404, "InvalidRequest", "The related resource does not exist")
    if state == "22P02":
        return StorageError(400, "InvalidParameter", text)
    if state == "57014":
        return StorageError(544, "DatabaseTimeout", "The connection to the database timed out")
    return StorageError(500, "DatabaseError", f"database error, code: {state or 'unknown'}")


# --------------------------------------------------------------------------- helpers


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def iso(value: datetime) -> str:
    # node-pg + JSON.stringify render timestamptz like this (UTC, milliseconds, Z).
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def row_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: _json_default(v) if isinstance(v, datetime | uuid.UUID) else v for k, v in row.items()
    }


def as_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _base_mime(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def mime_allowed(mime: str, allowed: list[str] | None) -> bool:
    if not allowed:
        return True
    base = _base_mime(mime)
    for entry in allowed:
        entry = entry.strip().lower()
        if entry == base or (entry.endswith("/*") and base.startswith(entry[:-1])):
            return True
    return False


def parse_size(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise StorageError(400, "InvalidRequest", "Invalid file size format")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.strip().isdigit():
            return int(value)
        match = _SIZE_WITH_UNIT.match(value)
        if match:
            factor = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}[match.group(2).lower()]
            return int(match.group(1)) * factor
    raise StorageError(
        400, "InvalidRequest", "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B"
    )


def check_key(name: str) -> None:
    # Dot segments and empty segments would escape or collide on disk; storage3 refuses them too.
    parts = name.split("/")
    if (
        not name
        or not _VALID_KEY.match(name)
        or any(p in ("", ".", "..") for p in parts[:-1])
        or parts[-1] in ("", ".", "..")
    ):
        raise _invalid_key(name)


def check_bucket_name(bucket_id: str) -> None:
    if (
        not bucket_id
        or len(bucket_id) > 100
        or not _VALID_BUCKET.match(bucket_id)
        or bucket_id in (".", "..", TMP_DIR_NAME)
    ):
        raise StorageError(400, "InvalidBucketName", "Bucket name invalid", error="Invalid Input")


# --------------------------------------------------------------------------- auth
