"""Supabase Storage API emulator: the endpoints storage3 2.34.1 calls, backed by real Postgres.

The real server (`supabase/storage`) cannot be installed from any registry (see
`reference/supabase.md` 5.3), so this module re-implements the part of its HTTP contract the
project uses, from its documented behaviour. What it copies on purpose:

- object rows live in `storage.objects` and every object query runs in a transaction with
  `set local role <jwt role>` and the `request.jwt.*` settings, so the project's storage RLS
  policies are what allow or deny (listing, download, upload, delete);
- errors are HTTP 400 (500 for internal ones) with `{"statusCode": "<code>", "code", "error",
  "message"}` in the body, which storage3 turns into `StorageApiError(.status == "409", ...)`;
- bucket limits (`file_size_limit` -> 413, `allowed_mime_types` -> 415), `x-upsert`, signed
  download and signed upload tokens (HS256 JWTs signed with the project secret).

Object bytes are stored at `<root>/<bucket>/<object name>/<version>`: one file per version, so an
upsert swaps versions atomically and `a/b` can coexist with `a/b/c` as in S3.

This module knows nothing about HTTP servers: `StorageEmulator.handle()` takes a parsed request
whose body is a stream and returns a response whose body may be an open file. `devstack.gateway`
serves it under `/storage/v1`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote, unquote

import jwt
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

log = logging.getLogger(__name__)

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
_SORT_COLUMNS = {"name", "updated_at", "created_at", "last_accessed_at"}
# encodeURI's unescaped set: the real server builds signed URLs with it.
_ENCODE_URI_SAFE = "/;,?:@&=+$-_.!~*'()#"

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


def _no_such_bucket() -> StorageError:
    return StorageError(404, "NoSuchBucket", "Bucket not found", error="Bucket not found")


def _no_such_key() -> StorageError:
    return StorageError(404, "NoSuchKey", "Object not found", error="not_found")


def _access_denied(message: str) -> StorageError:
    return StorageError(403, "AccessDenied", message or "Access denied", error="Unauthorized")


def _duplicate(code: str = "ResourceAlreadyExists") -> StorageError:
    return StorageError(409, code, "The resource already exists", error="Duplicate")


def _invalid_mime(mime: str) -> StorageError:
    return StorageError(
        415, "InvalidMimeType", f"mime type {mime} is not supported", error="invalid_mime_type"
    )


def _too_large() -> StorageError:
    return StorageError(
        413,
        "EntityTooLarge",
        "The object exceeded the maximum allowed size",
        error="Payload too large",
    )


def _invalid_jwt(message: str) -> StorageError:
    return StorageError(400, "InvalidJWT", message)


def _invalid_key(key: str) -> StorageError:
    return StorageError(400, "InvalidKey", f"Invalid key: {key}")


def _bad_request(message: str) -> StorageError:
    # Fastify's schema-validation answer: no `code`, error "Bad Request".
    return StorageError(400, None, message, error="Bad Request")


def _db_error(exc: psycopg.Error) -> StorageError:
    """Map a Postgres error the way the real server's DBError.fromDBError does."""
    state = exc.sqlstate or ""
    text = exc.diag.message_primary or str(exc)
    if state == "42501":
        if "row-level security" in text:
            return _access_denied("new row violates row-level security policy")
        return _access_denied(text)
    if state == "23505":
        return _duplicate()
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
        return _iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _iso(value: datetime) -> str:
    # node-pg + JSON.stringify render timestamptz like this (UTC, milliseconds, Z).
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _row_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: _json_default(v) if isinstance(v, datetime | uuid.UUID) else v for k, v in row.items()
    }


def _as_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _base_mime(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _mime_allowed(mime: str, allowed: list[str] | None) -> bool:
    if not allowed:
        return True
    base = _base_mime(mime)
    for entry in allowed:
        entry = entry.strip().lower()
        if entry == base or (entry.endswith("/*") and base.startswith(entry[:-1])):
            return True
    return False


def _parse_size(value: Any) -> int | None:
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


def _check_key(name: str) -> None:
    # Dot segments and empty segments would escape or collide on disk; storage3 refuses them too.
    parts = name.split("/")
    if (
        not name
        or not _VALID_KEY.match(name)
        or any(p in ("", ".", "..") for p in parts[:-1])
        or parts[-1] in ("", ".", "..")
    ):
        raise _invalid_key(name)


def _check_bucket_name(bucket_id: str) -> None:
    if (
        not bucket_id
        or len(bucket_id) > 100
        or not _VALID_BUCKET.match(bucket_id)
        or bucket_id in (".", "..", TMP_DIR_NAME)
    ):
        raise StorageError(400, "InvalidBucketName", "Bucket name invalid", error="Invalid Input")


# --------------------------------------------------------------------------- auth


@dataclass(frozen=True)
class Principal:
    """Who a request runs as in Postgres: the JWT's role and its claims."""

    role: str
    claims: Mapping[str, Any]

    @property
    def sub(self) -> str | None:
        sub = self.claims.get("sub")
        return str(sub) if sub is not None else None


SERVICE_ROLE = Principal("service_role", {"role": "service_role"})


# --------------------------------------------------------------------------- connection pool


class ConnectionPool:
    """A few autocommit psycopg connections shared by request threads (psycopg_pool isn't here)."""

    def __init__(self, dsn: str, max_size: int = 8, timeout: float = 30.0) -> None:
        self._dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max_size)
        self._timeout = timeout
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        if not self._slots.acquire(timeout=self._timeout):
            raise StorageError(
                503,
                "DatabaseConnectionLimit",
                "The database has reached its maximum number of "
                "connections. Please try again later.",
            )
        conn: psycopg.Connection[Any] | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(
                    self._dsn, autocommit=True, application_name="storage-emulator"
                )
            yield conn
        finally:
            if conn is not None:
                reusable = (
                    not self._closed
                    and not conn.closed
                    and not conn.broken
                    and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                )
                if reusable:
                    self._idle.put(conn)
                else:
                    conn.close()
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


