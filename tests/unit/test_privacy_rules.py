"""Cancel, delete and retention rules (shared/privacy.py) against the in-memory fakes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devstack.sample_photos import make_photo
from shared.domain.caller import Caller
from shared.domain.job import FailureCode, Job, JobStatus
from shared.domain.twin import Twin
from shared.errors import AppError, UpstreamError
from shared.plumbing.deadline import Deadline
from shared.services.deps import Deps
from shared.services.intake import normalise_all
from shared.services.orphans import ORPHAN_GRACE, sweep_orphans
from shared.services.privacy import (
    CANCELED_MESSAGE,
    DELETED_NAME,
    cancel_job,
    delete_job,
    sweep_cleanup,
)
from shared.services.start import start_training
from shared.services.status import get_status
from shared.services.upload import create_job_with_photos
from shared.services.versions import VersionPlan
from tests.fakes import FakeTrainer, InMemoryJobStore
from tests.unit.helpers import raises_status

PHOTOS = [(f"p{i}.jpg", make_photo(640, 640, seed=100 + i)) for i in range(3)]
VERSION = "flurrty/flurrty-twins:" + "d" * 64


def sweep(deps: Deps):
    assert isinstance(deps.jobs, InMemoryJobStore)
    return sweep_cleanup(deps, Deadline(30))


def new_job(deps: Deps, user_id: uuid.UUID, twin: Twin | None = None) -> Job:
    """A pending job: a new twin's first version, or the next version of `twin`."""
    caller = Caller(user_id=user_id, claims={})
    jpegs = normalise_all(PHOTOS, deps.settings)
    return create_job_with_photos(caller, VersionPlan("Ember", {"type": "fox"}, twin), jpegs, deps)


def training_job(deps: Deps, user_id: uuid.UUID, twin: Twin | None = None) -> Job:
    return start_training(user_id, new_job(deps, user_id, twin).id, deps)


def completed_job(deps: Deps, user_id: uuid.UUID, twin: Twin | None = None) -> Job:
    job = training_job(deps, user_id, twin)
    assert isinstance(deps.trainer, FakeTrainer) and job.replicate_training_id
    deps.trainer.set(job.replicate_training_id, status="succeeded", output={"version": VERSION})
    done = get_status(user_id, job.id, deps)
    assert done.status is JobStatus.COMPLETED
    return done


def superseded_job(deps: Deps, user_id: uuid.UUID) -> Job:
    """A completed version that is no longer active: version 2 of its twin completed after it."""
    first = completed_job(deps, user_id)
    twin = deps.twins.get(first.twin_id)  # type: ignore[arg-type]
    assert twin is not None
    second = completed_job(deps, user_id, twin)
    assert deps.twins.get(twin.id).active_job_id == second.id  # type: ignore[union-attr]
    return row(deps, first.id)


def row(deps: Deps, job_id: uuid.UUID) -> Job:
    job = deps.jobs.get(job_id)
    assert job is not None
    return job


def test_cancel_a_pending_job_and_it_never_trains(deps):
    owner = uuid.uuid4()
    job = new_job(deps, owner)
    canceled = cancel_job(owner, job.id, deps)
    assert canceled.status is JobStatus.FAILED and canceled.error_message == CANCELED_MESSAGE
    assert canceled.failure_code is FailureCode.CANCELED_BY_USER
    with pytest.raises(AppError) as refused:
        start_training(owner, job.id, deps)
    assert (refused.value.status, refused.value.code) == (409, "job_failed")
    assert deps.trainer.trainings_created == 0


def test_cancel_a_training_cancels_it_on_replicate_and_drops_the_zip(deps):
    owner = uuid.uuid4()
    job = training_job(deps, owner)
    canceled = cancel_job(owner, job.id, deps)
    assert canceled.status is JobStatus.FAILED and canceled.error_message == CANCELED_MESSAGE
    assert deps.trainer.trainings[job.replicate_training_id].status == "canceled"
    assert deps.trainer.files == {} and canceled.replicate_file_deleted_at is not None
    assert canceled.photos_deleted_at is None  # photos follow the retention
    assert canceled.notified_at is not None  # no "could not be trained" notice for a cancel


