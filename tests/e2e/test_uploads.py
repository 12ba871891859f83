"""The signed direct-upload flow end to end: real HTTP to the local Function URLs, real PUTs of
the bytes to the Storage emulator's signed URLs (no credentials, as a browser sends them), the
handlers using the real `postgrest`/`storage3` and `replicate` bootstrap.

Hostile inputs through both upload paths are in tests/corpus/.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
import replicate
from PIL import Image

from devstack.function_urls import FunctionUrls
from devstack.replicate_emulator import ReplicateEmulator
from devstack.sample_photos import make_large_photo, make_photo
from devstack.stack import LocalStack
from shared import bootstrap
from supabase import Client
from tests.corpus.upload_paths import (
    FIELDS,
    complete_signed,
    create_signed,
    nothing_left,
    objects_under,
    put_photo,
    rows_of,
    service_client,
)
from tests.e2e.conftest import User, wait_for

EIGHT_MB = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def sb(stack: LocalStack) -> Client:
    return service_client(stack)


@pytest.fixture(scope="module")
def large_photos() -> list[tuple[str, str, bytes]]:
    """Six distinct ~8 MB photos as phones take them: five JPEGs and one HEIC."""
    photos = [
        (f"IMG_{i:04d}.JPG", "image/jpeg", make_large_photo(EIGHT_MB, seed=400 + i))
        for i in range(5)
    ]
    heic = make_large_photo(EIGHT_MB, seed=405, fmt="HEIF")
    return [*photos[:2], ("IMG_0005.HEIC", "image/heic", heic), *photos[2:]]


def small_photos(count: int = 3, seed: int = 500) -> list[bytes]:
    return [make_photo(600, 600, seed=seed + i) for i in range(count)]


def declare(data: list[bytes]) -> dict[str, Any]:
    photos = [
        {"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": len(d)}
        for i, d in enumerate(data)
    ]
    return {**FIELDS, "photos": photos}


def created_job(stack: LocalStack, http: httpx.Client, user: User, data: list[bytes]) -> dict:
    response = create_signed(stack, http, user, declare(data))
    assert response.status_code == 201, response.text
    return dict(response.json())


def put_all(http: httpx.Client, job: dict, data: list[bytes]) -> None:
    for target, content in zip(job["uploads"], data, strict=False):
        response = put_photo(http, target, content)
        assert response.status_code == 200, response.text


def move_window_to_the_past(db: psycopg.Connection, job_id: str) -> None:
    db.execute(
        "update ai_training_jobs set upload_expires_at = now() - interval '1 hour' where id = %s",
        (job_id,),
    )


def test_six_8_mb_photos_one_heic_upload_directly_and_train_to_completion(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    sb: Client,
    large_photos: list[tuple[str, str, bytes]],
) -> None:
    body = {
        **FIELDS,
        "photos": [
            {"filename": name, "contentType": kind, "size": len(data)}
            for name, kind, data in large_photos
        ],
    }
    response = create_signed(stack, http, user, body)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "uploading" and job["progress"] == 0 and len(job["uploads"]) == 6
    folder = f"{user.id}/{job['jobId']}"
    for index, target in enumerate(job["uploads"], start=1):
        # What supabase's createSignedUploadUrl gives: an absolute URL on the project.
        assert target["url"].startswith(f"{stack.supabase_url}/storage/v1/object/upload/sign/")
        assert target["method"] == "PUT" and target["token"] in target["url"]
        assert target["path"] == f"{folder}/upload/0{index}"
        assert target["expiresAt"] == job["expiresAt"]
    assert job["uploads"][2]["contentType"] == "image/heic"

    # 48 MB straight to Storage: far past what one Function URL request can carry.
    put_all(http, job, [data for _, _, data in large_photos])

    done = complete_signed(stack, http, user, job["jobId"])
    assert done.status_code == 200, done.text
    completed = done.json()
    names = [f"0{i}.jpg" for i in range(1, 7)]
    assert completed["status"] == "pending" and completed["progress"] == 20
    assert completed["photoUrls"] == [f"{folder}/{n}" for n in names]
    assert sorted(objects_under(sb, folder)) == names  # the raw uploads are gone

    started = http.post(
        stack.url("start_ai_training"), headers=user.headers, json={"jobId": job["jobId"]}
    )
    assert started.status_code == 202, started.text

    def finished() -> dict | None:
        current = http.get(
            stack.url("check_training_status"), headers=user.headers, params={"jobId": job["jobId"]}
        ).json()
        return current if current["status"] in ("completed", "failed") else None

    final = wait_for(finished, timeout=60, interval=0.2)
    assert final["status"] == "completed" and final["progress"] == 100, final

    # The zip Replicate received: six JPEG entries, none carrying EXIF.
    client = replicate.Client(api_token=stack.replicate_token, base_url=emulator.base_url)
    training = client.trainings.get(started.json()["trainingId"])
    assert training.input is not None
    file_id = training.input["input_images"].rstrip("/").rsplit("/", 1)[-1]
    raw = client._request("GET", f"/v1/files/{file_id}/download").content
    archive = zipfile.ZipFile(io.BytesIO(raw))
    assert archive.namelist() == names
    for name in names:
        data = archive.read(name)
        img = Image.open(io.BytesIO(data))
        assert img.format == "JPEG" and img.mode == "RGB" and max(img.size) == 2048
        assert not img.getexif() and b"Exif\x00\x00" not in data


def test_complete_is_idempotent_and_only_for_the_owner(
    stack: LocalStack, http: httpx.Client, make_user: Callable[[], User], sb: Client
) -> None:
    owner, stranger = make_user(), make_user()
    data = small_photos()
    job = created_job(stack, http, owner, data)
    put_all(http, job, data)
    response = complete_signed(stack, http, stranger, job["jobId"])
    assert response.status_code == 404 and response.json()["error"]["code"] == "job_not_found"
    first = complete_signed(stack, http, owner, job["jobId"])
    again = complete_signed(stack, http, owner, job["jobId"])
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["status"] == "pending"
    response = complete_signed(stack, http, stranger, job["jobId"])
    assert response.status_code == 404
    assert [r["status"] for r in rows_of(sb, owner.id)] == ["pending"]


def test_a_missing_photo_is_named_and_the_job_waits_for_it(
    stack: LocalStack, http: httpx.Client, user: User, sb: Client
) -> None:
    data = small_photos(seed=510)
    job = created_job(stack, http, user, data)
    put_all(http, job, data[:1])
    response = complete_signed(stack, http, user, job["jobId"])
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "upload_incomplete"
    assert error["message"].startswith("Photo 2 and photo 3 have not been uploaded yet")
    assert [r["status"] for r in rows_of(sb, user.id)] == ["uploading"]

    put_all(http, job, data)  # the first again (the URL allows a retry), then the others
    response = complete_signed(stack, http, user, job["jobId"])
    assert response.status_code == 200 and response.json()["status"] == "pending"


def test_storage_refuses_a_photo_over_the_bucket_limit(
    stack: LocalStack, http: httpx.Client, user: User, sb: Client
) -> None:
    data = small_photos(seed=520)
    job = created_job(stack, http, user, data)  # declared small, then 16 MB sent
    response = put_photo(http, job["uploads"][0], b"\xff\xd8\xff" + bytes(16 * 1024 * 1024))
    assert response.status_code == 400 and response.json()["statusCode"] == "413"
    response = complete_signed(stack, http, user, job["jobId"])
    assert response.status_code == 409 and response.json()["error"]["code"] == "upload_incomplete"


def test_a_token_opens_only_its_own_path(
    stack: LocalStack, http: httpx.Client, user: User, sb: Client
) -> None:
    data = small_photos(seed=530)
    job = created_job(stack, http, user, data)
    first, second = job["uploads"][:2]
    forged = {**second, "url": second["url"].split("?")[0] + "?token=" + first["token"]}
    response = put_photo(http, forged, data[1])
    assert response.status_code == 400 and response.json()["error"] == "InvalidSignature"
    assert objects_under(sb, f"{user.id}/{job['jobId']}") == []


def test_complete_after_the_window_fails_the_job_and_removes_its_photos(
    stack: LocalStack, http: httpx.Client, user: User, sb: Client, db: psycopg.Connection
) -> None:
    data = small_photos(seed=540)
    job = created_job(stack, http, user, data)
    put_all(http, job, data)
    move_window_to_the_past(db, job["jobId"])
    response = complete_signed(stack, http, user, job["jobId"])
    assert response.status_code == 409 and response.json()["error"]["code"] == "upload_expired"
    [row] = rows_of(sb, user.id)
    assert row["status"] == "failed" and "expired" in row["error_message"]
    assert objects_under(sb, user.id) == []


def test_the_sweep_fails_uploads_left_past_their_window(
    stack: LocalStack,
    http: httpx.Client,
    make_user: Callable[[], User],
    sb: Client,
    db: psycopg.Connection,
    functions: FunctionUrls,
) -> None:
    late, waiting = make_user(), make_user()
    data = small_photos(seed=550)
    late_job = created_job(stack, http, late, data)
    put_all(http, late_job, data[:2])
    move_window_to_the_past(db, late_job["jobId"])
    waiting_job = created_job(stack, http, waiting, data)
    put_all(http, waiting_job, data[:1])

    report = functions.fire_schedule()
    assert report["uploads"]["expired"] >= 1 and report["uploads"]["errors"] == 0
    [row] = rows_of(sb, late.id)
    assert row["status"] == "failed" and row["error_message"]
    assert objects_under(sb, late.id) == []
    # A job still inside its window is left alone.
    assert [r["status"] for r in rows_of(sb, waiting.id)] == ["uploading"]
    assert objects_under(sb, f"{waiting.id}/{waiting_job['jobId']}/upload") == ["01"]

    # A bad photo at complete removes the job and every object, raw and normalised alike.
    put_all(http, waiting_job, [data[0], data[1], b"%PDF-1.7 not a photo"])
    response = complete_signed(stack, http, waiting, waiting_job["jobId"])
    assert response.status_code == 415 and response.json()["error"]["code"] == "not_an_image"
    assert nothing_left(sb, waiting.id)


def test_a_late_put_through_a_still_valid_url_stays_findable(
    stack: LocalStack, http: httpx.Client, user: User
) -> None:
    """Storage cannot revoke an upload token: a PUT after complete lands under `upload/`. The
    job's listing (what every clean-up removes) descends into sub-folders, so it is found."""
    data = small_photos(seed=560)
    job = created_job(stack, http, user, data)
    put_all(http, job, data)
    assert complete_signed(stack, http, user, job["jobId"]).status_code == 200
    assert put_photo(http, job["uploads"][0], data[0]).status_code == 200

    folder = f"{user.id}/{job['jobId']}"
    expected = [f"{folder}/0{i}.jpg" for i in (1, 2, 3)] + [f"{folder}/upload/01"]
    assert bootstrap.deps().photos.list_names(folder) == expected