# --------------------------------------------------------------------------- uploads


@dataclass
class _Received:
    tmp_path: Path
    size: int
    mimetype: str
    cache_control: str
    etag: str
    user_metadata: Any


class _LimitedFile:
    """Writes the upload to a temp file, hashing it, and stops writing past the size limit."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.exceeded = False
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._fh: BinaryIO | None = path.open("wb")

    def write(self, data: bytes | memoryview) -> None:
        if self.exceeded:
            return  # keep consuming the body, drop the bytes
        self.size += len(data)
        if self.size > self.limit:
            self.exceeded = True
            self.close()
            return
        assert self._fh is not None
        self._fh.write(data)
        self._md5.update(data)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def etag(self) -> str:
        return f'"{self._md5.hexdigest()}"'


class _MultipartUpload:
    """Streams a multipart body: the first file part goes to disk, small fields to memory."""

    def __init__(
        self, boundary: bytes, target: _LimitedFile, check_mime: Callable[[str], None]
    ) -> None:
        self.target = target
        self.check_mime = check_mime
        self.fields: dict[str, str] = {}
        self.mimetype = "text/plain"
        self.got_file = False
        self.ended = False
        self.error: StorageError | None = None
        self._headers: dict[str, str] = {}
        self._hname = bytearray()
        self._hvalue = bytearray()
        self._kind = "skip"  # "file", "field" or "skip" for the current part
        self._fname = ""
        self._fvalue = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._kind = "skip"

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        name = self._hname.decode("latin-1").strip().lower()
        self._headers[name] = self._hvalue.decode("latin-1").strip()
        self._hname.clear()
        self._hvalue.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        if b"filename" in params:
            if self.got_file:
                return  # like fastify-multipart's request.file(): only the first file counts
            self.got_file = True
            self._kind = "file"
            # busboy reports the part's type without parameters, lower-cased.
            ctype, _ = parse_options_header(self._headers.get("content-type", "text/plain"))
            self.mimetype = ctype.decode("latin-1") or "text/plain"
            try:
                self.check_mime(self.mimetype)
            except StorageError as exc:
                self.error = exc
                self._kind = "skip"
        else:
            self._kind = "field"
            self._fname = params.get(b"name", b"").decode("utf-8", "replace")
            self._fvalue = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file":
            self.target.write(memoryview(data)[start:end])
        elif self._kind == "field" and len(self._fvalue) < MAX_JSON_BODY:
            self._fvalue += data[start:end]

    def _part_end(self) -> None:
        if self._kind == "field":
            self.fields.setdefault(self._fname, self._fvalue.decode("utf-8", "replace"))
        self._kind = "skip"

    def _end(self) -> None:
        self.ended = True


# --------------------------------------------------------------------------- the emulator


class StorageEmulator:
    """The Storage API (routes without the `/storage/v1` prefix) over Postgres and a directory.

    `database_url` must be a superuser DSN: each request switches to the JWT's role with
    `set local role`, as the real server does after verifying the token.
    """

    def __init__(
        self,
        *,
        database_url: str,
        jwt_secret: str,
        data_dir: Path,
        jwks: Mapping[str, Any] | None = None,
        upload_url_ttl_seconds: int = DEFAULT_UPLOAD_URL_TTL_SECONDS,
        global_file_size_limit: int = DEFAULT_GLOBAL_FILE_SIZE_LIMIT,
        pool_size: int = 8,
    ) -> None:
        self.jwt_secret = jwt_secret
        self.jwks = dict(jwks) if jwks else None
        self.root = Path(data_dir)
        self.upload_url_ttl_seconds = upload_url_ttl_seconds
        self.global_file_size_limit = global_file_size_limit
        # Token expiry uses this clock, so tests can age signed URLs without sleeping.
        self.clock: Callable[[], float] = time.time
        self._pool = ConnectionPool(database_url, max_size=pool_size)
        self._tmp = self.root / TMP_DIR_NAME
        self._tmp.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self._pool.close()

    # ------------------------------------------------------------------ entry point

    def handle(self, req: StorageRequest) -> StorageResponse:
        try:
            return self._route(req)
        except StorageError as exc:
            return exc.response()
        except (ConnectionError, TimeoutError):
            raise  # the client went away: nothing to answer
        except psycopg.Error as exc:
            return _db_error(exc).response()
        except Exception:
            log.exception("storage emulator: %s %s failed", req.method, req.path)
            return StorageResponse.json(
                500, {"statusCode": "500", "error": "Internal", "message": "Internal Server Error"}
            )

    def _route(self, req: StorageRequest) -> StorageResponse:
        m = req.method.upper()
        parts = req.path.lstrip("/").split("/")
        head, n = parts[0], len(parts)

        def rest(start: int) -> str:
            return unquote("/".join(parts[start:]))

        if head == "status" and n == 1 and m in ("GET", "HEAD"):
            return StorageResponse(200)
        if head == "bucket":
            if n == 1 and m == "GET":
                return self._list_buckets(req)
            if n == 1 and m == "POST":
                return self._create_bucket(req)
            if n == 2 and m == "GET":
                return self._get_bucket(req, unquote(parts[1]))
            if n == 2 and m == "PUT":
                return self._update_bucket(req, unquote(parts[1]))
            if n == 2 and m == "DELETE":
                return self._delete_bucket(req, unquote(parts[1]))
            if n == 3 and parts[2] == "empty" and m == "POST":
                return self._empty_bucket(req, unquote(parts[1]))
        if head == "object" and n >= 2:
            sub = parts[1]
            if sub in ("move", "copy") and n == 2 and m == "POST":
                return self._move_or_copy(req, copy=sub == "copy")
            if sub == "list" and n == 3 and m == "POST":
                return self._list_objects(req, unquote(parts[2]))
            if sub == "sign" and n == 3 and m == "POST":
                return self._sign_many(req, unquote(parts[2]))
            if sub == "sign" and n >= 4 and m == "POST":
                return self._sign(req, unquote(parts[2]), rest(3))
            if sub == "sign" and n >= 4 and m in ("GET", "HEAD"):
                return self._signed_download(req, unquote(parts[2]), rest(3))
            if sub == "upload" and n >= 5 and parts[2] == "sign":
                if m == "POST":
                    return self._sign_upload(req, unquote(parts[3]), rest(4))
                if m == "PUT":
                    return self._signed_upload(req, unquote(parts[3]), rest(4))
            if sub == "info" and n >= 4 and m == "GET":
                if parts[2] == "public" and n >= 5:
                    return self._info(req, unquote(parts[3]), rest(4), public=True)
                if parts[2] == "authenticated" and n >= 5:
                    return self._info(req, unquote(parts[3]), rest(4))
                return self._info(req, unquote(parts[2]), rest(3))
            if sub == "authenticated" and n >= 4 and m in ("GET", "HEAD"):
                return self._download(req, unquote(parts[2]), rest(3))
            if sub == "public" and n >= 4 and m in ("GET", "HEAD"):
                return self._download(req, unquote(parts[2]), rest(3), public=True)
            bucket = unquote(sub)
            if n == 2 and m == "DELETE":
                return self._remove(req, bucket)
            if n >= 3:
                name = rest(2)
                if m == "POST":
                    upsert = req.headers.get("x-upsert", "false").lower() == "true"
                    return self._upload_route(req, bucket, name, mode="create", upsert=upsert)
                if m == "PUT":
                    return self._upload_route(req, bucket, name, mode="update", upsert=False)
                if m in ("GET", "HEAD"):
                    return self._download(req, bucket, name)
                if m == "DELETE":
                    return self._delete_one(req, bucket, name)
        # Fastify's own not-found answer (a real 404, numeric statusCode).
        return StorageResponse.json(
            404,
            {
                "message": f"Route {m}:{req.path} not found",
                "error": "Not Found",
                "statusCode": 404,
            },
        )

    # ------------------------------------------------------------------ auth and scope

    def verify_token(self, token: str) -> dict[str, Any]:
        """Verify a JWT like the real server (jsonwebtoken's messages); raises ValueError."""
        if not token:
            raise ValueError("jwt must be provided")
        try:
            header = jwt.get_unverified_header(token)
            alg = str(header.get("alg", ""))
            if alg.lower() == "none" or not alg:
                raise ValueError("jwt signature is required")
            # HS256 with the project secret, or an asymmetric key from the configured JWKS.
            key: Any = self.jwt_secret if alg == "HS256" else self._jwks_key(header)
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            raise ValueError("invalid signature") from None
        except jwt.DecodeError:
            raise ValueError("jwt malformed") from None
        except jwt.PyJWTError as exc:
            raise ValueError(str(exc) or "invalid token") from None
        exp = payload.get("exp")
        if isinstance(exp, int | float) and self.clock() >= exp:
            raise ValueError("jwt expired")
        return payload

    def _jwks_key(self, header: Mapping[str, Any]) -> Any:
        keys = (self.jwks or {}).get("keys") or []
        for entry in keys:
            if header.get("kid") is None or entry.get("kid") == header.get("kid"):
                return jwt.PyJWK(entry).key
        raise jwt.InvalidSignatureError("no matching key")

    def _principal(self, req: StorageRequest) -> Principal:
        """The caller, from `Authorization: Bearer` (the real server ignores `apikey`)."""
        auth = req.headers.get("authorization", "")
        token = re.sub(r"^Bearer\s+", "", auth, flags=re.IGNORECASE).strip()
        try:
            claims = self.verify_token(token)
        except ValueError as exc:
            raise _access_denied(str(exc)) from None
        role = claims.get("role")
        return Principal(str(role) if role else "anon", claims)

    def _optional_principal(self, req: StorageRequest) -> Principal | None:
        try:
            return self._principal(req)
        except StorageError:
            return None

    @contextmanager
    def _tx(
        self, who: Principal, *, test_only: bool = False, operation: str = ""
    ) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """A transaction scoped to `who`, like the real server's per-request scope.

        `test_only` rolls back at the end: the real server's testPermission(), used to learn
        whether RLS allows a write before accepting the upload's bytes.
        """
        with self._pool.connection() as conn:
            try:
                with conn.transaction(force_rollback=test_only):
                    cur = conn.cursor(row_factory=dict_row)
                    cur.execute(
                        "select set_config('request.jwt.claims', %s, true),"
                        " set_config('request.jwt.claim.sub', %s, true),"
                        " set_config('request.jwt.claim.role', %s, true),"
                        " set_config('storage.operation', %s, true)",
                        (json.dumps(dict(who.claims)), who.sub or "", who.role, operation),
                    )
                    cur.execute(sql.SQL("set local role {}").format(sql.Identifier(who.role)))
                    yield cur
            except psycopg.Error as exc:
                raise _db_error(exc) from exc

    def _read_json(self, req: StorageRequest) -> dict[str, Any]:
        data = req.body.read(MAX_JSON_BODY + 1)
        if len(data) > MAX_JSON_BODY:
            raise StorageError(413, "EntityTooLarge", "Request body is too large")
        if not data.strip():
            return {}
        try:
            value = json.loads(data)
        except ValueError:
            raise _bad_request("Body is not valid JSON") from None
        if not isinstance(value, dict):
            raise _bad_request("body must be object")
        return value

    # ------------------------------------------------------------------ disk layout

    def _object_dir(self, bucket_id: str, name: str) -> Path:
        return self.root.joinpath(bucket_id, *name.split("/"))

    def _blob(self, bucket_id: str, name: str, version: str) -> Path:
        return self._object_dir(bucket_id, name) / version

    def _remove_blob(self, bucket_id: str, name: str, version: str | None) -> None:
        directory = self._object_dir(bucket_id, name)
        if version:
            (directory / version).unlink(missing_ok=True)
        # Drop now-empty directories up to the bucket so listings of the disk stay tidy.
        stop = self.root / bucket_id
        while directory != stop and directory.is_dir():
            try:
                directory.rmdir()
            except OSError:
                break
            directory = directory.parent

    def object_file(self, bucket_id: str, name: str) -> Path | None:
        """Where the current version of an object's bytes is on disk (None if no such object)."""
        with self._tx(SERVICE_ROLE) as cur:
            cur.execute(
                "select version from storage.objects where bucket_id = %s and name = %s",
                (bucket_id, name),
            )
            row = cur.fetchone()
        return self._blob(bucket_id, name, row["version"]) if row else None

    # ------------------------------------------------------------------ buckets

    def _find_bucket(self, who: Principal, bucket_id: str) -> dict[str, Any]:
        with self._tx(who) as cur:
            cur.execute("select * from storage.buckets where id = %s", (bucket_id,))
            row = cur.fetchone()
        if row is None:
            raise _no_such_bucket()
        return row

    @staticmethod
    def _bucket_json(row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            # storage3's Bucket model requires a string owner.
            "owner": str(row["owner"]) if row.get("owner") else "",
            "public": row["public"],
            "type": "STANDARD",
            "file_size_limit": row["file_size_limit"],
            "allowed_mime_types": row["allowed_mime_types"],
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
        }

    def _list_buckets(self, req: StorageRequest) -> StorageResponse:
        who = self._principal(req)
        with self._tx(who) as cur:
            cur.execute("select * from storage.buckets order by name")
            rows = cur.fetchall()
        return StorageResponse.json(200, [self._bucket_json(r) for r in rows])

    def _get_bucket(self, req: StorageRequest, bucket_id: str) -> StorageResponse:
        who = self._principal(req)
        return StorageResponse.json(200, self._bucket_json(self._find_bucket(who, bucket_id)))

    def _create_bucket(self, req: StorageRequest) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        name = body.get("name") or body.get("id")
        if not isinstance(name, str):
            raise _bad_request("body must have required property 'name'")
        bucket_id = body.get("id") or name
        _check_bucket_name(bucket_id)
        mimes = body.get("allowed_mime_types")
        with self._tx(who) as cur:
            try:
                cur.execute(
                    "insert into storage.buckets"
                    " (id, name, owner, public, file_size_limit, allowed_mime_types)"
                    " values (%s, %s, %s, %s, %s, %s)",
                    (
                        bucket_id,
                        name,
                        _as_uuid(who.sub),
                        bool(body.get("public", False)),
                        _parse_size(body.get("file_size_limit")),
                        list(mimes) if mimes else None,
                    ),
                )
            except psycopg.errors.UniqueViolation:
                raise _duplicate("BucketAlreadyExists") from None
        return StorageResponse.json(200, {"name": bucket_id})

    def _update_bucket(self, req: StorageRequest, bucket_id: str) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        sets: list[sql.Composable] = []
        values: list[Any] = []
        if "public" in body:
            sets.append(sql.SQL("public = %s"))
            values.append(bool(body["public"]))
        if "file_size_limit" in body:
            sets.append(sql.SQL("file_size_limit = %s"))
            values.append(_parse_size(body["file_size_limit"]))
        if "allowed_mime_types" in body:
            sets.append(sql.SQL("allowed_mime_types = %s"))
            mimes = body["allowed_mime_types"]
            values.append(list(mimes) if mimes else None)
        sets.append(sql.SQL("updated_at = now()"))
        with self._tx(who) as cur:
            cur.execute(
                sql.SQL("update storage.buckets set {} where id = %s returning id").format(
                    sql.SQL(", ").join(sets)
                ),
                [*values, bucket_id],
            )
            if cur.fetchone() is None:
                raise _no_such_bucket()
        return StorageResponse.json(200, {"message": "Successfully updated"})

    def _delete_bucket(self, req: StorageRequest, bucket_id: str) -> StorageResponse:
        who = self._principal(req)
        self._find_bucket(who, bucket_id)
        with self._tx(SERVICE_ROLE) as cur:
            cur.execute(
                "select exists(select 1 from storage.objects where bucket_id = %s) as used",
                (bucket_id,),
            )
            row = cur.fetchone()
        if row and row["used"]:
            raise StorageError(
                409, "ResourceNotEmpty", "The bucket you tried to delete is not empty"
            )
        with self._tx(who) as cur:
            cur.execute("delete from storage.buckets where id = %s returning id", (bucket_id,))
            if cur.fetchone() is None:
                raise _no_such_bucket()
        shutil.rmtree(self.root / bucket_id, ignore_errors=True)
        return StorageResponse.json(200, {"message": "Successfully deleted"})

    def _empty_bucket(self, req: StorageRequest, bucket_id: str) -> StorageResponse:
        who = self._principal(req)
        self._find_bucket(who, bucket_id)
        with self._tx(who) as cur:
            cur.execute(
                "delete from storage.objects where bucket_id = %s returning name, version",
                (bucket_id,),
            )
            rows = cur.fetchall()
        for row in rows:
            self._remove_blob(bucket_id, row["name"], row["version"])
        return StorageResponse.json(200, {"message": "Successfully emptied"})

    # ------------------------------------------------------------------ uploads

    def _upload_route(
        self, req: StorageRequest, bucket_id: str, name: str, *, mode: str, upsert: bool
    ) -> StorageResponse:
        who = self._principal(req)
        result = self._upload(req, who, bucket_id, name, mode=mode, upsert=upsert, owner=who.sub)
        return StorageResponse.json(200, result)

    def _upload(
        self,
        req: StorageRequest,
        who: Principal,
        bucket_id: str,
        name: str,
        *,
        mode: str,
        upsert: bool,
        owner: str | None,
    ) -> dict[str, Any]:
        _check_key(name)
        bucket = self._find_bucket(SERVICE_ROLE, bucket_id)
        version = str(uuid.uuid4())
        # 1. Would the row write pass RLS and uniqueness? Ask before accepting any bytes.
        with self._tx(who, test_only=True, operation="object.upload.test") as cur:
            if mode == "update":
                cur.execute(
                    "update storage.objects set version = %s"
                    " where bucket_id = %s and name = %s returning id",
                    (version, bucket_id, name),
                )
                if cur.fetchone() is None:
                    raise _no_such_key()
            else:
                self._write_row(cur, bucket_id, name, version, owner, {}, None, upsert=upsert)
        # 2. Stream the body to a temp file, enforcing the bucket's size and MIME limits.
        received = self._receive(req, bucket)
        placed: Path | None = None
        try:
            metadata = {
                "eTag": received.etag,
                "size": received.size,
                "mimetype": received.mimetype,
                "cacheControl": received.cache_control,
                "lastModified": _iso(datetime.now(UTC)),
                "contentLength": received.size,
                "httpStatusCode": 200,
            }
            # 3. Write the row and put the bytes in place in one transaction.
            with self._tx(who, operation="object.upload") as cur:
                if mode == "update":
                    cur.execute(
                        "with old as (select version from storage.objects"
                        "  where bucket_id = %s and name = %s)"
                        " update storage.objects set owner = %s, owner_id = %s, metadata = %s,"
                        "  user_metadata = %s, version = %s, updated_at = now(),"
                        "  last_accessed_at = now()"
                        " where bucket_id = %s and name = %s"
                        " returning id, (select version from old) as old_version",
                        (
                            bucket_id,
                            name,
                            _as_uuid(owner),
                            owner,
                            Jsonb(metadata),
                            Jsonb(received.user_metadata)
                            if received.user_metadata is not None
                            else None,
                            version,
                            bucket_id,
                            name,
                        ),
                    )
                    row = cur.fetchone()
                    if row is None:
                        raise _no_such_key()
                else:
                    row = self._write_row(
                        cur,
                        bucket_id,
                        name,
                        version,
                        owner,
                        metadata,
                        received.user_metadata,
                        upsert=upsert,
                    )
                placed = self._blob(bucket_id, name, version)
                placed.parent.mkdir(parents=True, exist_ok=True)
                os.replace(received.tmp_path, placed)
            placed = None  # committed: the file is the object's now
        finally:
            received.tmp_path.unlink(missing_ok=True)
            if placed is not None:
                placed.unlink(missing_ok=True)
        old = row.get("old_version")
        if old and old != version:
            self._remove_blob(bucket_id, name, old)
        return {"Key": f"{bucket_id}/{name}", "Id": str(row["id"])}

    @staticmethod
    def _write_row(
        cur: psycopg.Cursor[dict[str, Any]],
        bucket_id: str,
        name: str,
        version: str,
        owner: str | None,
        metadata: dict[str, Any],
        user_metadata: Any,
        *,
        upsert: bool,
    ) -> dict[str, Any]:
        query = (
            "with old as (select version from storage.objects where bucket_id = %s and name = %s)"
            " insert into storage.objects"
            " (bucket_id, name, owner, owner_id, metadata, user_metadata, version)"
            " values (%s, %s, %s, %s, %s, %s, %s)"
        )
        if upsert:
            # Needs SELECT and UPDATE policies for a user, as on the real server.
            query += (
                " on conflict (bucket_id, name) do update set owner = excluded.owner,"
                " owner_id = excluded.owner_id, metadata = excluded.metadata,"
                " user_metadata = excluded.user_metadata, version = excluded.version,"
                " updated_at = now(), last_accessed_at = now()"
            )
        query += " returning id, (select version from old) as old_version"
        try:
            cur.execute(
                query,
                (
                    bucket_id,
                    name,
                    bucket_id,
                    name,
                    _as_uuid(owner),
                    owner,
                    Jsonb(metadata),
                    Jsonb(user_metadata) if user_metadata is not None else None,
                    version,
                ),
            )
        except psycopg.errors.UniqueViolation:
            raise _duplicate("KeyAlreadyExists") from None
        row = cur.fetchone()
        assert row is not None
        return row

    def _file_size_limit(self, bucket: Mapping[str, Any]) -> int:
        limit = self.global_file_size_limit
        bucket_limit = bucket.get("file_size_limit")
        if bucket_limit and 0 < bucket_limit < limit:
            limit = int(bucket_limit)
        return limit

    def _receive(self, req: StorageRequest, bucket: Mapping[str, Any]) -> _Received:
        limit = self._file_size_limit(bucket)
        allowed = bucket.get("allowed_mime_types")

        def check_mime(mime: str) -> None:
            if not _mime_allowed(mime, allowed):
                raise _invalid_mime(mime)

        content_type = req.headers.get("content-type", "")
        tmp = self._tmp / uuid.uuid4().hex
        target = _LimitedFile(tmp, limit)
        try:
            if content_type.lower().startswith("multipart/form-data"):
                _, params = parse_options_header(content_type)
                boundary = params.get(b"boundary")
                if not boundary:
                    raise _bad_request("the request is not multipart (no boundary)")
                upload = _MultipartUpload(boundary, target, check_mime)
                try:
                    while chunk := req.body.read(CHUNK):
                        upload.parser.write(chunk)
                    upload.parser.finalize()
                except MultipartParseError as exc:
                    raise StorageError(
                        400, "InvalidRequest", f"Malformed multipart body: {exc}"
                    ) from None
                if upload.error is not None:
                    raise upload.error
                if not upload.got_file or not upload.ended:
                    raise StorageError(
                        400, "InvalidRequest", "Unexpected empty file received", error="empty_file"
                    )
                mimetype = upload.mimetype
                cache_time = upload.fields.get("cacheControl")
                cache_control = f"max-age={cache_time}" if cache_time else "no-cache"
                user_metadata = self._parse_metadata(upload.fields.get("metadata"))
            else:
                mimetype = content_type or "application/octet-stream"
                check_mime(mimetype)
                declared = req.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise _too_large()
                while chunk := req.body.read(CHUNK):
                    target.write(chunk)
                cache_control = req.headers.get("cache-control") or "no-cache"
                raw_meta = req.headers.get("x-metadata")
                user_metadata = (
                    self._parse_metadata(base64.b64decode(raw_meta).decode("utf-8", "replace"))
                    if raw_meta
                    else None
                )
            target.close()
            if target.exceeded:
                raise _too_large()
            return _Received(tmp, target.size, mimetype, cache_control, target.etag, user_metadata)
        except BaseException:
            target.close()
            tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def _parse_metadata(text: str | None) -> Any:
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise StorageError(400, "InvalidParameter", "Invalid Parameter metadata") from None

    # ------------------------------------------------------------------ reads

    def _find_object(self, who: Principal, bucket_id: str, name: str) -> dict[str, Any]:
        _check_key(name)
        with self._tx(who, operation="object.get") as cur:
            cur.execute(
                f"select {OBJECT_COLUMNS} from storage.objects where bucket_id = %s and name = %s",
                (bucket_id, name),
            )
            row = cur.fetchone()
        if row is None:
            raise _no_such_key()
        return row

    def _render_object(
        self, req: StorageRequest, row: Mapping[str, Any], *, download: str | None = None
    ) -> StorageResponse:
        path = self._blob(row["bucket_id"], row["name"], row["version"])
        try:
            fh: BinaryIO = path.open("rb")
        except FileNotFoundError:
            raise _no_such_key() from None
        length = os.fstat(fh.fileno()).st_size
        meta = row.get("metadata") or {}
        headers = {
            "Content-Type": str(meta.get("mimetype") or "application/octet-stream"),
            "Cache-Control": str(meta.get("cacheControl") or "no-cache"),
            "ETag": str(meta.get("eTag") or ""),
            "Last-Modified": format_datetime(row["updated_at"].astimezone(UTC), usegmt=True),
        }
        if download is not None:
            filename = download or row["name"].rsplit("/", 1)[-1]
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
        if req.method.upper() == "HEAD":
            fh.close()
            return StorageResponse(200, headers, length=length)
        return StorageResponse(200, headers, stream=fh, length=length)

    def _download(
        self, req: StorageRequest, bucket_id: str, name: str, *, public: bool = False
    ) -> StorageResponse:
        if public:
            bucket = self._find_bucket(SERVICE_ROLE, bucket_id)
            if not bucket["public"]:
                raise _no_such_bucket()
            row = self._find_object(SERVICE_ROLE, bucket_id, name)
        else:
            who = self._principal(req)
            self._find_bucket(SERVICE_ROLE, bucket_id)
            row = self._find_object(who, bucket_id, name)
        return self._render_object(req, row, download=req.query.get("download"))

    def _info(
        self, req: StorageRequest, bucket_id: str, name: str, *, public: bool = False
    ) -> StorageResponse:
        # Like the real route: an invalid JWT is tolerated, and then only public buckets answer.
        who = None if public else self._optional_principal(req)
        bucket = self._find_bucket(SERVICE_ROLE, bucket_id)
        if bucket["public"]:
            reader = SERVICE_ROLE
        elif who is None:
            raise _no_such_bucket()
        else:
            reader = who
        row = self._find_object(reader, bucket_id, name)
        meta = row.get("metadata") or {}
        return StorageResponse.json(
            200,
            {
                "id": str(row["id"]),
                "name": row["name"],
                "version": row["version"],
                "bucket_id": row["bucket_id"],
                "size": meta.get("size"),
                "content_type": meta.get("mimetype"),
                "cache_control": meta.get("cacheControl"),
                "etag": meta.get("eTag"),
                "metadata": row["user_metadata"],
                "last_modified": _iso(row["updated_at"]),
                "created_at": _iso(row["created_at"]),
            },
        )

    def _list_objects(self, req: StorageRequest, bucket_id: str) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        prefix = body.get("prefix")
        if not isinstance(prefix, str):
            raise _bad_request("body must have required property 'prefix'")
        try:
            limit = int(body.get("limit", 100))
            offset = int(body.get("offset", 0))
        except (TypeError, ValueError):
            raise _bad_request("body/limit and body/offset must be integer") from None
        sort = body.get("sortBy") or {}
        column = str(sort.get("column") or "name")
        order = str(sort.get("order") or "asc").lower()
        if column not in _SORT_COLUMNS or order not in ("asc", "desc"):
            raise StorageError(400, "InvalidParameter", "Invalid Parameter sortBy")
        search = str(body.get("search") or "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        level = prefix.count("/")  # index of the path token shown at this level
        with self._tx(who, operation="object.list") as cur:
            # ILIKE like the real storage.search(); RLS decides which rows exist for this caller.
            cur.execute(
                "select id, name, updated_at, created_at, last_accessed_at, metadata"
                " from storage.objects where bucket_id = %s and name ilike %s",
                (bucket_id, _escape_like(prefix + search) + "%"),
            )
            rows = cur.fetchall()
        folders: set[str] = set()
        files: list[dict[str, Any]] = []
        for row in rows:
            tokens = row["name"].split("/")
            if len(tokens) > level + 1:
                folders.add(tokens[level])
            elif len(tokens) == level + 1:
                files.append({**row, "name": tokens[level]})
        descending = order == "desc"
        # Folders first (by name), then files by the sort column: the real function's UNION ALL.
        entries: list[dict[str, Any]] = [
            {
                "name": folder,
                "id": None,
                "updated_at": None,
                "created_at": None,
                "last_accessed_at": None,
                "metadata": None,
            }
            for folder in sorted(folders, reverse=descending)
        ]
        files.sort(key=lambda r: (r[column], r["name"]), reverse=descending)
        entries += [_row_json(r) for r in files]
        return StorageResponse.json(200, entries[offset : offset + max(limit, 0)])

    # ------------------------------------------------------------------ deletes

    def _remove(self, req: StorageRequest, bucket_id: str) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        prefixes = body.get("prefixes")
        if (
            not isinstance(prefixes, list)
            or not prefixes
            or not all(isinstance(p, str) for p in prefixes)
        ):
            raise _bad_request("body/prefixes must NOT have fewer than 1 items")
        with self._tx(who, operation="object.delete_many") as cur:
            # RLS filters the rows: another user's object is silently not deleted.
            cur.execute(
                f"delete from storage.objects where bucket_id = %s and name = any(%s)"
                f" returning {OBJECT_COLUMNS}",
                (bucket_id, prefixes),
            )
            rows = cur.fetchall()
        for row in rows:
            self._remove_blob(bucket_id, row["name"], row["version"])
        return StorageResponse.json(200, [_row_json(r) for r in rows])

    def _delete_one(self, req: StorageRequest, bucket_id: str, name: str) -> StorageResponse:
        who = self._principal(req)
        self._find_object(who, bucket_id, name)
        with self._tx(who, operation="object.delete") as cur:
            cur.execute(
                "delete from storage.objects where bucket_id = %s and name = %s returning version",
                (bucket_id, name),
            )
            row = cur.fetchone()
        if row is None:
            raise _no_such_key()
        self._remove_blob(bucket_id, name, row["version"])
        return StorageResponse.json(200, {"message": "Successfully deleted"})

    # ------------------------------------------------------------------ move / copy

    def _move_or_copy(self, req: StorageRequest, *, copy: bool) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        keys = ("bucketId", "sourceKey", "destinationKey")
        for key in keys:
            if not isinstance(body.get(key), str):
                raise _bad_request(f"body must have required property '{key}'")
        bucket_id, source, dest = (str(body[key]) for key in keys)
        dest_bucket = str(body.get("destinationBucket") or bucket_id)
        _check_key(source)
        _check_key(dest)
        self._find_bucket(SERVICE_ROLE, dest_bucket)
        if copy:
            return self._copy(who, bucket_id, source, dest_bucket, dest)
        return self._move(who, bucket_id, source, dest_bucket, dest)

    def _move(
        self, who: Principal, bucket_id: str, source: str, dest_bucket: str, dest: str
    ) -> StorageResponse:
        if (bucket_id, source) == (dest_bucket, dest):
            return StorageResponse.json(200, {"message": "Successfully moved"})
        src_row = self._find_object(who, bucket_id, source)
        moved: tuple[Path, Path] | None = None
        try:
            with self._tx(who, operation="object.move") as cur:
                # A rename, so a user needs an UPDATE policy, as on the real server.
                try:
                    cur.execute(
                        "update storage.objects set bucket_id = %s, name = %s, updated_at = now()"
                        " where bucket_id = %s and name = %s returning version",
                        (dest_bucket, dest, bucket_id, source),
                    )
                except psycopg.errors.UniqueViolation:
                    raise _duplicate("KeyAlreadyExists") from None
                row = cur.fetchone()
                if row is None:
                    raise _no_such_key()
                old_path = self._blob(bucket_id, source, src_row["version"])
                new_path = self._blob(dest_bucket, dest, row["version"])
                new_path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(old_path, new_path)
                moved = (new_path, old_path)
            moved = None
        finally:
            if moved is not None:  # the commit failed: put the bytes back
                os.replace(*moved)
        self._remove_blob(bucket_id, source, None)
        return StorageResponse.json(200, {"message": "Successfully moved"})

    def _copy(
        self, who: Principal, bucket_id: str, source: str, dest_bucket: str, dest: str
    ) -> StorageResponse:
        src_row = self._find_object(who, bucket_id, source)
        version = str(uuid.uuid4())
        placed: Path | None = None
        try:
            with self._tx(who, operation="object.copy") as cur:
                row = self._write_row(
                    cur,
                    dest_bucket,
                    dest,
                    version,
                    who.sub,
                    src_row["metadata"] or {},
                    src_row["user_metadata"],
                    upsert=False,
                )
                placed = self._blob(dest_bucket, dest, version)
                placed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self._blob(bucket_id, source, src_row["version"]), placed)
            placed = None
        finally:
            if placed is not None:
                placed.unlink(missing_ok=True)
        return StorageResponse.json(200, {"Id": str(row["id"]), "Key": f"{dest_bucket}/{dest}"})

    # ------------------------------------------------------------------ signed URLs

    def _sign_token(self, claims: dict[str, Any], expires_in: int) -> str:
        now = int(self.clock())
        return jwt.encode({**claims, "iat": now, "exp": now + expires_in}, self.jwt_secret, "HS256")

    @staticmethod
    def _expires_in(body: Mapping[str, Any]) -> int:
        value: Any = body.get("expiresIn")
        try:
            seconds = int(value)  # storage3 sends a string: Fastify coerces it
        except (TypeError, ValueError):
            raise _bad_request("body/expiresIn must be integer") from None
        if seconds < 1:
            raise _bad_request("body/expiresIn must be >= 1")
        return seconds

    def _signed_path(self, kind: str, bucket_id: str, name: str, token: str) -> str:
        return f"/object/{kind}/{quote(f'{bucket_id}/{name}', safe=_ENCODE_URI_SAFE)}?token={token}"

    def _sign(self, req: StorageRequest, bucket_id: str, name: str) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        expires_in = self._expires_in(body)
        self._find_object(who, bucket_id, name)  # RLS: you can only sign what you can read
        token = self._sign_token({"url": f"{bucket_id}/{name}"}, expires_in)
        return StorageResponse.json(
            200, {"signedURL": self._signed_path("sign", bucket_id, name, token)}
        )

    def _sign_many(self, req: StorageRequest, bucket_id: str) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        expires_in = self._expires_in(body)
        paths = body.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise _bad_request("body must have required property 'paths'")
        with self._tx(who, operation="object.sign_many") as cur:
            cur.execute(
                "select name from storage.objects where bucket_id = %s and name = any(%s)",
                (bucket_id, paths),
            )
            found = {r["name"] for r in cur.fetchall()}
        result = []
        for path in paths:
            if path in found:
                token = self._sign_token({"url": f"{bucket_id}/{path}"}, expires_in)
                result.append(
                    {
                        "error": None,
                        "path": path,
                        "signedURL": self._signed_path("sign", bucket_id, path, token),
                    }
                )
            else:
                result.append(
                    {
                        "error": "Either the object does not exist or you do not have access to it",
                        "path": path,
                        "signedURL": None,
                    }
                )
        return StorageResponse.json(200, result)

    def _verify_url_token(self, req: StorageRequest, bucket_id: str, name: str) -> dict[str, Any]:
        token = req.query.get("token")
        if not token:
            raise _bad_request("querystring must have required property 'token'")
        try:
            payload = self.verify_token(token)
        except ValueError as exc:
            raise _invalid_jwt(str(exc)) from None
        if payload.get("url") != f"{bucket_id}/{name}":
            raise StorageError(400, "InvalidSignature", "The url do not match the signature")
        return payload

    def _signed_download(self, req: StorageRequest, bucket_id: str, name: str) -> StorageResponse:
        self._verify_url_token(req, bucket_id, name)
        row = self._find_object(SERVICE_ROLE, bucket_id, name)
        return self._render_object(req, row, download=req.query.get("download"))

    def _sign_upload(self, req: StorageRequest, bucket_id: str, name: str) -> StorageResponse:
        who = self._principal(req)
        _check_key(name)
        upsert = req.headers.get("x-upsert", "false").lower() == "true"
        self._find_bucket(SERVICE_ROLE, bucket_id)
        with self._tx(SERVICE_ROLE) as cur:
            cur.execute(
                "select 1 from storage.objects where bucket_id = %s and name = %s",
                (bucket_id, name),
            )
            exists = cur.fetchone() is not None
        if exists and not upsert:
            raise _duplicate("KeyAlreadyExists")
        # The creator must be allowed to insert there (the upload itself then bypasses RLS).
        with self._tx(who, test_only=True, operation="object.upload_sign.test") as cur:
            self._write_row(
                cur, bucket_id, name, str(uuid.uuid4()), who.sub, {}, None, upsert=upsert
            )
        claims: dict[str, Any] = {"url": f"{bucket_id}/{name}", "upsert": upsert}
        if who.sub:
            claims["owner"] = who.sub
        token = self._sign_token(claims, self.upload_url_ttl_seconds)
        return StorageResponse.json(
            200, {"url": self._signed_path("upload/sign", bucket_id, name, token)}
        )

    def _signed_upload(self, req: StorageRequest, bucket_id: str, name: str) -> StorageResponse:
        payload = self._verify_url_token(req, bucket_id, name)
        owner = payload.get("owner")
        result = self._upload(
            req,
            SERVICE_ROLE,
            bucket_id,
            name,
            mode="create",
            upsert=bool(payload.get("upsert")),
            owner=str(owner) if owner else None,
        )
        return StorageResponse.json(200, result)