def test_cancel_of_a_finished_job_is_a_conflict(deps):
    owner = uuid.uuid4()
    job = completed_job(deps, owner)
    with raises_status(409) as info:
        cancel_job(owner, job.id, deps)
    assert info.value.status == 409 and info.value.code == "job_finished"


def test_a_training_that_succeeded_before_the_cancel_keeps_its_model(deps):
    owner = uuid.uuid4()
    job = training_job(deps, owner)
    deps.trainer.set(job.replicate_training_id, status="succeeded", output={"version": VERSION})
    with raises_status(409):
        cancel_job(owner, job.id, deps)
    assert row(deps, job.id).status is JobStatus.COMPLETED
    assert deps.trainer.deleted_versions == []


@pytest.mark.parametrize("orphan_outcome", ["running", "succeeded"])
def test_cancel_during_a_start_stops_the_training_the_start_creates_afterwards(
    deps, orphan_outcome
):
    owner = uuid.uuid4()
    job = new_job(deps, owner)
    real_create = deps.trainer.create_training
    created = []

    def create_after_the_cancel(zip_url, webhook):
        # The person cancels while the start is between saving the zip and creating the training.
        cancel_job(owner, job.id, deps)
        created.append(real_create(zip_url, webhook))
        return created[-1]

    deps.trainer.create_training = create_after_the_cancel
    with pytest.raises(AppError) as refused:
        start_training(owner, job.id, deps)
    assert refused.value.code == "job_failed"
    assert row(deps, job.id).status is JobStatus.FAILED
    orphan = created[0].id
    if orphan_outcome == "succeeded":  # it even finished before anyone looked
        deps.trainer.set(orphan, status="succeeded", output={"version": VERSION})
    # Not called clean while a start may still run; once the claim has expired the sweep finds it.
    assert row(deps, job.id).replicate_file_deleted_at is None
    stale = datetime.now(UTC) - timedelta(seconds=deps.settings.claim_timeout_seconds + 5)
    deps.jobs.rows[job.id].update(claimed_at=stale, last_checked_at=stale)
    assert sweep(deps).errors == 0
    after = row(deps, job.id)
    assert after.replicate_training_id == orphan and after.replicate_file_deleted_at
    if orphan_outcome == "succeeded":
        assert deps.trainer.deleted_versions == [VERSION] and after.model_version_deleted_at
    else:
        assert deps.trainer.trainings[orphan].status == "canceled"
        assert deps.trainer.deleted_versions == []


def test_delete_removes_everything_and_anonymises_the_row(deps):
    owner = uuid.uuid4()
    job = superseded_job(deps, owner)
    photos_of_the_other_version = {p for p in deps.photos.objects if str(job.id) not in p}
    deleted = delete_job(owner, job.id, deps)
    assert deleted.deleted_at and deleted.deletion_requested_at
    assert deleted.photos_deleted_at and deleted.replicate_file_deleted_at
    assert deleted.model_version_deleted_at and deps.trainer.deleted_versions == [VERSION]
    assert set(deps.photos.objects) == photos_of_the_other_version
    assert not any(str(job.id) in f for f in deps.trainer.files)
    assert deleted.furrsona_name == DELETED_NAME
    assert deleted.customization_data == {} and deleted.photo_urls == []
    assert deleted.status is JobStatus.COMPLETED  # the status machine is untouched
    for route in (get_status, start_training, cancel_job):
        with raises_status(404):
            route(owner, job.id, deps)
    # Idempotent: the same answer, nothing done twice.
    assert delete_job(owner, job.id, deps) == deleted
    assert deps.trainer.deleted_versions == [VERSION]


def test_delete_during_training_cancels_it_first(deps):
    owner = uuid.uuid4()
    job = training_job(deps, owner)
    deleted = delete_job(owner, job.id, deps)
    assert deleted.deleted_at and deleted.status is JobStatus.FAILED
    assert deleted.failure_code is FailureCode.DELETED_BY_USER
    assert deps.trainer.trainings[job.replicate_training_id].status == "canceled"
    assert deps.trainer.deleted_versions == []  # it never produced one


