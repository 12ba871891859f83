"""The private `training-photos` bucket behind a small interface (Supabase Storage in production)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.errors import UpstreamError
from shared.retry import NO_DEADLINE, Deadline, call_with_retry, httpx_errors, is_transient


class PhotoStore(Protocol):
    def put(self, path: str, data: bytes, content_type: str) -> None: ...

    def get(self, path: str) -> bytes: ...

    def remove(self, paths: list[str]) -> None: ...

    def list_names(self, prefix: str) -> list[str]:
        """Every object under the folder `prefix`, at any depth."""
        ...

    def sizes(self, prefix: str) -> dict[str, int]:
        """Path -> size in bytes of every object under the folder `prefix`, at any depth."""
        ...

    def signed_upload(self, path: str) -> SignedUpload:
        """A URL and token with which a browser can put one object at `path`."""
        ...


@dataclass(frozen=True)
class SignedUpload:
    """Where a browser sends one object straight to Storage (supabase createSignedUploadUrl)."""

    path: str
    url: str  # absolute; PUT the bytes here
    token: str  # the same token alone, for supabase-js uploadToSignedUrl(path, token, file)
    expires_at: datetime | None  # from the token; None when it does not say


LIST_PAGE = 1000


class ObjectMissing(Exception):
    """The object is not in the bucket."""


def storage_body_status(response: Any) -> object:
    """Storage renders most errors as HTTP 400 with the real status in the body's statusCode
    (reference/supabase.md 1.6)."""
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
    def __init__(self, client: Any, bucket: str, deadline: Deadline = NO_DEADLINE):
        self._connect: Callable[[], Any] = lambda: client
        self._bucket_name = bucket
        self.deadline = deadline

    @classmethod
    def lazy(
        cls, build_client: Callable[[], Any], bucket: str, deadline: Deadline = NO_DEADLINE
    ) -> SupabasePhotoStore:
        """A store that builds its client (importing storage3) at its first Storage call, so a
        request that never touches a photo (a status read) never pays for it."""
        store = cls(None, bucket, deadline)
        store._connect = build_client
        return store

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


def _token_expiry(token: str) -> datetime | None:
    """The `exp` of Storage's upload token. Not a trust decision (we only read our own
    server's answer), so the signature is not checked; a token we cannot read says nothing."""
    import jwt  # lazily: every function imports this module, only the signed flow needs PyJWT

    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
