"""The start path's streamed photo fetch (`SupabasePhotoStore.fetch_into`) against the Storage
emulator: same bytes as the buffered download, same outcomes for missing objects and faults."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from typing import IO

import httpx
import pytest

from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from shared.adapters.supabase_storage import SupabasePhotoStore
from shared.errors import UpstreamError
from shared.plumbing.deadline import Deadline
from shared.ports import ObjectMissing

PhotoFetch = Callable[[str, IO[bytes]], None]

BUCKET = "training-photos"


@pytest.fixture
def storage(stack: LocalStack) -> Iterator[httpx.Client]:
    key = stack.service_role_key
    with httpx.Client(
        base_url=f"{stack.supabase_url}/storage/v1/object/{BUCKET}",
        headers={"Authorization": f"Bearer {key}", "apikey": key},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def fetch(stack: LocalStack, storage: httpx.Client) -> PhotoFetch:
    def no_storage3() -> None:
        raise AssertionError("a streamed fetch does not go through storage3")

    store = SupabasePhotoStore(
        no_storage3,
        BUCKET,
        connect_http=lambda: storage,
        storage_url=f"{stack.supabase_url}/storage/v1",
        deadline=Deadline(10),
    )
    return store.fetch_into


def put(storage: httpx.Client, data: bytes) -> str:
    path = f"{uuid.uuid4()}/{uuid.uuid4()}/01.jpg"
    storage.post(
        f"/{path}", content=data, headers={"content-type": "image/jpeg"}
    ).raise_for_status()
    return path


def test_a_photo_is_streamed_byte_for_byte(storage: httpx.Client, fetch: PhotoFetch):
    data = make_photo(800, 600, seed=7)
    path = put(storage, data)
    out = io.BytesIO(b"left over from an earlier attempt")
    fetch(path, out)
    assert out.getvalue() == data


def test_a_missing_photo_is_object_missing(fetch: PhotoFetch):
    with pytest.raises(ObjectMissing):
        fetch(f"{uuid.uuid4()}/{uuid.uuid4()}/01.jpg", io.BytesIO())


def test_a_transient_fault_is_retried(stack: LocalStack, storage: httpx.Client, fetch: PhotoFetch):
    assert stack.gateway is not None
    data = make_photo(320, 240, seed=8)
    path = put(storage, data)
    stack.gateway.storage_faults.add("GET", "^/storage/v1/object/", "status", status=503, times=2)
    out = io.BytesIO()
    fetch(path, out)
    assert out.getvalue() == data


def test_storage_that_stays_down_is_an_upstream_error(
    stack: LocalStack, storage: httpx.Client, fetch: PhotoFetch
):
    assert stack.gateway is not None
    path = put(storage, make_photo(320, 240, seed=9))
    stack.gateway.storage_faults.add(
        "GET", "^/storage/v1/object/", "status", status=503, times=None
    )
    with pytest.raises(UpstreamError):
        fetch(path, io.BytesIO())


def test_a_5xx_that_storage_renders_as_400_is_retried_then_reported(
    stack: LocalStack, storage: httpx.Client, fetch: PhotoFetch
):
    # Storage answers most errors as HTTP 400 with the real status in the body's statusCode; the
    # buffered store (storage3) already read it there, and so must the streamed fetch.
    assert stack.gateway is not None
    data = make_photo(320, 240, seed=10)
    path = put(storage, data)
    internal = {"statusCode": "503", "error": "Service Unavailable", "message": "busy"}
    faults = stack.gateway.storage_faults
    faults.add("GET", "^/storage/v1/object/", "status", status=400, body=internal, times=2)
    out = io.BytesIO()
    fetch(path, out)
    assert out.getvalue() == data
    faults.add("GET", "^/storage/v1/object/", "status", status=400, body=internal, times=None)
    try:
        with pytest.raises(UpstreamError):
            fetch(path, io.BytesIO())
    finally:
        faults.clear()
