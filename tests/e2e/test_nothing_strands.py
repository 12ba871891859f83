"""Nothing strands (issue 14.6), end to end: zips no row records, objects a late signed PUT left,
jobs never started, a canceled upload's originals, deletions Replicate refuses for good."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from devstack.function_urls import FunctionUrls
from devstack.replicate_emulator import ReplicateEmulator
from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from shared.plumbing.observability import metrics
from tests.corpus.upload_paths import FIELDS, complete_signed, create_signed, put_photo
from tests.e2e.conftest import User, photo_files
from tests.e2e.test_privacy import (
    cancel,
    delete,
    job_row,
    on_replicate,
    replicate_client,
    start,
    status,
    stored_photos,
)
from tests.stack_fixtures import wait_for


def superseded(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
) -> dict:
    """A completed version that is no longer its twin's active one (deletable on its own)."""
    jobs = []
    twin_id = None
    for _ in range(2):
        fields = {**FIELDS} if twin_id is None else {"twinId": twin_id}
        made = http.post(
            stack.url("upload_training_photos"),
            headers=user.headers,
            data=fields,
            files=photo_files(3),
        )
        assert made.status_code == 201, made.text
        twin_id = made.json()["twinId"]
        started = start(stack, http, user, made.json()["jobId"])
        assert started.status_code == 202, started.text
        emulator.finish_now(started.json()["trainingId"], outcome="succeeded")
        job_id: str = made.json()["jobId"]

        def completed(job_id: str = job_id) -> dict | None:
            body = status(stack, http, user, job_id).json()
            return body if body["status"] == "completed" else None

        jobs.append(wait_for(completed))
    return dict(jobs[0])


def db(stack: LocalStack) -> psycopg.Connection:
    assert stack.pg is not None
    return psycopg.connect(stack.pg.dsn(), autocommit=True)


def age_objects(stack: LocalStack, prefix: str) -> None:
    """As if the objects under `prefix` had been put an hour ago (past the orphan grace)."""
    with db(stack) as conn:
        conn.execute(
            "update storage.objects set created_at = now() - interval '1 hour'"
            " where bucket_id = 'training-photos' and name like %s",
            [f"{prefix}%"],
        )


def signed_job(stack: LocalStack, http: httpx.Client, user: User, photos: list[bytes]) -> dict:
    declared = [
        {"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": len(p)}
        for i, p in enumerate(photos)
    ]
    created = create_signed(stack, http, user, {**FIELDS, "photos": declared})
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_a_zip_whose_job_row_is_gone_is_found_by_its_metadata_and_deleted(
    stack: LocalStack, emulator: ReplicateEmulator, functions: FunctionUrls
) -> None:
    """The delete that lands while start uploads the zip: the file exists, no row records it."""
    client = replicate_client(stack, emulator)
    gone, unrelated = str(uuid.uuid4()), "not-a-job"
    stranded = client.files.create(io.BytesIO(b"PK\x05\x06" + bytes(18)), metadata={"job_id": gone})
    other = client.files.create(io.BytesIO(b"x"), metadata={"job_id": unrelated})
    functions.fire_schedule()
    assert on_replicate(client, f"/v1/files/{stranded.id}")  # young: a start may record it
    with emulator.state.lock:
        for file_id in (stranded.id, other.id):
            emulator.state.files[file_id].created -= 600  # older than the claim timeout
    report = functions.fire_schedule()
    assert report["orphans"]["zips_deleted"] >= 1 and report["orphans"]["errors"] == 0
    assert not on_replicate(client, f"/v1/files/{stranded.id}")
    assert on_replicate(client, f"/v1/files/{other.id}")  # not a job of ours: left alone
    client.files.delete(other.id)


