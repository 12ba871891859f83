"""The upload -> start -> status logic against in-memory fakes (the database rules included)."""

from __future__ import annotations

import io
import threading
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from devstack.sample_photos import make_photo
from shared.domain.caller import Caller
from shared.domain.job import FailureCode, JobStatus
from shared.errors import AppError, UpstreamError
from shared.plumbing.deadline import Deadline
from shared.plumbing.multipart import parse_form
from shared.services.deps import Deps
from shared.services.intake import normalise_all
from shared.services.start import start_training
from shared.services.status import get_status, refresh
from shared.services.sweep import sweep
from shared.services.upload import create_job_with_photos, upload_multipart
from shared.services.versions import VersionPlan
from tests.unit.helpers import raises_status


def _caller() -> Caller:
    return Caller(user_id=uuid.uuid4(), claims={})


def _multipart(fields: dict[str, str], photos: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    boundary = "----flurrty" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for filename, data in photos:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{filename}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", out.getvalue()


PHOTOS = [(f"p{i}.jpg", make_photo(640, 640, seed=i)) for i in range(3)]


def _new_job(deps: Deps, caller: Caller):
    jpegs = normalise_all(PHOTOS, deps.settings)
    return create_job_with_photos(caller, VersionPlan("Ember", {}, None), jpegs, deps)


def test_multipart_upload_stores_normalised_photos_and_creates_a_pending_job(deps):
    caller = _caller()
    content_type, body = _multipart(
        {"fursonaName": " Ember ", "customizationData": '{"type": "fox"}'}, PHOTOS
    )
    job = upload_multipart(caller, parse_form(content_type, body), deps)
    assert job.status is JobStatus.PENDING and job.progress == 20
    assert job.furrsona_name == "Ember" and job.customization_data == {"type": "fox"}
    assert job.photo_urls == [f"{caller.user_id}/{job.id}/0{i}.jpg" for i in (1, 2, 3)]
    assert sorted(deps.photos.objects) == job.photo_urls


@pytest.mark.parametrize(
    ("fields", "photos", "status", "code"),
    [
        ({"fursonaName": "E"}, PHOTOS[:2], 422, "too_few_photos"),
        ({"fursonaName": ""}, PHOTOS, 400, "missing_field"),
        ({"fursonaName": "E", "customizationData": "{nope"}, PHOTOS, 400, "invalid_json"),
        ({"fursonaName": "E", "customizationData": "[1]"}, PHOTOS, 422, "invalid_field"),
        ({"fursonaName": "E" * 101}, PHOTOS, 422, "invalid_field"),
        ({"fursonaName": "E"}, [*PHOTOS[:2], PHOTOS[0]], 422, "duplicate_photo"),
        ({"fursonaName": "E"}, [*PHOTOS[:2], ("x.jpg", b"<svg></svg>")], 415, None),
    ],
)
def test_bad_uploads_leave_nothing_behind(deps, fields, photos, status, code):
    content_type, body = _multipart(fields, photos)
    with pytest.raises(AppError) as info:
        upload_multipart(_caller(), parse_form(content_type, body), deps)
    assert info.value.status == status
    if code:
        assert info.value.code == code
    assert deps.jobs.rows == {} and deps.photos.objects == {}


def test_a_storage_failure_midway_removes_the_stored_photos(deps):
    deps.photos.fail_puts_after = 2
    with pytest.raises(RuntimeError):
        _new_job(deps, _caller())
    assert deps.photos.objects == {} and deps.jobs.rows == {}


def test_start_zips_the_photos_and_creates_one_training(deps):
    caller = _caller()
    job = _new_job(deps, caller)
    started = start_training(caller.user_id, job.id, deps)
    assert started.status is JobStatus.TRAINING and started.progress == 30
    assert started.replicate_training_id in deps.trainer.trainings
    zipped = zipfile.ZipFile(io.BytesIO(deps.trainer.files[started.replicate_file_id]))
    assert [i.filename for i in zipped.infolist()] == ["01.jpg", "02.jpg", "03.jpg"]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in zipped.infolist())
    again = start_training(caller.user_id, job.id, deps)
    assert again.replicate_training_id == started.replicate_training_id
    assert deps.trainer.trainings_created == 1


def test_twenty_concurrent_starts_create_exactly_one_training(deps):
    caller = _caller()
    job = _new_job(deps, caller)
    barrier = threading.Barrier(20)
    results = []

    def go():
        barrier.wait()
        results.append(start_training(caller.user_id, job.id, deps))

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20 and all(r.status is JobStatus.TRAINING for r in results)
    assert deps.trainer.trainings_created == 1


def test_someone_elses_job_is_a_404(deps):
    job = _new_job(deps, _caller())
    with raises_status(404):
        start_training(uuid.uuid4(), job.id, deps)
    with raises_status(404):
        get_status(uuid.uuid4(), job.id, deps)


