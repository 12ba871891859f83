"""The composition root: the only module that builds real adapters.

Clients are built once per container (module-level caches) and handed out through
per-invocation wrappers bound to that invocation's deadline (`deps(deadline)`). Heavy SDKs are
imported lazily, at the first call that needs them, so a function only pays for the path it
serves (bench cold_start, tests/unit/test_cold_import.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from shared.plumbing.deadline import NO_DEADLINE, Deadline
from shared.plumbing.settings import Settings, settings_from_env

if TYPE_CHECKING:
    import ssl

    import httpx

    from shared.ports import (
        JobStore,
        Notifier,
        PhotoStore,
        Predictor,
        PreviewStore,
        Trainer,
        TrainingQueue,
        TwinStore,
    )
    from shared.services.deps import Deps


@lru_cache(maxsize=1)
def settings() -> Settings:
    """Settings for this container, validated once (at the first request, not at import)."""
    secrets: dict[str, str] = {}
    if arn := os.environ.get("APP_SECRET_ARN"):
        from shared.adapters.aws_secrets import read_app_secret

        secrets = read_app_secret(arn)
    return settings_from_env(os.environ, secrets)


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One TLS context shared by every client: each new one loads the whole CA bundle again
    (20-45 ms here), and a start path builds three clients."""
    import httpx

    return httpx.create_ssl_context()


def _service_role_headers() -> dict[str, str]:
    key = settings().supabase_service_role_key.get_secret_value()
    return {"apikey": key, "Authorization": f"Bearer {key}"}


def _supabase_http(timeout: float) -> httpx.Client:
    import httpx

    # HTTP/1.1 with short keep-alive: Lambda freezes between invocations and idle HTTP/2
    # connections die server-side.
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
        f"{settings().supabase_url}/rest/v1",
        headers=_service_role_headers(),
        http_client=_supabase_http(10.0),
    )


@lru_cache(maxsize=1)
def storage_client() -> Any:
    from storage3 import SyncStorageClient

    return SyncStorageClient(
        f"{settings().supabase_url}/storage/v1/",
        headers=_service_role_headers(),
        http_client=_supabase_http(30.0),
    )


@lru_cache(maxsize=1)
def storage_stream_http() -> httpx.Client:
    """For streamed downloads (the start path's photos), beside storage3's buffered ones."""
    return _supabase_http(30.0)


@lru_cache(maxsize=1)
def replicate_client() -> Any:
    from shared.adapters.replicate import build_replicate_client

    return build_replicate_client(settings(), tls=tls_context())


@lru_cache(maxsize=1)
def download_http() -> httpx.Client:
    """For preview outputs (replicate.delivery): no credentials of ours on it."""
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(30.0, connect=5.0),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8, keepalive_expiry=20),
        follow_redirects=True,
        verify=tls_context(),
    )


@lru_cache(maxsize=1)
def notifier() -> Notifier:
    from shared.adapters.notifiers import build_notifier

    return build_notifier(settings(), lambda: _supabase_http(10.0))


def clock() -> datetime:
    """The queue's clock: the system's (tests of the daily budget set another here)."""
    return datetime.now(UTC)


class _AtFirstUse:
    """A port whose adapter, and with it the adapter's module and the domain rules it reads, is
    built at its first call: the upload function never reads Replicate, a status read of a
    training never writes a preview (bench cold_start)."""

    def __init__(self, build: Callable[[], object]) -> None:
        self._build = build
        self._adapter: object | None = None

    def __getattr__(self, name: str) -> Any:
        if self._adapter is None:
            self._adapter = self._build()
        return getattr(self._adapter, name)


def deps(deadline: Deadline = NO_DEADLINE) -> Deps:
    """Every port's real adapter, bound to this invocation's deadline. Nothing connects or loads
    here: each adapter is built at its first call, and builds its client (and imports its SDK)
    then."""
    from shared.services.deps import Deps

    config = settings()

    def jobs() -> object:
        from shared.adapters.postgrest_jobs import PostgrestJobStore

        return PostgrestJobStore(postgrest_client, deadline)

    def twins() -> object:
        from shared.adapters.postgrest_twins import PostgrestTwinStore

        return PostgrestTwinStore(postgrest_client, deadline)

    def photos() -> object:
        from shared.adapters.supabase_storage import SupabasePhotoStore

        return SupabasePhotoStore(
            storage_client,
            config.training_photos_bucket,
            connect_http=storage_stream_http,
            storage_url=f"{config.supabase_url}/storage/v1",
            deadline=deadline,
        )

    def trainer() -> object:
        from shared.adapters.replicate import ReplicateTrainer

        return ReplicateTrainer(replicate_client, config, deadline)

    def queue() -> object:
        from shared.adapters.postgrest_queue import PostgrestTrainingQueue

        return PostgrestTrainingQueue(postgrest_client, deadline)

    def previews() -> object:
        from shared.adapters.postgrest_previews import PostgrestPreviewStore

        return PostgrestPreviewStore(postgrest_client, deadline)

    def predictor() -> object:
        from shared.adapters.replicate import ReplicatePredictor

        return ReplicatePredictor(
            replicate_client, config, deadline, connect_downloads=download_http
        )

    return Deps(
        settings=config,
        jobs=cast("JobStore", _AtFirstUse(jobs)),
        twins=cast("TwinStore", _AtFirstUse(twins)),
        photos=cast("PhotoStore", _AtFirstUse(photos)),
        trainer=cast("Trainer", _AtFirstUse(trainer)),
        notifier=cast("Notifier", _AtFirstUse(notifier)),
        queue=cast("TrainingQueue", _AtFirstUse(queue)),
        previews=cast("PreviewStore", _AtFirstUse(previews)),
        predictor=cast("Predictor", _AtFirstUse(predictor)),
        clock=clock,
    )


def reset() -> None:
    """Forget every cached client and the settings (tests that change the environment)."""
    for cached in (
        settings,
        tls_context,
        postgrest_client,
        storage_client,
        storage_stream_http,
        replicate_client,
        download_http,
        notifier,
    ):
        cached.cache_clear()
