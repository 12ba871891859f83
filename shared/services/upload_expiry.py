"""The end of a signed upload nobody completed: a job left `uploading` past its upload window
is failed and its objects removed. Run by the scheduled sweep (`shared.services.sweep`) and by a
late `POST /uploads/{jobId}/complete`.

Kept apart from `shared.services.signed_upload` so the status function's sweep does not import
Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.domain.job import FailureCode, Job, JobStatus, failed
from shared.domain.storage_paths import job_folder
from shared.plumbing.deadline import Deadline
from shared.plumbing.settings import Settings
from shared.ports import JobStore, PhotoStore
from shared.services.common import TaskReport, for_each_job, tally
from shared.services.deps import Deps

# An upload only has to start before its URL expires (Supabase storage issue 282):
# give the last PUT of a slow phone connection time to land before the job is given up.
UPLOAD_GRACE = timedelta(minutes=5)


EXPIRY_BATCH = 1000


UPLOAD_EXPIRED_MESSAGE = (
    "Your photos did not all arrive before the upload links expired; start a new upload."
)


@dataclass
class UploadExpiryReport(TaskReport):
    expired: int = 0


def upload_window_closed(job: Job, settings: Settings, now: datetime) -> bool:
    expires = job.upload_expires_at or job.created_at + timedelta(
        seconds=settings.upload_window_seconds
    )
    return now > expires + UPLOAD_GRACE


def expire_job(job: Job, jobs: JobStore, photos: PhotoStore) -> bool:
    """Fail a job still waiting for its photos and remove its objects; False if it moved on."""
    expired = jobs.update(
        job.id,
        failed(FailureCode.UPLOAD_EXPIRED, UPLOAD_EXPIRED_MESSAGE),
        expect_status=JobStatus.UPLOADING,
    )
    if expired is None:
        return False
    # Failed first: a complete racing with us then loses its move and cleans up after itself.
    photos.remove(job_objects(job, photos))
    # Stamped: anything a still-valid signed URL puts there later is an orphan the sweep removes.
    jobs.update(job.id, {"photos_deleted_at": datetime.now(UTC)})
    return True


NEVER_STARTED_MESSAGE = (
    "Your photos were uploaded but the training was never started, so we removed them; "
    "upload them again to train."
)


@dataclass
class UnstartedReport(TaskReport):
    expired: int = 0


def expire_unstarted_job(job: Job, deps: Deps, now: datetime) -> bool:
    """Fail a job that was uploaded but never started, then remove its photos; False if it was
    started meanwhile (pending -> queued wins the compare-and-set)."""
    expired = deps.jobs.update(
        job.id,
        failed(FailureCode.NEVER_STARTED, NEVER_STARTED_MESSAGE),
        expect_status=JobStatus.PENDING,
    )
    if expired is None:
        return False
    deps.photos.remove(job_objects(job, deps.photos))
    deps.jobs.update(job.id, {"photos_deleted_at": now})
    return True


def expire_unstarted(deps: Deps, deadline: Deadline) -> UnstartedReport:
    """The sweep's task: jobs uploaded (pending) longer than `unstarted_job_expiry_hours` ago and
    never started are failed, and their photos removed at once."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(hours=deps.settings.unstarted_job_expiry_hours)
    pending = deps.jobs.list_active([JobStatus.PENDING], EXPIRY_BATCH)
    due = [job for job in pending if (job.progress_changed_at or job.created_at) < cutoff]
    outcomes = for_each_job(
        due,
        lambda job: expire_unstarted_job(job, deps, now),
        deadline=deadline,
        workers=deps.settings.sweep_concurrency,
        failure="could not expire a job that was never started",
    )

    def count(report: UnstartedReport, _: Job, expired: bool) -> None:
        report.expired += expired

    return tally(UnstartedReport(seen=len(pending)), outcomes, count)


def job_objects(job: Job, photos: PhotoStore) -> list[str]:
    """Every object of the job: the paths on its row and whatever is under its folder."""
    return sorted(set(job.photo_urls) | set(photos.list_names(job_folder(job.user_id, job.id))))


def expire_uploads(deps: Deps, deadline: Deadline) -> UploadExpiryReport:
    """The sweep's task: fail every job left `uploading` past its window, remove its objects."""
    waiting = deps.jobs.list_active([JobStatus.UPLOADING], EXPIRY_BATCH)
    now = datetime.now(UTC)
    due = [job for job in waiting if upload_window_closed(job, deps.settings, now)]
    outcomes = for_each_job(
        due,
        lambda job: expire_job(job, deps.jobs, deps.photos),
        deadline=deadline,
        workers=deps.settings.sweep_concurrency,
        failure="could not expire an upload",
    )

    def count(report: UploadExpiryReport, _: Job, expired: bool) -> None:
        report.expired += expired

    return tally(UploadExpiryReport(seen=len(waiting)), outcomes, count)
