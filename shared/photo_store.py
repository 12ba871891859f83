"""The private `training-photos` bucket behind a small interface (Supabase Storage in production)."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from shared.errors import UpstreamError
from shared.retry import NO_DEADLINE, Deadline, call_with_retry, is_transient


class PhotoStore(Protocol):
    def put(self, path: str, data: bytes, content_type: str) -> None: ...

    def get(self, path: str) -> bytes: ...

    def remove(self, paths: list[str]) -> None: ...

    def list_names(self, prefix: str) -> list[str]: ...


class ObjectMissing(Exception):
    """The object is not in the bucket."""


def _storage_transient(exc: BaseException) -> bool:
    # Storage answers HTTP 400 with the real status in the body (reference/supabase.md 1.6).
    status = getattr(exc, "status", None)
    if isinstance(status, str) and status.isdigit() and int(status) >= 500:
        return True
    return is_transient(exc)


class SupabasePhotoStore:
    def __init__(self, client: Any, bucket: str, deadline: Deadline = NO_DEADLINE):
        self._bucket = client.from_(bucket)  # storage3 SyncBucketProxy
        self.deadline = deadline

    def _run(self, operation: Any) -> Any:
        try:
            return call_with_retry(operation, deadline=self.deadline, transient=_storage_transient)
        except httpx.TransportError as exc:
            raise UpstreamError("Photo storage is not reachable right now.") from exc
        except Exception as exc:
            if getattr(exc, "status", None) == "404":
                raise ObjectMissing(str(exc)) from exc
            if _storage_transient(exc):
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
        rows = self._run(lambda: self._bucket.list(prefix, {"limit": 1000}))
        base = prefix.rstrip("/")
        return [f"{base}/{row['name']}" for row in rows if row.get("id")]
