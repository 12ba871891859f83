"""The private bucket through the Storage API with user tokens (the real storage3 client, as the
browser's supabase-js would call it): a user only reads objects under their own first folder, and
writes nothing at all, not even there (issue 14: photos enter through the backend or a signed
upload URL it issued, and leave through the backend)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import httpx
import pytest
from storage3 import SyncStorageClient
from storage3._sync.file_api import SyncBucketProxy
from storage3.exceptions import StorageApiError
from storage3.types import FileOptions, UploadSignedUrlFileOptions

from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from devstack.tokens import anon_key
from tests.security.attacks import DECLARED_PHOTOS, UPLOAD
from tests.stack_fixtures import User, photo_files

BUCKET = "training-photos"


def storage_as(stack: LocalStack, token: str, http: httpx.Client) -> SyncStorageClient:
    # What supabase-py builds for a signed-in session: apikey = anon key, Authorization = token.
    return SyncStorageClient(
        f"{stack.supabase_url}/storage/v1/",
        headers={"apikey": anon_key(stack.jwt_secret), "Authorization": f"Bearer {token}"},
        http_client=http,
    )


@dataclass
class Photos:
    owner: User
    job: str
    paths: list[str]


@pytest.fixture
def photos(stack: LocalStack, http: httpx.Client, make_user: Callable[[], User]) -> Photos:
    """Photos stored by the real upload function (service role) under the owner's folder."""
    owner = make_user()
    response = http.post(
        stack.url(UPLOAD),
        headers=owner.headers,
        data={"fursonaName": "Ember", "customizationData": json.dumps({"type": "fox"})},
        files=photo_files(3),
    )
    assert response.status_code == 201, response.text
    job = response.json()
    return Photos(owner, job["jobId"], job["photoUrls"])


def _refused(call: Callable[[], object]) -> bool:
    """The Storage API said no (a 4xx, e.g. "Object not found" for a path the policies hide)."""
    with pytest.raises(StorageApiError) as refusal:
        call()
    return str(refusal.value.status) in ("400", "403", "404")


def test_the_owner_reads_their_own_photos(stack: LocalStack, http: httpx.Client, photos: Photos):
    # The control: the same client calls work for the folder's owner.
    own = storage_as(stack, photos.owner.token, http).from_(BUCKET)
    assert own.download(photos.paths[0])[:2] == b"\xff\xd8"
    names = {o["name"] for o in own.list(f"{photos.owner.id}/{photos.job}")}
    assert names == {"01.jpg", "02.jpg", "03.jpg"}


SWAPPED = make_photo(600, 600, seed=21, gps=True)  # an unchecked photo, GPS and all
JPEG: FileOptions = {"content-type": "image/jpeg"}
OWNER_WRITES: dict[str, Callable[[SyncBucketProxy, Photos], object]] = {
    "insert_into_the_job": lambda own, p: own.upload(f"{p.owner.id}/{p.job}/04.jpg", SWAPPED, JPEG),
    "insert_outside_any_job": lambda own, p: own.upload(f"{p.owner.id}/planted.jpg", SWAPPED, JPEG),
    "upsert_over_a_checked_photo": lambda own, p: own.upload(
        p.paths[0], SWAPPED, {**JPEG, "upsert": "true"}
    ),
    "update_a_checked_photo": lambda own, p: own.update(p.paths[0], SWAPPED, JPEG),
    "move_a_checked_photo": lambda own, p: own.move(p.paths[0], f"{p.owner.id}/{p.job}/09.jpg"),
    "copy_a_checked_photo": lambda own, p: own.copy(p.paths[0], f"{p.owner.id}/{p.job}/04.jpg"),
    "sign_an_upload_url_of_their_own": lambda own, p: own.create_signed_upload_url(
        f"{p.owner.id}/{p.job}/04.jpg"
    ),
}


@pytest.mark.parametrize("write", sorted(OWNER_WRITES))
def test_the_owner_cannot_write_into_their_own_folder(
    stack: LocalStack, http: httpx.Client, photos: Photos, write: str
):
    own = storage_as(stack, photos.owner.token, http).from_(BUCKET)
    before = {path: own.download(path) for path in photos.paths}
    assert _refused(partial(OWNER_WRITES[write], own, photos))
    assert {path: own.download(path) for path in photos.paths} == before
    assert {o["name"] for o in own.list(f"{photos.owner.id}/{photos.job}")} == {
        "01.jpg",
        "02.jpg",
        "03.jpg",
    }
    assert [o["name"] for o in own.list(photos.owner.id)] == [photos.job]


