"""The signed direct-upload flow and its expiry against in-memory fakes (the database rules
included): what `POST /uploads`, the browser's PUTs and `POST /uploads/{jobId}/complete` do to the
row and the bucket, including the races with a second complete and with the sweep."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image

from devstack.sample_photos import make_photo
from shared.contract.upload import SignedUploadResponse
from shared.domain.caller import Caller
from shared.domain.job import FailureCode, JobStatus
from shared.errors import AppError
from shared.plumbing.deadline import Deadline
from shared.plumbing.settings import Settings
from shared.services.deps import Deps
from shared.services.signed_upload import complete_signed_upload, create_signed_upload
from shared.services.upload_expiry import UPLOAD_GRACE, expire_job, expire_uploads
from tests.fakes import (
    FakePredictor,
    FakeTrainer,
    InMemoryJobStore,
    InMemoryPhotoStore,
    InMemoryPreviewStore,
    InMemoryTrainingQueue,
    InMemoryTwinStore,
    RecordingNotifier,
)
from tests.unit.helpers import make_settings

SETTINGS = make_settings()
PHOTOS = [make_photo(600, 600, seed=300 + i) for i in range(4)]


class Env:
    def __init__(self, settings: Settings = SETTINGS) -> None:
        self.settings = settings
        self.jobs = InMemoryJobStore()
        self.photos = InMemoryPhotoStore()
        self.twins = InMemoryTwinStore(self.jobs)
        self.deps = Deps(
            settings,
            self.jobs,
            self.twins,
            self.photos,
            FakeTrainer(),
            RecordingNotifier(),
            InMemoryTrainingQueue(self.jobs),
            InMemoryPreviewStore(self.jobs),
            FakePredictor(),
        )
        self.caller = Caller(user_id=uuid.uuid4(), claims={})

    def create(self, photos: list[dict[str, Any]] | None = None, **body: Any) -> Any:
        declared = photos or [
            {"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": len(d)}
            for i, d in enumerate(PHOTOS[:3])
        ]
        body = {"fursonaName": "Ember", "photos": declared, **body}
        return create_signed_upload(self.caller, body, self.deps)

    def put_all(self, created: SignedUploadResponse, data: list[bytes]) -> None:
        for target, content in zip(created.uploads, data, strict=False):
            self.photos.put_signed(target.token, content)

    def complete(self, job_id: uuid.UUID) -> Any:
        return complete_signed_upload(self.caller, job_id, self.deps)

    def refused(self, call: Any, *args: Any, **kwargs: Any) -> AppError:
        with pytest.raises(AppError) as caught:
            call(*args, **kwargs)
        return caught.value


def test_create_makes_an_uploading_job_with_one_signed_target_per_photo() -> None:
    env = Env()
    created = env.create(
        [
            {"filename": "a.jpg", "contentType": "image/jpeg", "size": 10},
            {"filename": "b.heic", "contentType": "", "size": 10},
            {"filename": "c.png", "contentType": "text/html", "size": 10},
        ]
    )
    job = env.jobs.get(created.job_id)
    assert job is not None and job.status is JobStatus.UPLOADING and job.progress == 0
    prefix = f"{env.caller.user_id}/{created.job_id}/upload/"
    assert [t.path for t in created.uploads] == [f"{prefix}0{i}" for i in (1, 2, 3)]
    assert job.photo_urls == [t.path for t in created.uploads]
    assert {t.method for t in created.uploads} == {"PUT"}
    # Declared types are hints: the bucket takes only photo types, so others become JPEG.
    assert [t.content_type for t in created.uploads] == ["image/jpeg"] * 3
    assert job.upload_expires_at == created.expires_at
    assert created.expires_at <= datetime.now(UTC) + timedelta(hours=2)
    assert env.photos.objects == {}


@pytest.mark.parametrize(
    ("photos", "status", "code"),
    [
        ([{"filename": "a.jpg", "size": 10}] * 2, 422, "too_few_photos"),
        ([{"filename": "a.jpg", "size": 10}] * 7, 422, "too_many_photos"),
        (
            [{"filename": "a.jpg", "size": 10}] * 2 + [{"filename": "z", "size": 0}],
            422,
            "empty_file",
        ),
        ([{"size": 10}] * 2 + [{"size": 16 * 1024 * 1024}], 413, "photo_too_large"),
        ([{"size": 10}] * 2 + [{"filename": "a.jpg"}], 422, "invalid_field"),
        ([{"size": 10}] * 2 + [{"size": "10"}], 422, "invalid_field"),
        ([{"size": 10}] * 2 + [{"size": -1}], 422, "invalid_field"),
        ([{"size": 10}] * 2 + ["a.jpg"], 422, "invalid_field"),
    ],
)
def test_a_bad_declaration_creates_nothing(photos: list[Any], status: int, code: str) -> None:
    env = Env()
    error = env.refused(env.create, photos)
    assert (error.status, error.code) == (status, code)
    assert env.jobs.rows == {} and env.photos.signed == {}


def test_the_declared_photos_together_must_fit_the_job_cap() -> None:
    env = Env(make_settings(photos_max_total_bytes=25 * 1024 * 1024))
    error = env.refused(env.create, [{"size": 10 * 1024 * 1024}] * 3)
    assert (error.status, error.code) == (413, "photos_too_large")
    assert "30.0 MB" in error.message and "25 MB" in error.message


def test_complete_normalises_each_photo_and_moves_the_job_to_pending() -> None:
    env = Env()
    created = env.create()
    env.put_all(created, PHOTOS[:3])
    job = env.complete(created.job_id)
    folder = f"{env.caller.user_id}/{created.job_id}"
    assert job.status is JobStatus.PENDING and job.progress == 20
    assert job.photo_urls == [f"{folder}/0{i}.jpg" for i in (1, 2, 3)]
    assert sorted(env.photos.objects) == job.photo_urls  # the raw uploads are gone
    for path in job.photo_urls:
        assert Image.open(io.BytesIO(env.photos.objects[path])).format == "JPEG"
    # Idempotent: a second call returns the job as it stands and touches nothing.
    assert env.complete(created.job_id) == env.jobs.get(created.job_id)


def test_a_missing_photo_is_named_and_the_job_waits_for_it() -> None:
    env = Env()
    created = env.create()
    env.put_all(created, [PHOTOS[0]])
    error = env.refused(env.complete, created.job_id)
    assert (error.status, error.code) == (409, "upload_incomplete")
    assert error.message.startswith("Photo 2 and photo 3 have not been uploaded yet")
    env.put_all(created, PHOTOS[:3])
    assert env.complete(created.job_id).status is JobStatus.PENDING


@pytest.mark.parametrize(
    ("bad", "status", "code"),
    [
        (b"<html><body>hello</body></html>", 415, "not_an_image"),
        (PHOTOS[0], 422, "duplicate_photo"),
        (make_photo(400, 300, seed=1), 422, "photo_too_small"),
    ],
)
def test_a_bad_photo_removes_the_job_and_every_object(bad: bytes, status: int, code: str) -> None:
    env = Env()
    created = env.create()
    env.put_all(created, [PHOTOS[0], PHOTOS[1], bad])
    error = env.refused(env.complete, created.job_id)
    assert (error.status, error.code) == (status, code)
    assert error.message.startswith("Photo 3")
    assert env.jobs.rows == {} and env.photos.objects == {}
    # A retry finds nothing: the person starts again.
    assert env.refused(env.complete, created.job_id).status == 404


def test_stored_photos_over_the_job_cap_are_refused_without_downloading() -> None:
    env = Env(make_settings(photos_max_total_bytes=len(PHOTOS[0]) * 2))
    created = env.create(
        [{"size": len(PHOTOS[0]) // 2}] * 3  # the declaration fitted; the uploads do not
    )
    env.put_all(created, PHOTOS[:3])
    downloads: list[str] = []
    original_get = env.photos.get

    def counting_get(path: str) -> bytes:
        downloads.append(path)
        return original_get(path)

    env.photos.get = counting_get  # type: ignore[method-assign]
    error = env.refused(env.complete, created.job_id)
    assert (error.status, error.code) == (413, "photos_too_large")
    assert downloads == [] and env.jobs.rows == {} and env.photos.objects == {}


def test_complete_for_someone_else_is_404() -> None:
    env = Env()
    created = env.create()
    env.put_all(created, PHOTOS[:3])
    stranger = Caller(user_id=uuid.uuid4(), claims={})
    with pytest.raises(AppError) as caught:
        complete_signed_upload(stranger, created.job_id, env.deps)
    assert (caught.value.status, caught.value.code) == (404, "job_not_found")
    assert env.jobs.get(created.job_id).status is JobStatus.UPLOADING  # type: ignore[union-attr]


def _expire(env: Env, job_id: uuid.UUID) -> None:
    env.jobs.rows[job_id]["upload_expires_at"] = (
        datetime.now(UTC) - UPLOAD_GRACE - timedelta(seconds=1)
    )


def test_complete_after_the_window_fails_the_job_and_removes_its_objects() -> None:
    env = Env()
    created = env.create()
    env.put_all(created, PHOTOS[:3])
    _expire(env, created.job_id)
    error = env.refused(env.complete, created.job_id)
    assert (error.status, error.code) == (409, "upload_expired")
    job = env.jobs.get(created.job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.error_message
    assert job.failure_code is FailureCode.UPLOAD_EXPIRED
    assert env.photos.objects == {}
    again = env.refused(env.complete, created.job_id)
    assert (again.status, again.code) == (409, "upload_expired")


def test_the_sweep_fails_expired_uploads_only() -> None:
    env = Env()
    late, fresh = (
        env.create(),
        env.create(
            [{"size": len(d)} for d in PHOTOS[1:4]]  # a second job of the same person
        ),
    )
    env.put_all(late, PHOTOS[:2])
    env.put_all(fresh, PHOTOS[1:3])
    _expire(env, late.job_id)
    report = expire_uploads(env.deps, Deadline(60))
    assert (report.seen, report.expired, report.errors) == (2, 1, 0)
    assert env.jobs.get(late.job_id).status is JobStatus.FAILED  # type: ignore[union-attr]
    assert env.jobs.get(late.job_id).failure_code is FailureCode.UPLOAD_EXPIRED  # type: ignore[union-attr]
    assert env.jobs.get(fresh.job_id).status is JobStatus.UPLOADING  # type: ignore[union-attr]
    assert all(str(fresh.job_id) in path for path in env.photos.objects)
    assert len(env.photos.objects) == 2


def test_the_sweep_stops_at_its_deadline() -> None:
    env = Env()
    created = env.create()
    _expire(env, created.job_id)
    report = expire_uploads(env.deps, Deadline(-1))
    assert (report.expired, report.skipped) == (0, 1)
    assert env.jobs.get(created.job_id).status is JobStatus.UPLOADING  # type: ignore[union-attr]


def test_a_complete_overtaken_by_another_returns_the_finished_job() -> None:
    env = Env()
    created = env.create()
    env.put_all(created, PHOTOS[:3])
    original_get = env.photos.get
    calls = 0

    def get_while_another_completes(path: str) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:  # the other complete runs to the end between our listing and download
            env.photos.get = original_get  # type: ignore[method-assign]
            env.complete(created.job_id)
        return original_get(path)

    env.photos.get = get_while_another_completes  # type: ignore[method-assign]
    job = env.complete(created.job_id)
    assert job.status is JobStatus.PENDING and job == env.jobs.get(created.job_id)
    assert sorted(env.photos.objects) == job.photo_urls


def test_a_complete_overtaken_by_the_sweep_leaves_nothing_behind() -> None:
    env = Env()
    created = env.create()
    env.put_all(created, PHOTOS[:3])
    job = env.jobs.get(created.job_id)
    assert job is not None
    original_put = env.photos.put

    def put_while_the_sweep_expires(path: str, data: bytes, content_type: str) -> None:
        if path.endswith("03.jpg"):
            expire_job(job, env.jobs, env.photos)
        original_put(path, data, content_type)

    env.photos.put = put_while_the_sweep_expires  # type: ignore[method-assign]
    error = env.refused(env.complete, created.job_id)
    assert (error.status, error.code) == (409, "upload_failed")
    assert env.photos.objects == {}
    assert env.jobs.get(created.job_id).status is JobStatus.FAILED  # type: ignore[union-attr]
