"""The pipeline end to end: real HTTP to the local Function URLs, the handlers using the real
`postgrest`/`storage3` (supabase-py) and `replicate` clients against PostgREST and the emulators."""

from __future__ import annotations

import io
import json
import threading
import uuid
import zipfile

import httpx
import replicate

from devstack.function_urls import FunctionUrls
from devstack.replicate_emulator import ReplicateEmulator
from devstack.stack import LocalStack
from supabase import ClientOptions, create_client
from tests.e2e.conftest import User, photo_files, wait_for

CREATE_ROUTE = "/v1/models/{owner}/{name}/versions/{version}/trainings"


def _service_client(stack: LocalStack):
    return create_client(
        stack.supabase_url,
        stack.service_role_key,
        options=ClientOptions(httpx_client=httpx.Client(http2=False)),
    )


def upload(stack: LocalStack, http: httpx.Client, user: User, count: int = 3) -> dict:
    response = http.post(
        stack.url("upload_training_photos"),
        headers=user.headers,
        data={
            "fursonaName": "Ember",
            "customizationData": json.dumps({"type": "fox", "colors": ["red"]}),
        },
        files=photo_files(count),
    )
    assert response.status_code == 201, response.text
    return response.json()


def start(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> httpx.Response:
    return http.post(stack.url("start_ai_training"), headers=user.headers, json={"jobId": job_id})


def status(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> dict:
    response = http.get(
        stack.url("check_training_status"), headers=user.headers, params={"jobId": job_id}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_photos_to_trained_model(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
):
    job = upload(stack, http, user, count=4)
    assert job["status"] == "pending" and job["progress"] == 20
    assert job["photoUrls"] == [f"{user.id}/{job['jobId']}/0{i}.jpg" for i in range(1, 5)]

    sb = _service_client(stack)
    listed = sb.storage.from_("training-photos").list(f"{user.id}/{job['jobId']}")
    assert sorted(o["name"] for o in listed) == ["01.jpg", "02.jpg", "03.jpg", "04.jpg"]

    response = start(stack, http, user, job["jobId"])
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["status"] == "training" and started["progress"] == 30 and started["trainingId"]

    # The zip Replicate received holds the normalised photos, stored without compression.
    client = replicate.Client(api_token=stack.replicate_token, base_url=emulator.base_url)
    training = client.trainings.get(started["trainingId"])
    assert training.input is not None
    file_id = training.input["input_images"].rstrip("/").rsplit("/", 1)[-1]
    raw = client._request("GET", f"/v1/files/{file_id}/download").content
    entries = zipfile.ZipFile(io.BytesIO(raw)).infolist()
    assert [e.filename for e in entries] == ["01.jpg", "02.jpg", "03.jpg", "04.jpg"]
    assert {e.compress_type for e in entries} == {zipfile.ZIP_STORED}

    seen = []

    def done():
        current = status(stack, http, user, job["jobId"])
        seen.append(current["progress"])
        return current if current["status"] in ("completed", "failed") else None

    final = wait_for(done, timeout=30, interval=0.2)
    assert final["status"] == "completed", final
    assert final["progress"] == 100 and final["errorMessage"] is None
    owner_name, version = final["modelVersion"].split(":")
    assert owner_name == f"{emulator.owner}/flurrty-twins" and len(version) == 64
    assert seen == sorted(seen)  # progress never went down

    row = sb.table("ai_training_jobs").select("*").eq("id", job["jobId"]).single().execute().data
    assert (
        row["status"] == "completed"
        and row["completed_at"]
        and row["replicate_model_version"] == final["modelVersion"]
    )


def test_twenty_concurrent_starts_create_one_training(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
):
    job = upload(stack, http, user)
    before = emulator.count("POST", CREATE_ROUTE)
    responses: list[httpx.Response] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def go():
        barrier.wait()
        try:
            with httpx.Client(timeout=60) as own:
                responses.append(start(stack, own, user, job["jobId"]))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r.status_code for r in responses] == [202] * 20
    assert {r.json()["status"] for r in responses} == {"training"}
    assert emulator.count("POST", CREATE_ROUTE) - before == 1
    ids = {r.json()["trainingId"] for r in responses} - {None}
    assert len(ids) == 1


def test_a_trainer_failure_fails_the_job_with_its_message(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
):
    emulator.next_training_outcome("failed", error="CUDA out of memory while training")
    job = upload(stack, http, user)
    assert start(stack, http, user, job["jobId"]).status_code == 202
    final = wait_for(
        lambda: (s := status(stack, http, user, job["jobId"]))["status"] == "failed" and s,
        timeout=30,
    )
    assert "CUDA out of memory while training" in final["errorMessage"]
    assert final["modelVersion"] is None


def test_a_cancel_on_replicate_fails_the_job(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
):
    job = upload(stack, http, user)
    training_id = start(stack, http, user, job["jobId"]).json()["trainingId"]
    client = replicate.Client(api_token=stack.replicate_token, base_url=emulator.base_url)
    assert client.trainings.cancel(training_id).status == "canceled"
    final = wait_for(
        lambda: (s := status(stack, http, user, job["jobId"]))["status"] == "failed" and s,
        timeout=30,
    )
    assert "canceled" in final["errorMessage"]


def test_the_sweep_moves_jobs_nobody_is_watching(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    functions: FunctionUrls,
):
    emulator.webhooks_enabled = False  # nobody polls and no webhook arrives
    try:
        job = upload(stack, http, user)
        training_id = start(stack, http, user, job["jobId"]).json()["trainingId"]
        emulator.finish_now(training_id, outcome="succeeded")
        report = functions.fire_schedule()
        assert report["trainings"]["errors"] == 0 and report["trainings"]["checked"] >= 1
    finally:
        emulator.webhooks_enabled = True
    sb = _service_client(stack)
    row = (
        sb.table("ai_training_jobs")
        .select("status,progress")
        .eq("id", job["jobId"])
        .single()
        .execute()
        .data
    )
    assert row == {"status": "completed", "progress": 100}


def test_webhooks_update_the_row_without_polling(stack: LocalStack, http: httpx.Client, user: User):
    job = upload(stack, http, user)
    start(stack, http, user, job["jobId"])
    sb = _service_client(stack)

    def completed():
        row = (
            sb.table("ai_training_jobs").select("*").eq("id", job["jobId"]).single().execute().data
        )
        return row if row["status"] == "completed" else None

    row = wait_for(completed, timeout=30)
    assert row["last_webhook_id"]  # applied by the webhook, not by a status call or a sweep


def test_unknown_and_foreign_jobs_are_404(stack: LocalStack, http: httpx.Client, make_user):
    owner, stranger = make_user(), make_user()
    job = upload(stack, http, owner)
    for job_id in (str(uuid.uuid4()), job["jobId"]):
        r = http.get(
            stack.url("check_training_status"), headers=stranger.headers, params={"jobId": job_id}
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
        r = http.post(
            stack.url("start_ai_training"), headers=stranger.headers, json={"jobId": job_id}
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
    # The stranger's attempt did not start the owner's job.
    assert status(stack, http, owner, job["jobId"])["status"] == "pending"


def test_requests_without_a_token_are_401(stack: LocalStack, http: httpx.Client):
    for name in ("upload_training_photos", "start_ai_training", "check_training_status"):
        r = http.post(stack.url(name), json={"jobId": str(uuid.uuid4())})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"


def test_a_bad_upload_leaves_no_row_and_no_object(
    stack: LocalStack, http: httpx.Client, user: User
):
    files = [*photo_files(2), ("photos", ("evil.jpg", b"<html>not a photo</html>", "image/jpeg"))]
    r = http.post(
        stack.url("upload_training_photos"),
        headers=user.headers,
        data={"fursonaName": "E"},
        files=files,
    )
    assert r.status_code == 415 and r.json()["error"]["message"]
    sb = _service_client(stack)
    assert sb.table("ai_training_jobs").select("id").eq("user_id", user.id).execute().data == []
    assert sb.storage.from_("training-photos").list(user.id) == []


def test_an_oversize_request_names_the_signed_upload_flow(
    stack: LocalStack, http: httpx.Client, user: User
):
    # 4.2 MB of photos: still under the Function URL cap once base64-encoded, so our handler answers.
    big = [("photos", (f"p{i}.jpg", b"\xff" * 1_400_000, "image/jpeg")) for i in range(3)]
    url = stack.url("upload_training_photos")
    r = http.post(url, headers=user.headers, data={"fursonaName": "E"}, files=big)
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == "payload_too_large" and "/uploads" in error["message"]
    # Past 6 MB the request never reaches a handler: the Function URL itself refuses it, as in AWS.
    huge = [("photos", (f"p{i}.jpg", b"\xff" * 2_000_000, "image/jpeg")) for i in range(3)]
    r = http.post(url, headers=user.headers, data={"fursonaName": "E"}, files=huge)
    assert r.status_code == 413 and "Request must be smaller than" in r.json()["Message"]