def test_a_delete_while_replicate_fails_is_finished_by_the_sweep(deps, monkeypatch):
    owner = uuid.uuid4()
    job = superseded_job(deps, owner)

    def down(*args):
        raise UpstreamError("Replicate failed")

    with monkeypatch.context() as patch:
        patch.setattr(deps.trainer, "delete_model_version", down)
        pending = delete_job(owner, job.id, deps)
        assert pending.deletion_requested_at and pending.deleted_at is None
        # What could be removed is removed and stamped; the job is already hidden.
        assert pending.photos_deleted_at
        assert not any(str(job.id) in p for p in deps.photos.objects)
        assert pending.replicate_file_deleted_at and pending.model_version_deleted_at is None
        with raises_status(404):
            get_status(owner, job.id, deps)
        assert sweep(deps).errors == 1
    report = sweep(deps)
    assert report.errors == 0 and report.deletions_finished == 1
    assert row(deps, job.id).deleted_at and deps.trainer.deleted_versions == [VERSION]


def test_retention_drops_the_zip_at_once_and_the_photos_after_the_configured_days(deps):
    owner = uuid.uuid4()
    job = completed_job(deps, owner)
    sweep(deps)
    kept = row(deps, job.id)
    assert deps.trainer.files == {} and kept.replicate_file_deleted_at
    photos = {p for p in deps.photos.objects if "/previews/" not in p}
    previews = set(deps.photos.objects) - photos
    assert kept.photos_deleted_at is None and len(photos) == 3
    assert len(previews) == deps.settings.preview_count
    days = deps.settings.photo_retention_days
    deps.jobs.rows[job.id]["completed_at"] = datetime.now(UTC) - timedelta(days=days, minutes=1)
    assert sweep(deps).changed == 1
    expired = row(deps, job.id)
    # The photos go; the previews stay with the version (they are what the person came for).
    assert expired.photos_deleted_at and set(deps.photos.objects) == previews
    # The model is what the person came for: it stays until they delete the job.
    assert expired.replicate_model_version == VERSION and deps.trainer.deleted_versions == []
    assert sweep(deps).seen == 0


def test_a_deleted_upload_is_done_at_once_and_a_late_put_is_swept_as_an_orphan(deps):
    """Issue 14.6b: 200 as soon as nothing is left (not 202 for the URLs' whole window); what a
    still-valid signed URL puts there afterwards is removed by the orphan sweep."""
    owner = uuid.uuid4()
    job = deps.jobs.insert(
        {
            "id": uuid.uuid4(),
            "user_id": owner,
            "furrsona_name": "E",
            "status": "uploading",
            "progress": 0,
            "upload_expires_at": datetime.now(UTC) + timedelta(hours=2),
        }
    )
    deps.photos.put(f"{owner}/{job.id}/upload/01", b"x", "image/jpeg")
    done = delete_job(owner, job.id, deps)
    assert done.deleted_at is not None and deps.photos.objects == {}
    late = f"{owner}/{job.id}/upload/02"
    deps.photos.put(late, b"late", "image/jpeg")  # a signed URL used after the delete
    assert sweep_orphans(deps, Deadline(30)).objects_removed == 0  # young: within the grace
    deps.photos.created[late] = datetime.now(UTC) - ORPHAN_GRACE - timedelta(seconds=1)
    assert sweep_orphans(deps, Deadline(30)).objects_removed == 1
    assert deps.photos.objects == {}


def test_someone_elses_job_cannot_be_canceled_or_deleted(deps):
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    job = training_job(deps, owner)
    for action in (cancel_job, delete_job):
        with raises_status(404):
            action(stranger, job.id, deps)
    assert row(deps, job.id).status is JobStatus.TRAINING


def test_a_cancel_whose_own_webhook_lands_first_still_reads_canceled_by_user(deps):
    owner = uuid.uuid4()
    job = training_job(deps, owner)
    real_cancel = deps.trainer.cancel_training

    def cancel_and_deliver_the_webhook(training_id):
        training = real_cancel(training_id)
        get_status(owner, job.id, deps)  # the webhook (same transition logic) fails the job first
        return training

    deps.trainer.cancel_training = cancel_and_deliver_the_webhook
    canceled = cancel_job(owner, job.id, deps)
    assert canceled.status is JobStatus.FAILED and canceled.error_message == CANCELED_MESSAGE
    assert canceled.failure_code is FailureCode.CANCELED_BY_USER