def test_a_refused_complete_leaves_nothing_and_a_late_put_is_swept(
    stack: LocalStack, http: httpx.Client, user: User, functions: FunctionUrls
) -> None:
    photos = [make_photo(600, 600, seed=950 + i) for i in range(3)]
    job = signed_job(stack, http, user, photos)
    targets = job["uploads"]
    assert (
        put_photo(http, targets[0], b"<svg xmlns='http://www.w3.org/2000/svg'/>").status_code == 200
    )
    for target, data in zip(targets[1:], photos[1:], strict=True):
        assert put_photo(http, target, data).status_code == 200
    refused = complete_signed(stack, http, user, job["jobId"])
    assert 400 <= refused.status_code < 500, refused.text
    folder = f"{user.id}/{job['jobId']}/"
    assert stored_photos(stack, user, job["jobId"]) == []
    # The URL is still valid for its window: a late PUT lands where no row knows it.
    assert put_photo(http, targets[1], photos[1]).status_code == 200
    assert stored_photos(stack, user, job["jobId"]) != []
    functions.fire_schedule()
    assert stored_photos(stack, user, job["jobId"]) != []  # young: within the orphan grace
    age_objects(stack, folder)
    report = functions.fire_schedule()
    assert report["orphans"]["errors"] == 0
    assert stored_photos(stack, user, job["jobId"]) == []


def test_a_signed_upload_deleted_answers_200_at_once_and_late_puts_are_swept(
    stack: LocalStack, http: httpx.Client, user: User, functions: FunctionUrls
) -> None:
    photos = [make_photo(600, 600, seed=960 + i) for i in range(3)]
    job = signed_job(stack, http, user, photos)
    assert put_photo(http, job["uploads"][0], photos[0]).status_code == 200
    response = delete(stack, http, user, job["jobId"])
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] is True
    assert put_photo(http, job["uploads"][1], photos[1]).status_code == 200  # late
    assert stored_photos(stack, user, job["jobId"]) != []
    age_objects(stack, f"{user.id}/{job['jobId']}/")
    functions.fire_schedule()
    assert stored_photos(stack, user, job["jobId"]) == []


def test_a_canceled_upload_loses_its_raw_originals_at_once(
    stack: LocalStack, http: httpx.Client, user: User
) -> None:
    photos = [make_photo(600, 600, seed=970 + i) for i in range(3)]
    job = signed_job(stack, http, user, photos)
    assert put_photo(http, job["uploads"][0], photos[0]).status_code == 200
    assert stored_photos(stack, user, job["jobId"]) != []
    response = cancel(stack, http, user, job["jobId"])
    assert response.status_code == 200, response.text
    assert stored_photos(stack, user, job["jobId"]) == []
    assert job_row(stack, job["jobId"])["photos_deleted_at"] is not None


def test_a_job_uploaded_but_never_started_expires_and_its_photos_go(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    functions: FunctionUrls,
    function_settings: Callable[..., None],
) -> None:
    made = http.post(
        stack.url("upload_training_photos"), headers=user.headers, data=FIELDS, files=photo_files(3)
    )
    assert made.status_code == 201, made.text
    job_id = made.json()["jobId"]
    assert stored_photos(stack, user, job_id) != []
    functions.fire_schedule()
    assert job_row(stack, job_id)["status"] == "pending"  # within the default 7 days
    function_settings(UNSTARTED_JOB_EXPIRY_HOURS="0.0001")  # a third of a second

    def expired() -> dict | None:
        functions.fire_schedule()
        row = job_row(stack, job_id)
        return row if row["status"] == "failed" else None

    row = wait_for(expired, timeout=30, interval=0.5)
    assert row["failure_code"] == "never_started" and row["photos_deleted_at"] is not None
    assert stored_photos(stack, user, job_id) == []


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_deletion_replicate_refuses_for_good_raises_the_metric_and_is_not_retried(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    functions: FunctionUrls,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = superseded(stack, http, user, emulator)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()
    emulator.faults.add("DELETE", r"^/v1/models/", "status", times=None, status=409)
    try:
        response = delete(stack, http, user, first["jobId"])
        assert response.status_code == 200, response.text
        row = job_row(stack, first["jobId"])
        assert row["replicate_deletion_refused_at"] is not None and row["deleted_at"] is not None
        calls = emulator.calls.copy()
        functions.fire_schedule()
        deletes = [k for k in emulator.calls if "DELETE" in str(k) and "/models/" in str(k)]
        assert all(emulator.calls[k] == calls.get(k, 0) for k in deletes)  # not asked again
    finally:
        emulator.faults.clear()
    out = capsys.readouterr().out
    emitted = [
        json.loads(line)
        for line in out.splitlines()
        if line.startswith("{") and '"ReplicateDeletionsRefused"' in line
    ]
    assert emitted and emitted[0]["ReplicateDeletionsRefused"] in (1.0, [1.0])
    assert datetime.now(UTC) - row["replicate_deletion_refused_at"] < timedelta(minutes=5)
