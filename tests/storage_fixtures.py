"""Session fixtures for the Supabase gateway (REST proxy + Storage emulator) on the test stack.

Import the fixtures you use into a test module (`from tests.storage_fixtures import gateway`);
they build on `pg`, `rest` and `jwt_secret` from tests/conftest.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from storage3 import SyncStorageClient

from devstack.gateway import SupabaseGateway
from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import create_user
from devstack.storage_emulator import DEFAULT_UPLOAD_URL_TTL_SECONDS
from devstack.tokens import anon_key, service_role_key, user_access_token


@pytest.fixture(scope="session")
def gateway(
    pg: LocalPostgres,
    rest: LocalPostgrest,
    jwt_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SupabaseGateway]:
    """One gateway per session; `gateway.url` is the SUPABASE_URL of the local project."""
    with SupabaseGateway(
        postgrest_url=rest.url,
        database_url=pg.dsn(),
        jwt_secret=jwt_secret,
        data_dir=tmp_path_factory.mktemp("storage"),
    ) as gw:
        yield gw


@pytest.fixture
def clean_gateway(gateway: SupabaseGateway) -> Iterator[SupabaseGateway]:
    """The session gateway; faults, counters, latency, clock, TTL and JWKS reset afterwards."""
    gateway.counters.reset()
    try:
        yield gateway
    finally:
        gateway.storage_faults.clear()
        gateway.rest_faults.clear()
        gateway.counters.reset()
        gateway.latency_seconds = 0.0
        gateway.storage.clock = time.time
        gateway.storage.upload_url_ttl_seconds = DEFAULT_UPLOAD_URL_TTL_SECONDS
        gateway.jwks = {"keys": []}


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """HTTP/1.1 client shared by the storage clients (supabase.md: never the HTTP/2 default)."""
    with httpx.Client(http2=False, timeout=30) as client:
        yield client


@dataclass
class StorageUser:
    """A signed-in user (or the service role when `id` is None) with a storage3 client."""

    id: str | None
    token: str
    storage: SyncStorageClient

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def storage_client(
    gateway: SupabaseGateway, jwt_secret: str, token: str, http: httpx.Client
) -> SyncStorageClient:
    # What supabase-py builds: apikey = the anon key, Authorization = the session's token.
    return SyncStorageClient(
        f"{gateway.url}/storage/v1/",
        headers={"apikey": anon_key(jwt_secret), "Authorization": f"Bearer {token}"},
        http_client=http,
    )


@pytest.fixture(scope="session")
def service(gateway: SupabaseGateway, jwt_secret: str, http: httpx.Client) -> StorageUser:
    key = service_role_key(jwt_secret)
    return StorageUser(None, key, storage_client(gateway, jwt_secret, key, http))


@pytest.fixture
def make_storage_user(
    gateway: SupabaseGateway, pg: LocalPostgres, jwt_secret: str, http: httpx.Client
) -> Callable[[], StorageUser]:
    """A new auth.users row and an access token for it, as Supabase Auth would issue."""

    def make() -> StorageUser:
        user_id = create_user(pg.dsn(), f"{uuid.uuid4().hex[:10]}@storage.test")
        token = user_access_token(jwt_secret, gateway.url, user_id)
        return StorageUser(user_id, token, storage_client(gateway, jwt_secret, token, http))

    return make
