"""The private `training-photos` bucket on Supabase Storage (the `PhotoStore` port)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from shared.errors import UpstreamError
from shared.plumbing.deadline import NO_DEADLINE, Deadline
from shared.plumbing.retry import call_with_retry, httpx_errors, is_transient
from shared.ports import ObjectMissing, SignedUpload

if TYPE_CHECKING:
    import httpx

LIST_PAGE = 1000
STREAM_CHUNK_BYTES = 256 * 1024


def storage_body_status(response: Any) -> object:
    """Storage renders most errors as HTTP 400 with the real status in the body's statusCode
    (its storage3 client reads it from there too)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("statusCode") if isinstance(body, dict) else None


def storage_transient(exc: BaseException) -> bool:
    """`is_transient`, reading the real status where Storage put it: storage3's error carries
    it as `status`; a raw httpx error response (the streamed fetch) in its body."""
    status = getattr(exc, "status", None)
    if status is None and isinstance(exc, httpx_errors("HTTPStatusError")):
        status = storage_body_status(exc.response)
    if str(status).isdigit() and int(str(status)) >= 500:
        return True
    return is_transient(exc)


class SupabasePhotoStore:
    """The bucket through storage3, plus a plain HTTP client for streamed downloads (storage3's
    `download` buffers a whole object). Both are built at the first Storage call (`connect`,
    `connect_http`), so a request that never touches a photo (a status read) never imports
    storage3."""

    def __init__(
        self,
        connect: Callable[[], Any],
        bucket: str,
        *,
        connect_http: Callable[[], httpx.Client],
        storage_url: str,
        deadline: Deadline = NO_DEADLINE,
    ):
        self._connect = connect
        self._connect_http = connect_http
        self._bucket_name = bucket
        self._object_url = f"{storage_url.rstrip('/')}/object/{bucket}"
        self.deadline = deadline

    @functools.cached_property
    def _bucket(self) -> Any:
        return self._connect().from_(self._bucket_name)  # storage3 SyncBucketProxy

    def _run(self, operation: Any) -> Any:
        try:
            return call_with_retry(operation, deadline=self.deadline, transient=storage_transient)
        except httpx_errors("TransportError") as exc:
            raise UpstreamError("Photo storage is not reachable right now.") from exc
        except Exception as exc:
            if getattr(exc, "status", None) == "404":
                raise ObjectMissing(str(exc)) from exc
            if storage_transient(exc):
                raise UpstreamError("Photo storage is not available right now.") from exc
            raise

    def put(self, path: str, data: bytes, content_type: str) -> None:
        # upsert makes the upload safe to repeat after an ambiguous failure.
        self._run(
            lambda: self._bucket.upload(
                path, data, {"content-type": content_type, "upsert": "true", "cache-control": "60"}
            )
        )

    def get(self, path: str) -> bytes:
        data: bytes = self._run(lambda: self._bucket.download(path))
        return data

    def fetch_into(self, path: str, out: IO[bytes]) -> None:
        """Stream one object into `out` in chunks. Same outcomes as `get`: retried while
        transient within the deadline, ObjectMissing for an object that is not there,
        UpstreamError when Storage stays unreachable."""
        http = self._connect_http()

        def attempt() -> None:
            out.seek(0)
            out.truncate()
            with http.stream("GET", f"{self._object_url}/{quote(path)}") as response:
                if response.status_code >= 400:
                    response.read()
                    if response.status_code == 404 or storage_body_status(response) == "404":
                        raise ObjectMissing(path)
                    response.raise_for_status()
                for chunk in response.iter_bytes(STREAM_CHUNK_BYTES):
                    out.write(chunk)

        try:
            call_with_retry(attempt, deadline=self.deadline, transient=storage_transient)
        except httpx_errors("TransportError") as exc:
            raise UpstreamError("Photo storage is not reachable right now.") from exc
        except httpx_errors("HTTPStatusError") as exc:
            if storage_transient(exc) or exc.response.status_code >= 500:
                raise UpstreamError("Photo storage is not available right now.") from exc
            raise

    def remove(self, paths: list[str]) -> None:
        if paths:
            self._run(lambda: self._bucket.remove(paths))

    def list_names(self, prefix: str) -> list[str]:
        return sorted(self.sizes(prefix))

    def sizes(self, prefix: str) -> dict[str, int]:
        # Storage lists one level at a time: folders come back without an id.
        found: dict[str, int] = {}
        folders = [prefix.strip("/")]
        while folders:
            folder = folders.pop()
            offset = 0
            while True:
                page = self._list_page(folder, offset)
                for row in page:
                    path = f"{folder}/{row['name']}" if folder else str(row["name"])
                    if row.get("id"):
                        found[path] = int((row.get("metadata") or {}).get("size") or 0)
                    else:
                        folders.append(path)
                if len(page) < LIST_PAGE:
                    break
                offset += LIST_PAGE
        return found

    def _list_page(self, folder: str, offset: int) -> list[dict[str, Any]]:
        page: list[dict[str, Any]] = self._run(
            lambda: self._bucket.list(folder, {"limit": LIST_PAGE, "offset": offset})
        )
        return page

    def signed_upload(self, path: str) -> SignedUpload:
        from storage3.types import CreateSignedUploadUrlOptions

        # upsert: a browser that retries a PUT whose answer it lost gets 200, not 409.
        options = CreateSignedUploadUrlOptions(upsert="true")
        signed = self._run(lambda: self._bucket.create_signed_upload_url(path, options))
        return SignedUpload(
            path=path,
            url=signed["signed_url"],
            token=signed["token"],
            expires_at=_token_expiry(signed["token"]),
        )

    def signed_urls(self, paths: Sequence[str], expires_in: int) -> dict[str, str]:
        if not paths:
            return {}
        signed = self._run(lambda: self._bucket.create_signed_urls(list(paths), expires_in))
        return {
            str(item["path"]): str(item["signedURL"])
            for item in signed
            if item.get("signedURL") and not item.get("error")
        }


def _token_expiry(token: str) -> datetime | None:
    """The `exp` of Storage's upload token. Not a trust decision (we only read our own
    server's answer), so the signature is not checked; a token we cannot read says nothing."""
    import jwt  # lazily: every function imports this module, only the signed flow needs PyJWT

    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