def test_a_crash_after_create_is_adopted_not_repeated(deps):
    caller = _caller()
    job = _new_job(deps, caller)
    real_update = deps.jobs.update

    def crash_when_recording(job_id, changes, **kw):
        if "replicate_training_id" in changes:
            raise SystemExit("the function died")
        return real_update(job_id, changes, **kw)

    deps.jobs.update = crash_when_recording
    with pytest.raises(SystemExit):
        start_training(caller.user_id, job.id, deps)
    deps.jobs.update = real_update
    assert deps.trainer.trainings_created == 1
    # Later than the claim timeout, the sweep takes the claim over and adopts the training.
    stale = datetime.now(UTC) - timedelta(seconds=deps.settings.claim_timeout_seconds + 5)
    deps.jobs.rows[job.id].update(claimed_at=stale, last_checked_at=stale)
    report = sweep(deps, Deadline(30))
    assert report.errors == 0
    adopted = deps.jobs.get(job.id)
    assert adopted is not None and adopted.replicate_training_id in deps.trainer.trainings
    assert deps.trainer.trainings_created == 1


def test_status_follows_the_training_to_completion(deps):
    caller = _caller()
    job = start_training(caller.user_id, _new_job(deps, caller).id, deps)
    tid = job.replicate_training_id
    deps.trainer.set(
        tid,
        status="processing",
        started_at=datetime.now(UTC) - timedelta(seconds=30),
        logs="flux_train_replicate:  50%|█████     | 500/1000 [00:30<00:30, 16it/s]",
    )
    mid = get_status(caller.user_id, job.id, deps)
    assert mid.status is JobStatus.TRAINING and 30 < mid.progress < 95 and mid.estimated_completion
    deps.trainer.set(
        tid,
        status="succeeded",
        output={"version": "flurrty/flurrty-twins:" + "c" * 64},
        metrics={"predict_time": 100.0},
    )
    done = get_status(caller.user_id, job.id, deps)
    assert done.status is JobStatus.COMPLETED and done.progress == 100
    assert done.replicate_model_version == "flurrty/flurrty-twins:" + "c" * 64
    assert done.cost_usd == pytest.approx(0.1528)


def test_a_training_unknown_to_replicate_fails_the_job(deps):
    caller = _caller()
    job = start_training(caller.user_id, _new_job(deps, caller).id, deps)
    deps.trainer.trainings.clear()
    failed = refresh(job, deps)
    assert failed.status is JobStatus.FAILED and "no record" in (failed.error_message or "")
    assert failed.failure_code is FailureCode.TRAINING_LOST


def test_one_broken_job_does_not_stop_the_sweep(deps):
    callers = [_caller() for _ in range(3)]
    jobs = [start_training(c.user_id, _new_job(deps, c).id, deps) for c in callers]
    broken = jobs[0].replicate_training_id
    real_get = deps.trainer.get_training

    def get(tid):
        if tid == broken:
            raise UpstreamError("replicate down")
        return real_get(tid)

    deps.trainer.get_training = get
    for job in jobs[1:]:
        deps.trainer.set(job.replicate_training_id, status="failed", error="boom")
    report = sweep(deps, Deadline(30))
    assert report.seen == 3 and report.errors == 1 and report.checked == 2
    assert [deps.jobs.get(j.id).status for j in jobs[1:]] == [JobStatus.FAILED] * 2
    assert [deps.jobs.get(j.id).failure_code for j in jobs[1:]] == [FailureCode.TRAINING_FAILED] * 2


def test_upload_incomplete_job_cannot_start(deps):
    caller = _caller()
    job = deps.jobs.insert(
        {
            "id": uuid.uuid4(),
            "user_id": caller.user_id,
            "furrsona_name": "E",
            "status": "uploading",
            "progress": 0,
        }
    )
    with raises_status(409):
        start_training(caller.user_id, job.id, deps)


@pytest.mark.parametrize(
    "replacement",
    [
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", id="not-a-jpeg"),
        pytest.param(make_photo(640, 640, seed=99), id="another-valid-jpeg"),
    ],
)
def test_start_refuses_a_photo_that_is_not_the_one_checked_at_upload(deps, replacement):
    """Issue 14.2: whatever sits at a photo path, start fails the job at once with a readable
    message and code; nothing reaches Replicate (no zip, no destination call, no training)."""
    caller = _caller()
    job = _new_job(deps, caller)
    assert job.photo_checksums is not None and len(job.photo_checksums) == 3
    deps.photos.objects[job.photo_urls[1]] = replacement  # swapped behind the backend's back
    with raises_status(409) as refused:
        start_training(caller.user_id, job.id, deps)
    assert "not the one we checked" in refused.value.message and "02.jpg" in refused.value.message
    after = deps.jobs.get(job.id)
    assert after is not None and after.status is JobStatus.FAILED
    assert after.failure_code is FailureCode.PHOTOS_CHANGED
    assert after.replicate_training_id is None and after.reserved_cost_usd is None
    assert deps.trainer.trainings_created == 0 and deps.trainer.files == {}
    assert deps.trainer.destination_checks == 0


def test_start_of_a_job_stored_before_checksums_still_refuses_non_jpeg_bytes(deps):
    caller = _caller()
    job = _new_job(deps, caller)
    deps.jobs.rows[job.id]["photo_checksums"] = None
    deps.photos.objects[job.photo_urls[0]] = b"GIF89a" + b"\0" * 100
    with raises_status(409):
        start_training(caller.user_id, job.id, deps)
    after = deps.jobs.get(job.id)
    assert after is not None and after.failure_code is FailureCode.PHOTOS_CHANGED
    assert deps.trainer.trainings_created == 0 and deps.trainer.files == {}
