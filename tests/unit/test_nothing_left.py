"""Issue 14.5 and 14.6 on the fakes: a deleted account leaves nothing, and nothing strands (zips
no row knows, jobs never started, a canceled upload's originals, deletions Replicate refuses)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

from shared.domain.job import FailureCode, JobStatus
from shared.plumbing.deadline import Deadline
from shared.services.deps import Deps
from shared.services.erasure import sweep_account_erasures
from shared.services.orphans import sweep_orphans
from shared.services.privacy import cancel_job, delete_job
from shared.services.start import admit_and_launch
from shared.services.sweep import sweep_all
from shared.services.upload_expiry import expire_unstarted
from tests.fakes import FakeTrainer, InMemoryJobStore
from tests.unit.helpers import make_deps
from tests.unit.test_privacy_rules import (
    VERSION,
    completed_job,
    new_job,
    superseded_job,
    training_job,
)


def fakes(deps: Deps) -> tuple[InMemoryJobStore, FakeTrainer]:
    assert isinstance(deps.jobs, InMemoryJobStore) and isinstance(deps.trainer, FakeTrainer)
    return deps.jobs, deps.trainer


# --------------------------------------------------------------------------- 14.5


def test_deleting_an_account_mid_training_and_after_completion_leaves_nothing(deps):
    jobs, trainer = fakes(deps)
    owner, neighbour = uuid.uuid4(), uuid.uuid4()
    done = completed_job(deps, owner)
    running = training_job(deps, owner)  # a second twin, training
    kept = completed_job(deps, neighbour)
    deps.photos.put(f"{owner}/stray.jpg", b"x", "image/jpeg")  # outside any job folder
    jobs.delete_account(owner)  # the auth.users row goes: the cascade takes the rows
    assert [j for j in jobs.rows.values() if j["user_id"] == owner] == []

    report = sweep_account_erasures(deps, Deadline(30))
    assert report.finished == 1 and report.errors == 0
    assert trainer.trainings[running.replicate_training_id or ""].status == "canceled"
    assert VERSION in trainer.deleted_versions  # the completed version
    assert not any(p.startswith(f"{owner}/") for p in deps.photos.objects)
    for job in (done, running):
        assert job.replicate_file_id not in trainer.files
    # Only an anonymous record is left of the person.
    (erasure,) = jobs.erasures.values()
    assert erasure["user_id"] is None and erasure["storage_prefix"] is None
    assert erasure["jobs"] == [] and erasure["twin_ids"] == []
    assert str(owner) not in repr(erasure)
    assert erasure["summary"]["jobs"] == 2 and erasure["summary"]["trainings_canceled"] == 1
    # The neighbour keeps everything.
    assert deps.jobs.get(kept.id) is not None and kept.replicate_file_id is not None
    assert any(p.startswith(f"{neighbour}/") for p in deps.photos.objects)
    # Idempotent: nothing more to do.
    assert sweep_account_erasures(deps, Deadline(30)).seen == 0


def test_an_erasure_waits_for_a_start_that_may_still_create_a_training(deps):
    jobs, trainer = fakes(deps)
    owner = uuid.uuid4()
    job = training_job(deps, owner)
    # As if the start uploaded the zip and was cut short before recording the training.
    jobs.rows[job.id]["replicate_training_id"] = None
    trainer.trainings.clear()
    jobs.delete_account(owner)
    assert sweep_account_erasures(deps, Deadline(30)).waiting == 1  # the claim is still live
    (erasure,) = jobs.erasures.values()
    assert erasure["finished_at"] is None and erasure["user_id"] == owner
    # The start created it after all: the next pass finds it by its zip and cancels it.
    created = trainer.create_training(job.replicate_file_url or "", None)
    for entry in erasure["jobs"]:
        entry["claimed_at"] = entry["last_checked_at"] = datetime.now(UTC) - timedelta(hours=1)
    assert sweep_account_erasures(deps, Deadline(30)).finished == 1
    assert trainer.trainings[created.id].status == "canceled"


def test_queued_jobs_of_a_deleted_account_are_never_admitted(deps):
    jobs, trainer = fakes(deps)
    owner = uuid.uuid4()
    job = new_job(deps, owner)
    deps.jobs.update(job.id, {"status": JobStatus.QUEUED, "queued_at": datetime.now(UTC)})
    jobs.delete_account(owner)
    assert admit_and_launch(deps, 10) == []
    assert trainer.trainings_created == 0 and trainer.files == {}


def test_the_sweep_runs_the_erasure(deps):
    jobs, _ = fakes(deps)
    owner = uuid.uuid4()
    new_job(deps, owner)
    jobs.delete_account(owner)
    report = sweep_all(deps, Deadline(30))
    assert report["accounts"]["finished"] == 1
    assert deps.photos.objects == {}


# --------------------------------------------------------------------------- 14.6


def test_a_zip_no_row_records_is_deleted_once_no_start_can_record_it(deps):
    _, trainer = fakes(deps)
    owner = uuid.uuid4()
    job = training_job(deps, owner)
    stray = trainer.upload_zip(io.BytesIO(b"zip"), "x.zip", str(job.id))
    gone_job = str(uuid.uuid4())  # a job whose row is gone
    orphan = trainer.upload_zip(io.BytesIO(b"zip"), "y.zip", gone_job)
    assert sweep_orphans(deps, Deadline(30)).zips_deleted == 0  # young: a start may record it
    for file_id in (stray.id, orphan.id, job.replicate_file_id or ""):
        named = trainer.file_jobs[file_id][0]
        trainer.file_jobs[file_id] = (named, datetime(2026, 1, 1, tzinfo=UTC))
    report = sweep_orphans(deps, Deadline(30))
    assert report.zips_deleted == 2
    assert set(trainer.files) == {job.replicate_file_id}  # the recorded zip stays


def test_a_job_uploaded_but_never_started_expires_and_its_photos_go():
    deps = make_deps(unstarted_job_expiry_hours=1)
    owner = uuid.uuid4()
    old, fresh = new_job(deps, owner), new_job(deps, uuid.uuid4())
    jobs, _ = fakes(deps)
    jobs.rows[old.id]["progress_changed_at"] = datetime.now(UTC) - timedelta(hours=2)
    report = expire_unstarted(deps, Deadline(30))
    assert report.expired == 1
    after = deps.jobs.get(old.id)
    assert after is not None and after.status is JobStatus.FAILED
    assert after.failure_code is FailureCode.NEVER_STARTED and after.photos_deleted_at
    assert not deps.photos.list_names(str(owner))
    assert deps.jobs.get(fresh.id).status is JobStatus.PENDING  # type: ignore[union-attr]


def test_a_canceled_upload_loses_its_raw_originals_at_once(deps):
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
    deps.photos.put(f"{owner}/{job.id}/upload/01", b"gps and all", "image/jpeg")
    canceled = cancel_job(owner, job.id, deps)
    assert canceled.status is JobStatus.FAILED and canceled.photos_deleted_at is not None
    assert deps.photos.objects == {}


def test_a_deletion_replicate_refuses_for_good_is_alarmed_not_retried(deps):
    _, trainer = fakes(deps)
    owner = uuid.uuid4()
    job = superseded_job(deps, owner)
    trainer.refuse_deletions_with = 409
    deleted = delete_job(owner, job.id, deps)
    assert deleted.replicate_deletion_refused_at is not None
    # Nothing else left: the deletion finishes (200), and the sweep no longer tries.
    assert deleted.deleted_at is not None
    due = deps.jobs.list_cleanup_due(datetime.now(UTC), 100)
    assert job.id not in {j.id for j in due}


def test_an_erasure_replicate_refuses_is_counted_once_and_not_retried(deps):
    jobs, trainer = fakes(deps)
    owner = uuid.uuid4()
    job = training_job(deps, owner)
    jobs.rows[job.id]["replicate_training_id"] = None  # a start cut short: the erasure waits
    trainer.trainings.clear()
    trainer.refuse_deletions_with = 403
    jobs.delete_account(owner)
    assert sweep_account_erasures(deps, Deadline(30)).waiting == 1
    (erasure,) = jobs.erasures.values()
    assert erasure["summary"]["deletions_refused"] == 1
    assert erasure["jobs"][0]["file_id"] is None  # not asked again
    for entry in erasure["jobs"]:
        entry["claimed_at"] = entry["last_checked_at"] = datetime.now(UTC) - timedelta(hours=1)
    assert sweep_account_erasures(deps, Deadline(30)).finished == 1
    (erasure,) = jobs.erasures.values()
    assert erasure["summary"]["deletions_refused"] == 1 and erasure["user_id"] is None
