"""The Supabase gateway and Storage emulator, driven by the real clients (storage3, supabase-py).

Each test checks a behaviour recorded from the real Storage API (reference/supabase.md 1.6, 4)
or the gateway's contract. Storage RLS comes from the project's own migrations, under which a user
only reads `training-photos`; what a user may do where a policy lets them write is checked in
`user_bucket`, which grants what the training bucket granted before issue 14 (select, insert and
delete in their own folder, no update).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import httpx
import jwt
import pytest
from postgrest.types import CountMethod
from storage3.exceptions import StorageApiError
from storage3.types import CreateSignedUploadUrlOptions, FileOptions, UploadSignedUrlFileOptions

from devstack.gateway import SupabaseGateway
from devstack.postgres import LocalPostgres
from devstack.schema import create_user
from devstack.tokens import anon_key, mint_token, service_role_key
from supabase import ClientOptions, create_client
from tests.storage_fixtures import (
    StorageUser,
    clean_gateway,
    gateway,
    http,
    make_storage_user,
    service,
)

__all__ = ["clean_gateway", "gateway", "http", "make_storage_user", "service"]

pytestmark = pytest.mark.stack

BUCKET = "training-photos"
JPEG: FileOptions = {"content-type": "image/jpeg"}
SIGNED_JPEG: UploadSignedUrlFileOptions = {"content-type": "image/jpeg"}
UserFactory = Callable[[], StorageUser]


def photo(size: int = 64) -> bytes:
    return b"\xff\xd8\xff\xe0" + os.urandom(max(size - 4, 0))


def raw_error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert isinstance(body, dict)
    return body


@pytest.fixture
def alice(make_storage_user: UserFactory) -> StorageUser:
    return make_storage_user()


@pytest.fixture
def bob(make_storage_user: UserFactory) -> StorageUser:
    return make_storage_user()


@pytest.fixture
def user_bucket(service: StorageUser, pg: LocalPostgres) -> Iterator[str]:
    """Images only; a signed-in user may read, upload and delete in their own top folder."""
    import psycopg

    name = f"users-{uuid.uuid4().hex[:8]}"
    service.storage.create_bucket(
        name, options={"public": False, "allowed_mime_types": ["image/*"]}
    )
    own_folder = (
        f"bucket_id = '{name}' and (storage.foldername(name))[1] = (select auth.uid())::text"
    )
    policies = {"select": "using", "insert": "with check", "delete": "using"}
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for command, clause in policies.items():
            conn.execute(
                f'create policy "{name} {command}" on storage.objects for {command}'
                f" to authenticated {clause} ({own_folder})"
            )
    yield name
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for command in policies:
            conn.execute(f'drop policy "{name} {command}" on storage.objects')
    service.storage.empty_bucket(name)
    service.storage.delete_bucket(name)


@pytest.fixture
def scratch_bucket(service: StorageUser) -> Iterator[str]:
    """A throwaway bucket with a 1 kB limit and image/* only, emptied and deleted afterwards."""
    name = f"scratch-{uuid.uuid4().hex[:8]}"
    service.storage.create_bucket(
        name, options={"public": False, "file_size_limit": 1024, "allowed_mime_types": ["image/*"]}
    )
    yield name
    service.storage.empty_bucket(name)
    service.storage.delete_bucket(name)


# --------------------------------------------------------------------------- objects


def test_upload_download_info_and_list_as_owner(alice: StorageUser, user_bucket: str) -> None:
    files = alice.storage.from_(user_bucket)
    data = photo(2000)
    path = f"{alice.id}/job1/a.jpg"

    result = files.upload(path, data, JPEG)

    assert result.full_path == f"{user_bucket}/{path}"
    assert result.path == path
    assert files.download(path) == data
    info = files.info(path)
    assert info["size"] == len(data)
    assert info["content_type"] == "image/jpeg"
    assert info["cache_control"] == "max-age=3600"
    assert info["etag"].startswith('"') and info["bucket_id"] == user_bucket
    assert files.exists(path) is True
    assert files.exists(f"{alice.id}/job1/missing.jpg") is False

    # Names are relative to the prefix; a sub-folder is an entry with null id.
    files.upload(f"{alice.id}/job1/deeper/b.jpg", photo(), JPEG)
    listing = files.list(f"{alice.id}/job1")
    assert [e["name"] for e in listing] == ["deeper", "a.jpg"]
    folder, entry = listing
    assert folder["id"] is None and folder["metadata"] is None
    assert entry["metadata"]["size"] == len(data)
    assert entry["metadata"]["mimetype"] == "image/jpeg"
    assert set(entry) >= {"name", "id", "updated_at", "created_at", "last_accessed_at"}
    top = files.list(alice.id)
    assert top == [
        {
            "name": "job1",
            "id": None,
            "updated_at": None,
            "created_at": None,
            "last_accessed_at": None,
            "metadata": None,
        }
    ]


def test_list_options_limit_offset_sort_and_search(service: StorageUser) -> None:
    files = service.storage.from_(BUCKET)
    folder = f"listing-{uuid.uuid4().hex[:8]}"
    for name in ("c.jpg", "a.jpg", "b.png", "sub/x.jpg"):
        files.upload(f"{folder}/{name}", photo(), JPEG)

    names = [e["name"] for e in files.list(folder)]
    assert names == ["sub", "a.jpg", "b.png", "c.jpg"]
    desc = files.list(folder, {"sortBy": {"column": "name", "order": "desc"}})
    assert [e["name"] for e in desc] == ["sub", "c.jpg", "b.png", "a.jpg"]
    page = files.list(folder, {"limit": 2, "offset": 1})
    assert [e["name"] for e in page] == ["a.jpg", "b.png"]
    assert [e["name"] for e in files.list(folder, {"search": "b"})] == ["b.png"]


def test_default_upload_content_type_is_rejected_by_the_bucket(service: StorageUser) -> None:
    # storage3 sends text/plain;charset=UTF-8 unless told otherwise; the bucket allows images.
    with pytest.raises(StorageApiError) as caught:
        service.storage.from_(BUCKET).upload(f"mime-{uuid.uuid4().hex[:8]}/a.jpg", photo())
    err = caught.value
    assert (err.status, err.code) == ("415", "invalid_mime_type")
    assert err.message == "mime type text/plain is not supported"


def test_errors_are_http_400_with_the_code_in_the_body(
    gateway: SupabaseGateway, service: StorageUser
) -> None:
    response = httpx.post(
        f"{gateway.url}/storage/v1/object/{BUCKET}/text-{uuid.uuid4().hex[:8]}/a.txt",
        headers=service.headers,
        files={"file": ("a.txt", b"hello", "text/plain")},
    )
    assert response.status_code == 400
    assert raw_error(response) == {
        "statusCode": "415",
        "code": "InvalidMimeType",
        "error": "invalid_mime_type",
        "message": "mime type text/plain is not supported",
    }


def test_duplicate_upload_without_upsert_is_409(service: StorageUser) -> None:
    files = service.storage.from_(BUCKET)
    path = f"dup-{uuid.uuid4().hex[:8]}/dup.jpg"
    files.upload(path, photo(), JPEG)
    with pytest.raises(StorageApiError) as caught:
        files.upload(path, photo(), JPEG)
    assert (caught.value.status, caught.value.code) == ("409", "Duplicate")
    assert caught.value.message == "The resource already exists"


def test_upsert_is_the_string_true_and_replaces_the_object(service: StorageUser) -> None:
    files = service.storage.from_(BUCKET)
    path = f"upsert-{uuid.uuid4().hex[:8]}/a.jpg"
    files.upload(path, b"first", JPEG)
    files.upload(path, b"second", {"content-type": "image/jpeg", "upsert": "true"})
    assert files.download(path) == b"second"
    # A Python bool never reaches the server: httpx refuses non-string header values.
    with pytest.raises(AttributeError):
        files.upload(path, b"third", cast(FileOptions, {**JPEG, "upsert": True}))


def test_user_upsert_needs_an_update_policy(alice: StorageUser, user_bucket: str) -> None:
    # The bucket grants users select/insert/delete only, so overwriting is refused (403).
    files = alice.storage.from_(user_bucket)
    path = f"{alice.id}/j/keep.jpg"
    files.upload(path, b"original", JPEG)
    with pytest.raises(StorageApiError) as caught:
        files.upload(path, b"replaced", {"content-type": "image/jpeg", "upsert": "true"})
    assert caught.value.status == "403"
    assert files.download(path) == b"original"


def test_update_replaces_an_existing_object_and_404s_a_missing_one(service: StorageUser) -> None:
    files = service.storage.from_(BUCKET)
    path = f"update-{uuid.uuid4().hex[:8]}/a.jpg"
    files.upload(path, b"v1", JPEG)
    files.update(path, b"v2", {"content-type": "image/png"})
    assert files.download(path) == b"v2"
    assert files.info(path)["content_type"] == "image/png"
    with pytest.raises(StorageApiError) as caught:
        files.update(f"{path}.missing", b"x", JPEG)
    assert (caught.value.status, caught.value.code) == ("404", "not_found")


def test_file_larger_than_the_bucket_limit_is_413(
    service: StorageUser, scratch_bucket: str
) -> None:
    files = service.storage.from_(scratch_bucket)
    files.upload("ok.jpg", photo(1024), JPEG)
    with pytest.raises(StorageApiError) as caught:
        files.upload("big.jpg", photo(1025), JPEG)
    err = caught.value
    assert (err.status, err.code) == ("413", "Payload too large")
    assert err.message == "The object exceeded the maximum allowed size"
    assert files.exists("big.jpg") is False


def test_training_photos_bucket_limit_is_15_mib(service: StorageUser) -> None:
    files = service.storage.from_(BUCKET)
    with pytest.raises(StorageApiError) as caught:
        files.upload(f"big-{uuid.uuid4().hex[:8]}/a.jpg", photo(15 * 1024 * 1024 + 1), JPEG)
    assert caught.value.status == "413"


def test_missing_object_and_missing_bucket_are_404(alice: StorageUser) -> None:
    with pytest.raises(StorageApiError) as caught:
        alice.storage.from_(BUCKET).download(f"{alice.id}/nothing.jpg")
    assert (caught.value.status, caught.value.code) == ("404", "not_found")
    assert caught.value.message == "Object not found"
    with pytest.raises(StorageApiError) as caught:
        alice.storage.from_("no-such-bucket").upload(f"{alice.id}/a.jpg", photo(), JPEG)
    assert (caught.value.status, caught.value.code) == ("404", "Bucket not found")


def test_raw_body_upload_and_chunked_transfer(
    gateway: SupabaseGateway, service: StorageUser
) -> None:
    base = f"{gateway.url}/storage/v1/object/{BUCKET}/raw-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {service.token}"}
    data = photo(300_000)
    response = httpx.post(
        f"{base}/a.png", headers={**headers, "Content-Type": "image/png"}, content=data
    )
    assert response.status_code == 200, response.text
    assert response.json()["Key"].endswith("/a.png") and response.json()["Id"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for start in range(0, len(data), 65_536):
            yield data[start : start + 65_536]

    response = httpx.post(
        f"{base}/b.jpg", headers={**headers, "Content-Type": "image/jpeg"}, content=chunks()
    )
    assert response.status_code == 200, response.text
    got = httpx.get(f"{base}/b.jpg", headers=headers)
    assert got.content == data
    assert got.headers["content-type"] == "image/jpeg"


# --------------------------------------------------------------------------- RLS


def test_storage_rls_confines_a_user_to_reading_their_own_folder(
    alice: StorageUser, bob: StorageUser, service: StorageUser
) -> None:
    a_files, b_files = alice.storage.from_(BUCKET), bob.storage.from_(BUCKET)
    service.storage.from_(BUCKET).upload(f"{alice.id}/j/a.jpg", b"alice", JPEG)
    b_path = f"{bob.id}/j/b.jpg"
    service.storage.from_(BUCKET).upload(b_path, b"bob", JPEG)

    # The training bucket takes no user writes at all (issue 14), not even in one's own folder.
    for target in (f"{bob.id}/j/evil.jpg", f"{alice.id}/j/own.jpg"):
        with pytest.raises(StorageApiError) as caught:
            a_files.upload(target, b"x", JPEG)
        err = caught.value
        assert (err.status, err.code) == ("403", "Unauthorized")
        assert err.message == "new row violates row-level security policy"
    assert a_files.remove([f"{alice.id}/j/a.jpg"]) == []
    assert a_files.download(f"{alice.id}/j/a.jpg") == b"alice"

    with pytest.raises(StorageApiError) as caught:
        a_files.download(b_path)
    assert (caught.value.status, caught.value.code) == ("404", "not_found")
    assert a_files.list(f"{bob.id}/j") == []
    assert a_files.list("") == [
        {
            "name": alice.id,
            "id": None,
            "updated_at": None,
            "created_at": None,
            "last_accessed_at": None,
            "metadata": None,
        }
    ]
    assert a_files.remove([b_path]) == []
    assert b_files.download(b_path) == b"bob"

    # The service role bypasses RLS.
    everyone = {e["name"] for e in service.storage.from_(BUCKET).list("")}
    assert {alice.id, bob.id} <= everyone
    assert service.storage.from_(BUCKET).download(b_path) == b"bob"
    # A user only sees buckets a policy shows them (none here).
    assert alice.storage.list_buckets() == []


def test_remove_returns_deleted_rows_and_skips_missing(
    alice: StorageUser, user_bucket: str
) -> None:
    files = alice.storage.from_(user_bucket)
    path = f"{alice.id}/j/gone.jpg"
    files.upload(path, photo(), JPEG)
    removed = files.remove([path, f"{alice.id}/j/never-existed.jpg"])
    assert [r["name"] for r in removed] == [path]
    assert removed[0]["bucket_id"] == user_bucket and removed[0]["id"]
    assert files.exists(path) is False
    assert files.remove([path]) == []


def test_owner_columns_are_set_from_the_token(
    alice: StorageUser, pg: LocalPostgres, gateway: SupabaseGateway, user_bucket: str
) -> None:
    import psycopg

    path = f"{alice.id}/j/owned.jpg"
    alice.storage.from_(user_bucket).upload(path, photo(), JPEG)
    with psycopg.connect(pg.dsn()) as conn:
        row = conn.execute(
            "select owner::text, owner_id, metadata->>'mimetype', version"
            " from storage.objects where bucket_id = %s and name = %s",
            (user_bucket, path),
        ).fetchone()
    assert row is not None
    assert row[:3] == (alice.id, alice.id, "image/jpeg")
    blob = gateway.storage.object_file(user_bucket, path)
    assert blob is not None and blob.name == row[3] and blob.is_file()


# --------------------------------------------------------------------------- signed URLs


def test_signed_download_url_works_without_headers_and_expires(
    clean_gateway: SupabaseGateway, alice: StorageUser, bob: StorageUser, service: StorageUser
) -> None:
    files = alice.storage.from_(BUCKET)
    path = f"{alice.id}/j/signed.jpg"
    service.storage.from_(BUCKET).upload(path, b"signed bytes", JPEG)

    signed = files.create_signed_url(path, 60)["signedURL"]
    assert signed is not None
    assert signed.startswith(f"{clean_gateway.url}/storage/v1/object/sign/{BUCKET}/{path}?token=")
    token = signed.split("token=", 1)[1]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["url"] == f"{BUCKET}/{path}" and claims["exp"] - claims["iat"] == 60
    assert claims["scope"] == "download"
    assert httpx.get(signed).content == b"signed bytes"

    # Someone else's object cannot be signed (RLS: it does not exist for them).
    with pytest.raises(StorageApiError) as caught:
        bob.storage.from_(BUCKET).create_signed_url(path, 60)
    assert caught.value.status == "404"

    tampered = signed.replace("signed.jpg", "other.jpg")
    response = httpx.get(tampered)
    assert response.status_code == 400
    assert raw_error(response)["error"] == "InvalidSignature"

    clean_gateway.storage.clock = lambda: time.time() + 120
    response = httpx.get(signed)
    assert response.status_code == 400
    assert raw_error(response) == {
        "statusCode": "400",
        "code": "InvalidJWT",
        "error": "InvalidJWT",
        "message": "jwt expired",
    }


def test_create_signed_urls_reports_missing_paths(alice: StorageUser, service: StorageUser) -> None:
    files = alice.storage.from_(BUCKET)
    path = f"{alice.id}/j/many.jpg"
    service.storage.from_(BUCKET).upload(path, photo(), JPEG)
    result = files.create_signed_urls([path, f"{alice.id}/j/nope.jpg"], 60)
    assert result[0]["error"] is None and result[0]["signedURL"]
    assert result[1]["signedURL"] is None and result[1]["error"]


def test_signed_upload_url_flow(
    clean_gateway: SupabaseGateway, service: StorageUser, alice: StorageUser
) -> None:
    path = f"{alice.id}/job2/photo.jpg"
    signed = service.storage.from_(BUCKET).create_signed_upload_url(path)
    assert signed["path"] == path
    claims = jwt.decode(signed["token"], options={"verify_signature": False})
    assert claims["url"] == f"{BUCKET}/{path}" and claims["upsert"] is False
    assert claims["scope"] == "upload" and "owner" not in claims  # the service role has no sub
    assert claims["exp"] - claims["iat"] == 7200  # hosted Supabase's documented 2 h

    # The browser needs no token of its own: the signed URL is the credential.
    response = httpx.put(
        signed["signed_url"], files={"file": ("photo.jpg", b"direct", "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["Key"] == f"{BUCKET}/{path}"
    assert alice.storage.from_(BUCKET).download(path) == b"direct"

    # upsert is false in the token: the same URL cannot overwrite.
    with pytest.raises(StorageApiError) as caught:
        service.storage.from_(BUCKET).upload_to_signed_url(
            path, signed["token"], b"again", SIGNED_JPEG
        )
    assert caught.value.status == "409"
    # ... and a new signed URL for an existing path needs upsert.
    with pytest.raises(StorageApiError) as caught:
        service.storage.from_(BUCKET).create_signed_upload_url(path)
    assert caught.value.status == "409"
    again = service.storage.from_(BUCKET).create_signed_upload_url(
        path, CreateSignedUploadUrlOptions(upsert="true")
    )
    result = service.storage.from_(BUCKET).upload_to_signed_url(
        path, again["token"], b"v2", SIGNED_JPEG
    )
    assert result.full_path == f"{BUCKET}/{path}"
    assert alice.storage.from_(BUCKET).download(path) == b"v2"


def test_signed_upload_put_is_authorised_by_its_token_not_by_user_policies(
    service: StorageUser, alice: StorageUser
) -> None:
    # Creating the URL needs the creator's INSERT permission (the real server's canUpload) ...
    files = alice.storage.from_(BUCKET)
    with pytest.raises(StorageApiError) as caught:
        files.create_signed_upload_url(f"{alice.id}/j/upload/01")
    assert caught.value.status == "403"
    # ... the PUT does not: the server writes as its superuser, where no user may insert.
    path = f"{alice.id}/j/upload/01"
    signed = service.storage.from_(BUCKET).create_signed_upload_url(path)
    response = httpx.put(
        signed["signed_url"], content=b"from the browser", headers={"content-type": "image/jpeg"}
    )
    assert response.status_code == 200, response.text
    assert files.download(path) == b"from the browser"
    with pytest.raises(StorageApiError) as caught:
        files.upload(f"{alice.id}/j/upload/02", b"direct", JPEG)
    assert caught.value.status == "403"


def test_signed_url_tokens_are_scoped_to_download_or_upload(
    gateway: SupabaseGateway, service: StorageUser, jwt_secret: str
) -> None:
    files = service.storage.from_(BUCKET)
    folder = f"scope-{uuid.uuid4().hex[:8]}"
    files.upload(f"{folder}/a.jpg", b"original", JPEG)
    base = f"{gateway.url}/storage/v1/object"

    # A download token replayed against the upload route, and an upload token for a download.
    download = files.create_signed_url(f"{folder}/a.jpg", 60)["signedURL"]
    assert download is not None
    response = httpx.put(
        f"{base}/upload/sign/{BUCKET}/{folder}/a.jpg?token={download.split('token=', 1)[1]}",
        content=b"replaced",
        headers={"content-type": "image/jpeg", "x-upsert": "true"},
    )
    assert response.status_code == 400
    assert raw_error(response) == {
        "statusCode": "400",
        "code": "InvalidSignature",
        "error": "InvalidSignature",
        "message": "Token is not scoped for upload",
    }
    assert files.download(f"{folder}/a.jpg") == b"original"
    upload = files.create_signed_upload_url(f"{folder}/b.jpg")
    files.upload_to_signed_url(f"{folder}/b.jpg", upload["token"], b"b", SIGNED_JPEG)
    response = httpx.get(f"{base}/sign/{BUCKET}/{folder}/b.jpg?token={upload['token']}")
    assert response.status_code == 400
    assert raw_error(response)["message"] == "Token is not scoped for download"

    # Tokens from before scopes existed: `upsert` marks an upload token, its absence a download.
    now = int(time.time())
    legacy = {"url": f"{BUCKET}/{folder}/c.jpg", "iat": now, "exp": now + 60}
    upload_token = jwt.encode({**legacy, "upsert": False}, jwt_secret, "HS256")
    files.upload_to_signed_url(f"{folder}/c.jpg", upload_token, b"c", SIGNED_JPEG)
    download_token = jwt.encode(legacy, jwt_secret, "HS256")
    assert httpx.get(f"{base}/sign/{BUCKET}/{folder}/c.jpg?token={download_token}").content == b"c"


def test_signed_upload_url_respects_rls_mime_and_expiry(
    clean_gateway: SupabaseGateway, alice: StorageUser, bob: StorageUser, user_bucket: str
) -> None:
    a_files = alice.storage.from_(user_bucket)
    with pytest.raises(StorageApiError) as caught:
        a_files.create_signed_upload_url(f"{bob.id}/j/x.jpg")
    assert caught.value.status == "403"

    path = f"{alice.id}/j/via-signed.jpg"
    signed = a_files.create_signed_upload_url(path)
    assert jwt.decode(signed["token"], options={"verify_signature": False})["owner"] == alice.id
    with pytest.raises(StorageApiError) as caught:
        a_files.upload_to_signed_url(path, signed["token"], b"text")  # default text/plain
    assert caught.value.status == "415"

    clean_gateway.storage.upload_url_ttl_seconds = 30
    short = a_files.create_signed_upload_url(f"{alice.id}/j/late.jpg")
    clean_gateway.storage.clock = lambda: time.time() + 60
    with pytest.raises(StorageApiError) as caught:
        a_files.upload_to_signed_url(f"{alice.id}/j/late.jpg", short["token"], b"x", SIGNED_JPEG)
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        "400",
        "InvalidJWT",
        "jwt expired",
    )


# --------------------------------------------------------------------------- move, copy, buckets


def test_copy_and_move(service: StorageUser) -> None:
    files = service.storage.from_(BUCKET)
    folder = f"mv-{uuid.uuid4().hex[:8]}"
    files.upload(f"{folder}/a.jpg", b"payload", JPEG)
    copied = files.copy(f"{folder}/a.jpg", f"{folder}/b.jpg")
    assert copied["Key"] == f"{BUCKET}/{folder}/b.jpg"
    assert files.move(f"{folder}/b.jpg", f"{folder}/c.jpg") == {"message": "Successfully moved"}
    assert [e["name"] for e in files.list(folder)] == ["a.jpg", "c.jpg"]
    assert files.download(f"{folder}/c.jpg") == b"payload"
    with pytest.raises(StorageApiError) as caught:
        files.move(f"{folder}/a.jpg", f"{folder}/c.jpg")
    assert caught.value.status == "409"


def test_bucket_endpoints(service: StorageUser, scratch_bucket: str) -> None:
    storage = service.storage
    photos = storage.get_bucket(BUCKET)
    assert photos.public is False
    assert photos.file_size_limit == 15 * 1024 * 1024
    assert photos.allowed_mime_types is not None and "image/jpeg" in photos.allowed_mime_types
    assert {b.id for b in storage.list_buckets()} >= {BUCKET, scratch_bucket}

    with pytest.raises(StorageApiError) as caught:
        storage.create_bucket(scratch_bucket)
    assert (caught.value.status, caught.value.code) == ("409", "Duplicate")
    with pytest.raises(StorageApiError) as caught:
        storage.get_bucket("no-such-bucket")
    assert (caught.value.status, caught.value.code) == ("404", "Bucket not found")

    storage.update_bucket(scratch_bucket, {"public": True, "file_size_limit": 2048})
    assert storage.get_bucket(scratch_bucket).file_size_limit == 2048
    storage.from_(scratch_bucket).upload("x.jpg", photo(), JPEG)
    with pytest.raises(StorageApiError) as caught:
        storage.delete_bucket(scratch_bucket)
    assert caught.value.status == "409"
    storage.empty_bucket(scratch_bucket)
    assert storage.from_(scratch_bucket).list("") == []


# --------------------------------------------------------------------------- auth


def test_missing_or_bad_jwt_is_403_in_a_400(gateway: SupabaseGateway, jwt_secret: str) -> None:
    url = f"{gateway.url}/storage/v1/object/{BUCKET}/x/a.jpg"
    cases = {
        "": "jwt must be provided",
        "Bearer not-a-jwt": "jwt malformed",
        f"Bearer {service_role_key('another-secret-that-is-long-enough!!')}": "invalid signature",
        f"Bearer {mint_token(jwt_secret, role='authenticated', ttl_seconds=-10)}": "jwt expired",
    }
    for authorization, message in cases.items():
        headers = {"Authorization": authorization} if authorization else {}
        response = httpx.get(url, headers=headers)
        assert response.status_code == 400
        assert raw_error(response) == {
            "statusCode": "403",
            "code": "AccessDenied",
            "error": "Unauthorized",
            "message": message,
        }


def test_asymmetric_user_tokens_verify_against_the_jwks(
    clean_gateway: SupabaseGateway, alice: StorageUser, user_bucket: str
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP256R1())
    public_jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    clean_gateway.jwks = {"keys": [{**public_jwk, "kid": "k1", "alg": "ES256", "use": "sig"}]}
    served = httpx.get(f"{clean_gateway.url}/auth/v1/.well-known/jwks.json").json()
    assert served["keys"][0]["kid"] == "k1"

    now = int(time.time())
    claims = {"sub": alice.id, "role": "authenticated", "aud": "authenticated", "exp": now + 60}
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
    url = f"{clean_gateway.url}/storage/v1/object/{user_bucket}/{alice.id}/es/a.jpg"
    upload = httpx.post(
        url,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
        content=b"es256",
    )
    assert upload.status_code == 200, upload.text
    assert alice.storage.from_(user_bucket).download(f"{alice.id}/es/a.jpg") == b"es256"

    forged = jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "k1"}
    )
    response = httpx.get(url, headers={"Authorization": f"Bearer {forged}"})
    assert raw_error(response)["message"] == "invalid signature"


def test_supabase_client_end_to_end(
    gateway: SupabaseGateway, pg: LocalPostgres, jwt_secret: str, http: httpx.Client
) -> None:
    user_id = create_user(pg.dsn())
    client = create_client(
        gateway.url,
        service_role_key(jwt_secret),
        options=ClientOptions(httpx_client=http),
    )
    path = f"{user_id}/job/a.webp"
    files = client.storage.from_(BUCKET)
    files.upload(path, b"webp", {"content-type": "image/webp"})
    assert files.download(path) == b"webp"
    signed = files.create_signed_upload_url(f"{user_id}/job/b.webp")
    files.upload_to_signed_url(
        signed["path"], signed["token"], b"b", {"content-type": "image/webp"}
    )
    assert {e["name"] for e in files.list(f"{user_id}/job")} == {"a.webp", "b.webp"}


# --------------------------------------------------------------------------- gateway


def test_rest_is_proxied_to_postgrest(
    gateway: SupabaseGateway, pg: LocalPostgres, jwt_secret: str, http: httpx.Client
) -> None:
    user_id = create_user(pg.dsn())
    client = create_client(
        gateway.url,
        service_role_key(jwt_secret),
        options=ClientOptions(httpx_client=http),
    )
    inserted = (
        client.table("ai_training_jobs")
        .insert({"user_id": user_id, "furrsona_name": "Rex", "status": "uploading"})
        .execute()
    )
    job_id = cast(dict[str, Any], inserted.data[0])["id"]
    rows = (
        client.table("ai_training_jobs")
        .select("id,status", count=CountMethod.exact)
        .eq("user_id", user_id)
        .execute()
    )
    assert rows.data == [{"id": job_id, "status": "uploading"}]
    assert rows.count == 1  # from Content-Range, passed back by the gateway
    one = (
        client.table("ai_training_jobs").select("furrsona_name").eq("id", job_id).single().execute()
    )
    assert one.data == {"furrsona_name": "Rex"}
    updated = (
        client.table("ai_training_jobs")
        .update({"status": "pending", "progress": 20})
        .eq("id", job_id)
        .eq("status", "uploading")
        .execute()
    )
    assert cast(dict[str, Any], updated.data[0])["status"] == "pending"

    # Kong's key-auth in front of /rest/v1.
    response = httpx.get(f"{gateway.url}/rest/v1/ai_training_jobs")
    assert (response.status_code, response.json()) == (
        401,
        {"message": "No API key found in request"},
    )
    response = httpx.get(f"{gateway.url}/rest/v1/ai_training_jobs", headers={"apikey": "nope"})
    assert (response.status_code, response.json()) == (
        401,
        {"message": "Invalid authentication credentials"},
    )
    # The anon key reaches PostgREST as the anon role, which may not read jobs.
    response = httpx.get(
        f"{gateway.url}/rest/v1/ai_training_jobs", headers={"apikey": anon_key(jwt_secret)}
    )
    assert response.status_code == 401 and response.json()["code"] == "42501"


def test_jwks_and_unknown_routes(gateway: SupabaseGateway) -> None:
    response = httpx.get(f"{gateway.url}/auth/v1/.well-known/jwks.json")
    assert (response.status_code, response.json()) == (200, {"keys": []})
    response = httpx.get(f"{gateway.url}/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"message": "no Route matched with those values"}


# --------------------------------------------------------------------------- faults and counters


def test_status_fault_fires_the_given_number_of_times(
    clean_gateway: SupabaseGateway, service: StorageUser
) -> None:
    files = service.storage.from_(BUCKET)
    path = f"faults-{uuid.uuid4().hex[:8]}/a.jpg"
    clean_gateway.storage_faults.add(
        "POST",
        rf"/object/{BUCKET}/faults-",
        "status",
        times=2,
        status=503,
        headers={"Retry-After": "1"},
    )
    for _ in range(2):
        with pytest.raises(StorageApiError) as caught:
            files.upload(path, photo(), JPEG)
        assert caught.value.status == "503"
    files.upload(path, photo(), JPEG)
    prefix = f"/storage/v1/object/{BUCKET}/faults-"
    assert clean_gateway.counters.count("POST", prefix) == 3
    assert clean_gateway.counters.count("POST", prefix, status=503) == 2
    assert clean_gateway.storage_faults.active == []


def test_drop_and_slow_faults(clean_gateway: SupabaseGateway, service: StorageUser) -> None:
    files = service.storage.from_(BUCKET)
    folder = f"drop-{uuid.uuid4().hex[:8]}"
    clean_gateway.storage_faults.add("POST", rf"/{folder}/before\.jpg$", "drop")
    with pytest.raises(httpx.RemoteProtocolError):
        files.upload(f"{folder}/before.jpg", photo(), JPEG)
    assert files.exists(f"{folder}/before.jpg") is False

    # "after": the upload happened, only the answer was lost.
    clean_gateway.storage_faults.add("POST", rf"/{folder}/after\.jpg$", "drop", when="after")
    with pytest.raises(httpx.RemoteProtocolError):
        files.upload(f"{folder}/after.jpg", photo(), JPEG)
    assert files.exists(f"{folder}/after.jpg") is True

    clean_gateway.storage_faults.add("GET", r"/object/info/", "slow", seconds=0.3)
    started = time.monotonic()
    assert files.exists(f"{folder}/after.jpg") is True
    assert time.monotonic() - started >= 0.3

    clean_gateway.latency_seconds = 0.05
    started = time.monotonic()
    files.exists(f"{folder}/after.jpg")
    assert time.monotonic() - started >= 0.05
    by_prefix = clean_gateway.counters.by_prefix(depth=3)
    assert by_prefix[("GET", "/storage/v1/object")] == 4  # four exists() calls


def test_concurrent_uploads_from_many_threads(service: StorageUser) -> None:
    files = service.storage.from_(BUCKET)
    folder = f"threads-{uuid.uuid4().hex[:8]}"
    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            files.upload(f"{folder}/{i}.jpg", photo(50_000), JPEG)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(files.list(folder)) == 12


def test_json_bodies_are_validated(gateway: SupabaseGateway, service: StorageUser) -> None:
    response = httpx.post(
        f"{gateway.url}/storage/v1/object/list/{BUCKET}",
        headers={"Authorization": f"Bearer {service.token}", "Content-Type": "application/json"},
        content=json.dumps({"limit": 10}),
    )
    assert response.status_code == 400
    assert raw_error(response)["statusCode"] == "400"
