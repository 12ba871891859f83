"""`StorageEmulator`: the Storage API routes over Postgres (objects, RLS) and a directory (bytes)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

import jwt
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from devstack.storage_emulator.db import SERVICE_ROLE, ConnectionPool, Principal
from devstack.storage_emulator.uploads import LimitedFile, MultipartUpload, Received
from devstack.storage_emulator.wire import (
    CHUNK,
    DEFAULT_GLOBAL_FILE_SIZE_LIMIT,
    DEFAULT_UPLOAD_URL_TTL_SECONDS,
    ENCODE_URI_SAFE,
    MAX_JSON_BODY,
    OBJECT_COLUMNS,
    SORT_COLUMNS,
    TMP_DIR_NAME,
    StorageError,
    StorageRequest,
    StorageResponse,
    access_denied,
    as_uuid,
    bad_request,
    check_bucket_name,
    check_key,
    db_error,
    duplicate,
    escape_like,
    invalid_jwt,
    invalid_mime,
    iso,
    mime_allowed,
    no_such_bucket,
    no_such_key,
    parse_size,
    row_json,
    too_large,
)

log = logging.getLogger(__name__)

# Signed-URL token scopes (the real server's SIGNED_URL_SCOPE_DOWNLOAD / _UPLOAD).
DOWNLOAD = "download"
UPLOAD = "upload"


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
            return db_error(exc).response()
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
            raise access_denied(str(exc)) from None
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
                raise db_error(exc) from exc

    def _read_json(self, req: StorageRequest) -> dict[str, Any]:
        data = req.body.read(MAX_JSON_BODY + 1)
        if len(data) > MAX_JSON_BODY:
            raise StorageError(413, "EntityTooLarge", "Request body is too large")
        if not data.strip():
            return {}
        try:
            value = json.loads(data)
        except ValueError:
            raise bad_request("Body is not valid JSON") from None
        if not isinstance(value, dict):
            raise bad_request("body must be object")
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
            raise no_such_bucket()
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
            "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]),
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
            raise bad_request("body must have required property 'name'")
        bucket_id = body.get("id") or name
        check_bucket_name(bucket_id)
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
                        as_uuid(who.sub),
                        bool(body.get("public", False)),
                        parse_size(body.get("file_size_limit")),
                        list(mimes) if mimes else None,
                    ),
                )
            except psycopg.errors.UniqueViolation:
                raise duplicate("BucketAlreadyExists") from None
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
            values.append(parse_size(body["file_size_limit"]))
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
                raise no_such_bucket()
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
                raise no_such_bucket()
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
        check_key(name)
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
                    raise no_such_key()
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
                "lastModified": iso(datetime.now(UTC)),
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
                            as_uuid(owner),
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
                        raise no_such_key()
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
                    as_uuid(owner),
                    owner,
                    Jsonb(metadata),
                    Jsonb(user_metadata) if user_metadata is not None else None,
                    version,
                ),
            )
        except psycopg.errors.UniqueViolation:
            raise duplicate("KeyAlreadyExists") from None
        row = cur.fetchone()
        assert row is not None
        return row

    def _file_size_limit(self, bucket: Mapping[str, Any]) -> int:
        limit = self.global_file_size_limit
        bucket_limit = bucket.get("file_size_limit")
        if bucket_limit and 0 < bucket_limit < limit:
            limit = int(bucket_limit)
        return limit

    def _receive(self, req: StorageRequest, bucket: Mapping[str, Any]) -> Received:
        limit = self._file_size_limit(bucket)
        allowed = bucket.get("allowed_mime_types")

        def check_mime(mime: str) -> None:
            if not mime_allowed(mime, allowed):
                raise invalid_mime(mime)

        content_type = req.headers.get("content-type", "")
        tmp = self._tmp / uuid.uuid4().hex
        target = LimitedFile(tmp, limit)
        try:
            if content_type.lower().startswith("multipart/form-data"):
                _, params = parse_options_header(content_type)
                boundary = params.get(b"boundary")
                if not boundary:
                    raise bad_request("the request is not multipart (no boundary)")
                upload = MultipartUpload(boundary, target, check_mime)
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
                    raise too_large()
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
                raise too_large()
            return Received(tmp, target.size, mimetype, cache_control, target.etag, user_metadata)
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
        check_key(name)
        with self._tx(who, operation="object.get") as cur:
            cur.execute(
                f"select {OBJECT_COLUMNS} from storage.objects where bucket_id = %s and name = %s",
                (bucket_id, name),
            )
            row = cur.fetchone()
        if row is None:
            raise no_such_key()
        return row

    def _render_object(
        self, req: StorageRequest, row: Mapping[str, Any], *, download: str | None = None
    ) -> StorageResponse:
        path = self._blob(row["bucket_id"], row["name"], row["version"])
        try:
            fh: BinaryIO = path.open("rb")
        except FileNotFoundError:
            raise no_such_key() from None
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
                raise no_such_bucket()
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
            raise no_such_bucket()
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
                "last_modified": iso(row["updated_at"]),
                "created_at": iso(row["created_at"]),
            },
        )

    def _list_objects(self, req: StorageRequest, bucket_id: str) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        prefix = body.get("prefix")
        if not isinstance(prefix, str):
            raise bad_request("body must have required property 'prefix'")
        try:
            limit = int(body.get("limit", 100))
            offset = int(body.get("offset", 0))
        except (TypeError, ValueError):
            raise bad_request("body/limit and body/offset must be integer") from None
        sort = body.get("sortBy") or {}
        column = str(sort.get("column") or "name")
        order = str(sort.get("order") or "asc").lower()
        if column not in SORT_COLUMNS or order not in ("asc", "desc"):
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
                (bucket_id, escape_like(prefix + search) + "%"),
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
        entries += [row_json(r) for r in files]
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
            raise bad_request("body/prefixes must NOT have fewer than 1 items")
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
        return StorageResponse.json(200, [row_json(r) for r in rows])

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
            raise no_such_key()
        self._remove_blob(bucket_id, name, row["version"])
        return StorageResponse.json(200, {"message": "Successfully deleted"})

    # ------------------------------------------------------------------ move / copy

    def _move_or_copy(self, req: StorageRequest, *, copy: bool) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        keys = ("bucketId", "sourceKey", "destinationKey")
        for key in keys:
            if not isinstance(body.get(key), str):
                raise bad_request(f"body must have required property '{key}'")
        bucket_id, source, dest = (str(body[key]) for key in keys)
        dest_bucket = str(body.get("destinationBucket") or bucket_id)
        check_key(source)
        check_key(dest)
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
                    raise duplicate("KeyAlreadyExists") from None
                row = cur.fetchone()
                if row is None:
                    raise no_such_key()
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

    def _sign_token(self, claims: dict[str, Any], expires_in: int, *, scope: str) -> str:
        now = int(self.clock())
        return jwt.encode(
            {**claims, "scope": scope, "iat": now, "exp": now + expires_in},
            self.jwt_secret,
            "HS256",
        )

    @staticmethod
    def _expires_in(body: Mapping[str, Any]) -> int:
        value: Any = body.get("expiresIn")
        try:
            seconds = int(value)  # storage3 sends a string: Fastify coerces it
        except (TypeError, ValueError):
            raise bad_request("body/expiresIn must be integer") from None
        if seconds < 1:
            raise bad_request("body/expiresIn must be >= 1")
        return seconds

    def _signed_path(self, kind: str, bucket_id: str, name: str, token: str) -> str:
        return f"/object/{kind}/{quote(f'{bucket_id}/{name}', safe=ENCODE_URI_SAFE)}?token={token}"

    def _sign(self, req: StorageRequest, bucket_id: str, name: str) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        expires_in = self._expires_in(body)
        self._find_object(who, bucket_id, name)  # RLS: you can only sign what you can read
        token = self._sign_token({"url": f"{bucket_id}/{name}"}, expires_in, scope=DOWNLOAD)
        return StorageResponse.json(
            200, {"signedURL": self._signed_path("sign", bucket_id, name, token)}
        )

    def _sign_many(self, req: StorageRequest, bucket_id: str) -> StorageResponse:
        who = self._principal(req)
        body = self._read_json(req)
        expires_in = self._expires_in(body)
        paths = body.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise bad_request("body must have required property 'paths'")
        with self._tx(who, operation="object.sign_many") as cur:
            cur.execute(
                "select name from storage.objects where bucket_id = %s and name = any(%s)",
                (bucket_id, paths),
            )
            found = {r["name"] for r in cur.fetchall()}
        result = []
        for path in paths:
            if path in found:
                token = self._sign_token({"url": f"{bucket_id}/{path}"}, expires_in, scope=DOWNLOAD)
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

    def _verify_url_token(
        self, req: StorageRequest, bucket_id: str, name: str, scope: str
    ) -> dict[str, Any]:
        """The signed URL's token, checked like the real server's verifyObjectSignature: a download
        token never authorises an upload, nor the reverse. Tokens from before scopes existed
        count as upload tokens when they carry `upsert` (only upload signing writes it)."""
        token = req.query.get("token")
        if not token:
            raise bad_request("querystring must have required property 'token'")
        try:
            payload = self.verify_token(token)
        except ValueError as exc:
            raise invalid_jwt(str(exc)) from None
        token_scope = payload.get("scope") or (UPLOAD if "upsert" in payload else DOWNLOAD)
        if token_scope != scope:
            raise StorageError(400, "InvalidSignature", f"Token is not scoped for {scope}")
        if payload.get("url") != f"{bucket_id}/{name}":
            raise StorageError(400, "InvalidSignature", "The url do not match the signature")
        return payload

    def _signed_download(self, req: StorageRequest, bucket_id: str, name: str) -> StorageResponse:
        self._verify_url_token(req, bucket_id, name, DOWNLOAD)
        row = self._find_object(SERVICE_ROLE, bucket_id, name)
        return self._render_object(req, row, download=req.query.get("download"))

    def _sign_upload(self, req: StorageRequest, bucket_id: str, name: str) -> StorageResponse:
        who = self._principal(req)
        check_key(name)
        upsert = req.headers.get("x-upsert", "false").lower() == "true"
        self._find_bucket(SERVICE_ROLE, bucket_id)
        with self._tx(SERVICE_ROLE) as cur:
            cur.execute(
                "select 1 from storage.objects where bucket_id = %s and name = %s",
                (bucket_id, name),
            )
            exists = cur.fetchone() is not None
        if exists and not upsert:
            raise duplicate("KeyAlreadyExists")
        # The creator must be allowed to insert there (the upload itself then bypasses RLS).
        with self._tx(who, test_only=True, operation="object.upload_sign.test") as cur:
            self._write_row(
                cur, bucket_id, name, str(uuid.uuid4()), who.sub, {}, None, upsert=upsert
            )
        claims: dict[str, Any] = {"url": f"{bucket_id}/{name}", "upsert": upsert}
        if who.sub:
            claims["owner"] = who.sub
        token = self._sign_token(claims, self.upload_url_ttl_seconds, scope=UPLOAD)
        return StorageResponse.json(
            200, {"url": self._signed_path("upload/sign", bucket_id, name, token)}
        )

    def _signed_upload(self, req: StorageRequest, bucket_id: str, name: str) -> StorageResponse:
        payload = self._verify_url_token(req, bucket_id, name, UPLOAD)
        owner = payload.get("owner")
        # As the real server: the token is the authorisation, and the object is written as the
        # server's superuser (no user policy applies); owner and upsert come from the token.
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
