"""Start checks what it zips (issue 14.2), end to end: whatever sits at a photo path when the
training starts, start answers a 4xx, the job fails at once with `photos_changed`, and nothing
reaches Replicate (no file, no training) — through both upload paths."""

from __future__ import annotations

import httpx
import pytest

from devstack.replicate_emulator import ReplicateEmulator
from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from supabase import Client
from tests.corpus.upload_paths import (
    BUCKET,
    FIELDS,
    complete_signed,
    create_signed,
    put_photo,
    service_client,
)
from tests.e2e.conftest import User, photo_files


@pytest.fixture(scope="module")
def sb(stack: LocalStack) -> Client:
    return service_client(stack)


def multipart_job(stack: LocalStack, http: httpx.Client, user: User) -> dict:
    response = http.post(
        stack.url("upload_training_photos"), headers=user.headers, data=FIELDS, files=photo_files(3)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def signed_job(stack: LocalStack, http: httpx.Client, user: User) -> dict:
    data = [make_photo(600, 600, seed=700 + i) for i in range(3)]
    declared = [
        {"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": len(d)}
        for i, d in enumerate(data)
    ]
    created = create_signed(stack, http, user, {**FIELDS, "photos": declared})
    assert created.status_code == 201, created.text
    for target, content in zip(created.json()["uploads"], data, strict=True):
        assert put_photo(http, target, content).status_code == 200
    completed = complete_signed(stack, http, user, created.json()["jobId"])
    assert completed.status_code == 200, completed.text
    return dict(completed.json())


@pytest.mark.parametrize("flow", [multipart_job, signed_job], ids=["multipart", "signed"])
@pytest.mark.parametrize(
    "replacement",
    [b"<html>not a photo</html>", make_photo(640, 640, seed=12345)],
    ids=["non-jpeg", "swapped-jpeg"],
)
def test_start_refuses_photos_that_changed_since_upload(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    sb: Client,
    flow,
    replacement: bytes,
) -> None:
    job = flow(stack, http, user)
    files_before = set(emulator.state.files)
    trainings_before = set(emulator.state.trainings)
    # The backend's own key stands in for anything that could write there (issue 14.1 closed
    # the owner's write policies; this is what start must survive all the same).
    sb.storage.from_(BUCKET).update(
        job["photoUrls"][1], replacement, {"content-type": "image/jpeg", "upsert": "true"}
    )
    response = http.post(
        stack.url("start_ai_training"), headers=user.headers, json={"jobId": job["jobId"]}
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "job_failed"
    assert "not the one we checked" in response.json()["error"]["message"]
    status = http.get(
        stack.url("check_training_status"), headers=user.headers, params={"jobId": job["jobId"]}
    ).json()
    assert status["status"] == "failed" and status["errorCode"] == "photos_changed"
    assert set(emulator.state.files) == files_before
    assert set(emulator.state.trainings) == trainings_before
