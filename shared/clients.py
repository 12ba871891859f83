"""Clients built once per container (module-level caches), used through per-invocation wrappers.

Heavy SDKs are imported here lazily so a function only pays for what its path uses.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shared.jobs import PostgrestJobStore
from shared.photo_store import SupabasePhotoStore
from shared.retry import NO_DEADLINE, Deadline
from shared.settings import get_settings

if TYPE_CHECKING:
    import ssl

    import httpx

    # The training side is imported where it is used: the upload function never loads it.
    from shared.notify import Notifier
    from shared.trainer import ReplicateTrainer
    from shared.training import StartDeps


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One TLS context shared by every client: each new one loads the whole CA bundle again
    (20-45 ms here), and a start path builds three clients."""
    import httpx

    return httpx.create_ssl_context()


def _service_role_headers() -> dict[str, str]:
    key = get_settings().supabase_service_role_key.get_secret_value()
    return {"apikey": key, "Authorization": f"Bearer {key}"}


def _supabase_http(timeout: float) -> httpx.Client:
    import httpx

    # HTTP/1.1 with short keep-alive: Lambda freezes between invocations and idle HTTP/2
    # connections die server-side (reference/supabase.md §6.1).
    return httpx.Client(
        headers=_service_role_headers(),
        timeout=httpx.Timeout(timeout, connect=3.0),
        limits=httpx.Limits(
            max_connections=32, max_keepalive_connections=16, keepalive_expiry=20.0
        ),
        http2=False,
        follow_redirects=True,
        verify=tls_context(),
    )


@lru_cache(maxsize=1)
def postgrest_client() -> Any:
    from postgrest import SyncPostgrestClient

    return SyncPostgrestClient(
        f"{get_settings().supabase_url}/rest/v1",
        headers=_service_role_headers(),
        http_client=_supabase_http(10.0),
    )


@lru_cache(maxsize=1)
def storage_client() -> Any:
    from storage3 import SyncStorageClient

    return SyncStorageClient(
        f"{get_settings().supabase_url}/storage/v1/",
        headers=_service_role_headers(),
        http_client=_supabase_http(30.0),
    )


@lru_cache(maxsize=1)
def replicate_client() -> Any:
    from shared.trainer import build_replicate_client

    return build_replicate_client(get_settings(), tls=tls_context())


def job_store(deadline: Deadline = NO_DEADLINE) -> PostgrestJobStore:
    return PostgrestJobStore(postgrest_client(), deadline)


@lru_cache(maxsize=1)
def storage_stream_http() -> httpx.Client:
    """For streamed downloads (the start path's photos), beside storage3's buffered ones."""
    return _supabase_http(30.0)


def photo_store(deadline: Deadline = NO_DEADLINE) -> SupabasePhotoStore:
    # storage3 is imported at the first Storage call: a status read never makes one.
    return SupabasePhotoStore.lazy(storage_client, get_settings().training_photos_bucket, deadline)


def trainer(deadline: Deadline = NO_DEADLINE) -> ReplicateTrainer:
    from shared.trainer import ReplicateTrainer

    # The client (and the replicate SDK) is built at the first Replicate call, once per container.
    return ReplicateTrainer.lazy(replicate_client, get_settings(), deadline)


@lru_cache(maxsize=1)
def notifier() -> Notifier:
    from shared.notify import build_notifier

    return build_notifier(get_settings(), lambda: _supabase_http(10.0))


def reset() -> None:
    """Forget every cached client and the settings (tests that change the environment)."""
    postgrest_client.cache_clear()
    tls_context.cache_clear()
    storage_stream_http.cache_clear()
    notifier.cache_clear()
    storage_client.cache_clear()
    replicate_client.cache_clear()
    get_settings.cache_clear()


def start_deps(deadline: Deadline = NO_DEADLINE) -> StartDeps:
    """Everything the start and status paths use, bound to this invocation's deadline."""
    from shared.training import StartDeps, storage_fetch

    settings = get_settings()
    bucket_url = f"{settings.supabase_url}/storage/v1/object/{settings.training_photos_bucket}"
    return StartDeps(
        settings=settings,
        jobs=job_store(deadline),
        photos=photo_store(deadline),
        trainer=trainer(deadline),
        notifier=notifier(),
        fetch_photo=storage_fetch(storage_stream_http(), bucket_url, deadline),
    )
