"""Cancel, delete and retention end to end: real HTTP to the local Function URLs, the handlers
using the real clients against PostgREST, the Storage emulator and the Replicate emulator."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import replicate
from replicate.exceptions import ReplicateError

from devstack.function_urls import FunctionUrls
from devstack.replicate_emulator import ReplicateEmulator
from devstack.stack import LocalStack
from tests.e2e.conftest import User, photo_files, wait_for

CREATE_ROUTE = "/v1/models/{owner}/{name}/versions/{version}/trainings"


@pytest.fixture
def slow_training(emulator: ReplicateEmulator) -> Iterator[None]:
    """Trainings created in the test run long enough to be caught running."""
    before = emulator.train_seconds
    emulator.train_seconds = 300
    try:
        yield
    finally:
        emulator.train_seconds = before


def upload(stack: LocalStack, http: httpx.Client, user: User) -> str:
    response = http.post(
        stack.url("upload_training_photos"),
        headers=user.headers,
        data={"fursonaName": "Ember", "customizationData": json.dumps({"type": "fox"})},
        files=photo_files(3),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobId"])


def start(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> httpx.Response:
    return http.post(stack.url("start_ai_training"), headers=user.headers, json={"jobId": job_id})


def started_job(stack: LocalStack, http: httpx.Client, user: User) -> tuple[str, str]:
    job_id = upload(stack, http, user)
    response = start(stack, http, user, job_id)
    assert response.status_code == 202, response.text
    return job_id, response.json()["trainingId"]


def status(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> httpx.Response:
    return http.get(
        stack.url("check_training_status"), headers=user.headers, params={"jobId": job_id}
    )


def completed_job(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
) -> dict[str, Any]:
    job_id, training_id = started_job(stack, http, user)
    emulator.finish_now(training_id, outcome="succeeded")

    def done() -> dict[str, Any] | None:
        body = status(stack, http, user, job_id).json()
        return body if body["status"] == "completed" else None

    return dict(wait_for(done, timeout=30))


def cancel(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> httpx.Response:
    url = stack.url("check_training_status") + "cancel"
    return http.post(url, headers=user.headers, json={"jobId": job_id})


def delete(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> httpx.Response:
    return http.delete(
        stack.url("check_training_status"), headers=user.headers, params={"jobId": job_id}
    )


def delete_by_post(
    stack: LocalStack, http: httpx.Client, user: User, job_id: str
) -> httpx.Response:
    url = stack.url("check_training_status") + "delete"
    return http.post(url, headers=user.headers, json={"jobId": job_id})


def job_row(stack: LocalStack, job_id: str) -> dict[str, Any]:
    assert stack.pg is not None
    with (
        psycopg.connect(stack.pg.dsn()) as conn,
        conn.cursor(row_factory=psycopg.rows.dict_row) as cur,
    ):
        cur.execute("select * from public.ai_training_jobs where id = %s", [job_id])
        row = cur.fetchone()
    assert row is not None
    return row


def stored_photos(stack: LocalStack, user: User, job_id: str) -> list[str]:
    assert stack.pg is not None
    with psycopg.connect(stack.pg.dsn()) as conn:
        rows = conn.execute(
            "select name from storage.objects where bucket_id = 'training-photos'"
            " and name like %s order by name",
            [f"{user.id}/{job_id}/%"],
        ).fetchall()
    return [r[0] for r in rows]


def replicate_client(stack: LocalStack, emulator: ReplicateEmulator) -> replicate.Client:
    return replicate.Client(api_token=stack.replicate_token, base_url=emulator.base_url)


def on_replicate(client: replicate.Client, path: str) -> bool:
    try:
        client._request("GET", path)
    except ReplicateError as exc:
        assert exc.status == 404
        return False
    return True


def test_cancel_during_training(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    slow_training: None,
):
    job_id, training_id = started_job(stack, http, user)
    file_id = job_row(stack, job_id)["replicate_file_id"]

    response = cancel(stack, http, user, job_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "failed" and body["errorMessage"] == "Canceled by user."

    assert emulator.training(training_id)["status"] == "canceled"
    assert not on_replicate(replicate_client(stack, emulator), f"/v1/files/{file_id}")
    row = job_row(stack, job_id)
    assert row["replicate_file_deleted_at"] is not None
    assert row["photos_deleted_at"] is None and len(stored_photos(stack, user, job_id)) == 3
    # Still the person's job to look at, and it never trains again.
    shown = status(stack, http, user, job_id).json()
    assert shown["status"] == "failed" and shown["errorMessage"] == "Canceled by user."
    creates = emulator.count("POST", CREATE_ROUTE)
    again = start(stack, http, user, job_id)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "job_failed")
    assert emulator.count("POST", CREATE_ROUTE) == creates


def test_cancel_of_a_finished_job_is_409(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
):
    completed = completed_job(stack, http, user, emulator)
    response = cancel(stack, http, user, completed["jobId"])
    assert response.status_code == 409 and response.json()["error"]["code"] == "job_finished"
    assert status(stack, http, user, completed["jobId"]).json()["status"] == "completed"

    pending = upload(stack, http, user)
    assert cancel(stack, http, user, pending).status_code == 200
    response = cancel(stack, http, user, pending)
    assert response.status_code == 409 and response.json()["error"]["code"] == "job_finished"


def test_delete_during_training_then_again(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    slow_training: None,
):
    job_id, training_id = started_job(stack, http, user)
    file_id = job_row(stack, job_id)["replicate_file_id"]

    response = delete(stack, http, user, job_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["jobId"] == job_id and body["deleted"] is True and body["deletedAt"]

    assert emulator.training(training_id)["status"] == "canceled"
    assert not on_replicate(replicate_client(stack, emulator), f"/v1/files/{file_id}")
    assert stored_photos(stack, user, job_id) == []
    row = job_row(stack, job_id)
    assert row["furrsona_name"] == "(deleted)"
    assert row["customization_data"] == {} and row["photo_urls"] == []
    assert row["status"] == "failed" and row["photos_deleted_at"] and row["deleted_at"]

    # Never shown or trained again.
    assert status(stack, http, user, job_id).status_code == 404
    assert start(stack, http, user, job_id).status_code == 404
    assert cancel(stack, http, user, job_id).status_code == 404

    # A repeated delete (either form) answers the same and asks nothing more of Replicate.
    calls = sum(emulator.calls.values())
    for repeat in (delete, delete_by_post):
        again = repeat(stack, http, user, job_id)
        assert again.status_code == 200 and again.json() == body
    assert sum(emulator.calls.values()) == calls


def test_delete_of_a_completed_job_deletes_its_model_version(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
):
    completed = completed_job(stack, http, user, emulator)
    model, version_id = completed["modelVersion"].split(":")
    version_path = f"/v1/models/{model}/versions/{version_id}"
    client = replicate_client(stack, emulator)
    assert on_replicate(client, version_path)

    # It is its twin's active version: alone it is refused; with its twin it goes.
    refused = delete_by_post(stack, http, user, completed["jobId"])
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "version_active"
    assert on_replicate(client, version_path)
    twin = f"{stack.url('check_training_status')}twins/{completed['twinId']}"
    response = http.delete(twin, headers=user.headers)
    assert response.status_code == 200 and response.json()["deleted"] is True
    assert not on_replicate(client, version_path)
    assert job_row(stack, completed["jobId"])["model_version_deleted_at"] is not None


def test_a_delete_while_replicate_fails_is_finished_by_the_sweep(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    functions: FunctionUrls,
    slow_training: None,
):
    job_id, training_id = started_job(stack, http, user)
    functions.fire_schedule()  # settle what earlier tests left, so the faulty sweep below is short
    emulator.faults.add(None, r"^/v1/", "status", times=None, status=503)

    response = delete(stack, http, user, job_id)
    assert response.status_code == 202, response.text
    assert response.json()["deleted"] is False and response.json()["deletionRequestedAt"]
    # Storage works: the photos are gone already; the job is hidden and can never train again.
    assert stored_photos(stack, user, job_id) == []
    assert status(stack, http, user, job_id).status_code == 404
    row = job_row(stack, job_id)
    assert row["status"] == "failed" and row["photos_deleted_at"] and row["deleted_at"] is None

    report = functions.fire_schedule()
    assert report["cleanup"]["errors"] >= 1
    assert job_row(stack, job_id)["deleted_at"] is None

    emulator.faults.clear()
    report = functions.fire_schedule()
    assert report["cleanup"]["deletions_finished"] >= 1
    row = job_row(stack, job_id)
    assert row["deleted_at"] and row["replicate_file_deleted_at"]
    assert row["furrsona_name"] == "(deleted)"
    assert emulator.training(training_id)["status"] == "canceled"
    file_path = f"/v1/files/{row['replicate_file_id']}"
    assert not on_replicate(replicate_client(stack, emulator), file_path)
    again = delete(stack, http, user, job_id)
    assert again.status_code == 200 and again.json()["deleted"] is True


def test_retention_zip_at_once_photos_after_the_configured_days(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    functions: FunctionUrls,
):
    completed = completed_job(stack, http, user, emulator)
    job_id = completed["jobId"]
    file_id = job_row(stack, job_id)["replicate_file_id"]
    client = replicate_client(stack, emulator)

    functions.fire_schedule()
    row = job_row(stack, job_id)
    assert row["replicate_file_deleted_at"] is not None
    assert not on_replicate(client, f"/v1/files/{file_id}")
    assert row["photos_deleted_at"] is None and len(stored_photos(stack, user, job_id)) == 3

    # Move the job's end back past PHOTO_RETENTION_DAYS (7 by default) instead of waiting.
    assert stack.pg is not None
    ended = datetime.now(UTC) - timedelta(days=7, minutes=1)
    with psycopg.connect(stack.pg.dsn(), autocommit=True) as conn:
        conn.execute(
            "update public.ai_training_jobs set completed_at = %s where id = %s", [ended, job_id]
        )
    functions.fire_schedule()
    assert stored_photos(stack, user, job_id) == []
    assert job_row(stack, job_id)["photos_deleted_at"] is not None
    # The trained model stays until the person deletes the job.
    shown = status(stack, http, user, job_id).json()
    assert shown["status"] == "completed" and shown["modelVersion"] == completed["modelVersion"]
    model, version_id = completed["modelVersion"].split(":")
    assert on_replicate(client, f"/v1/models/{model}/versions/{version_id}")


def test_only_the_owner_can_cancel_or_delete(stack: LocalStack, http: httpx.Client, make_user):
    owner, stranger = make_user(), make_user()
    job_id = upload(stack, http, owner)
    for job in (job_id, str(uuid.uuid4())):
        for action in (cancel, delete, delete_by_post):
            response = action(stack, http, stranger, job)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "job_not_found"
    base = stack.url("check_training_status")
    for method, url in (("POST", base + "cancel"), ("DELETE", base), ("POST", base + "delete")):
        response = http.request(method, url, params={"jobId": job_id}, json={"jobId": job_id})
        assert response.status_code == 401
        # Naming another user in the body is refused outright.
        if method == "POST":
            claimed = {"jobId": job_id, "userId": stranger.id}
            response = http.post(url, headers=owner.headers, json=claimed)
            assert response.status_code == 403
    assert status(stack, http, owner, job_id).json()["status"] == "pending"