def test_the_owner_cannot_delete_their_own_photos(
    stack: LocalStack, http: httpx.Client, photos: Photos
):
    own = storage_as(stack, photos.owner.token, http).from_(BUCKET)
    before = {path: own.download(path) for path in photos.paths}
    assert own.remove(photos.paths) == []  # answers with what it removed: nothing
    assert {path: own.download(path) for path in photos.paths} == before


def test_another_user_cannot_read_or_list_the_photos(
    stack: LocalStack, http: httpx.Client, photos: Photos, user: User
):
    theirs = storage_as(stack, user.token, http).from_(BUCKET)
    for path in photos.paths:
        assert _refused(partial(theirs.download, path)), path
        assert _refused(partial(theirs.create_signed_url, path, 60)), path
        assert _refused(partial(theirs.info, path)), path
    assert theirs.list(f"{photos.owner.id}/{photos.job}") == []
    assert theirs.list(photos.owner.id) == []
    assert all(o["name"] != photos.owner.id for o in theirs.list(""))


def test_another_user_cannot_write_or_delete_in_the_owners_folder(
    stack: LocalStack, http: httpx.Client, photos: Photos, user: User
):
    theirs = storage_as(stack, user.token, http).from_(BUCKET)
    planted = f"{photos.owner.id}/{photos.job}/04.jpg"
    assert _refused(
        lambda: theirs.upload(planted, make_photo(600, 600, seed=7), {"content-type": "image/jpeg"})
    )
    assert _refused(
        lambda: theirs.update(
            photos.paths[0], make_photo(600, 600, seed=8), {"content-type": "image/jpeg"}
        )
    )
    assert _refused(lambda: theirs.move(photos.paths[0], f"{user.id}/stolen.jpg"))
    assert _refused(lambda: theirs.copy(photos.paths[0], f"{user.id}/stolen.jpg"))
    theirs.remove(photos.paths)  # answers with what it removed: nothing
    own = storage_as(stack, photos.owner.token, http).from_(BUCKET)
    names = {o["name"] for o in own.list(f"{photos.owner.id}/{photos.job}")}
    assert names == {"01.jpg", "02.jpg", "03.jpg"}
    assert theirs.list(user.id) == []


def test_the_anon_key_alone_reads_nothing(stack: LocalStack, http: httpx.Client, photos: Photos):
    anon = storage_as(stack, anon_key(stack.jwt_secret), http).from_(BUCKET)
    assert _refused(lambda: anon.download(photos.paths[0]))
    assert _refused(lambda: anon.create_signed_url(photos.paths[0], 60))
    assert anon.list(f"{photos.owner.id}/{photos.job}") == []


def test_a_signed_upload_token_writes_only_its_own_path(
    stack: LocalStack, http: httpx.Client, user: User, make_user: Callable[[], User]
):
    victim = make_user()
    created = http.post(
        stack.url(UPLOAD) + "uploads",
        headers=user.headers,
        json={"fursonaName": "Ember", "photos": DECLARED_PHOTOS},
    )
    assert created.status_code == 201, created.text
    target = created.json()["uploads"][0]
    assert target["path"].startswith(f"{user.id}/")
    bucket = storage_as(stack, user.token, http).from_(BUCKET)
    photo = make_photo(600, 600, seed=11)
    options: UploadSignedUrlFileOptions = {"content-type": "image/jpeg"}
    # The token is bound to its path: not another user's folder, not a sibling of its own.
    for elsewhere in (f"{victim.id}/{uuid.uuid4()}/upload/01", target["path"] + "-2"):
        with pytest.raises(StorageApiError):
            bucket.upload_to_signed_url(elsewhere, target["token"], photo, options)
    assert storage_as(stack, victim.token, http).from_(BUCKET).list(victim.id) == []
    # Control: the path it was issued for takes the photo.
    bucket.upload_to_signed_url(target["path"], target["token"], photo, options)
