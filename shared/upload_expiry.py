"""The end of a signed upload nobody completed (DESIGN §3): a job left `uploading` past its
upload window is failed and its objects removed. Run by the scheduled sweep (`shared.sweep`) and
by a late `POST /uploads/{jobId}/complete`.

Kept apart from `shared.signed_upload` so the status function's sweep does not import Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger

from shared.jobs import JobStore
from shared.models import Job, JobStatus
from shared.photo_store import PhotoStore
from shared.retry import Deadline
from shared.settings import Settings

logger = Logger(child=True)

# An upload only has to start before its URL expires (reference/supabase.md 4, storage#282):
# give the last PUT of a slow phone connection time to land before the job is given up.
UPLOAD_GRACE = timedelta(minutes=5)
EXPIRY_BATCH = 1000
UPLOAD_EXPIRED_MESSAGE = (
    "Your photos did not all arrive before the upload links expired; start a new upload."
)


@dataclass
class UploadExpiryReport:
    seen: int = 0
    expired: int = 0
    errors: int = 0
    skipped: int = 0


def upload_window_closed(job: Job, settings: Settings, now: datetime) -> bool:
    expires = job.upload_expires_at or job.created_at + timedelta(
        seconds=settings.upload_window_seconds
    )
    return now > expires + UPLOAD_GRACE


def expire_job(job: Job, jobs: JobStore, photos: PhotoStore) -> bool:
    """Fail a job still waiting for its photos and remove its objects; False if it moved on."""
    failed = jobs.update(
        job.id,
        {"status": JobStatus.FAILED, "error_message": UPLOAD_EXPIRED_MESSAGE},
        expect_status=JobStatus.UPLOADING,
    )
    if failed is None:
        return False
    # Failed first: a complete racing with us then loses its move and cleans up after itself.
    photos.remove(job_objects(job, photos))
    return True


def job_objects(job: Job, photos: PhotoStore) -> list[str]:
    """Every object of the job: the paths on its row and whatever is under its folder."""
    return sorted(set(job.photo_urls) | set(photos.list_names(f"{job.user_id}/{job.id}")))


def expire_uploads(
    jobs: JobStore, photos: PhotoStore, settings: Settings, deadline: Deadline
) -> UploadExpiryReport:
    """The sweep's task: fail every job left `uploading` past its window, remove its objects."""
    waiting = jobs.list_active([JobStatus.UPLOADING], EXPIRY_BATCH)
    report = UploadExpiryReport(seen=len(waiting))
    now = datetime.now(UTC)
    for job in waiting:
        if not upload_window_closed(job, settings, now):
            continue
        if deadline.expired():
            report.skipped += 1
            continue
        try:
            report.expired += expire_job(job, jobs, photos)
        except Exception:
            logger.exception("could not expire an upload", extra={"job_id": str(job.id)})
            report.errors += 1
    return report
