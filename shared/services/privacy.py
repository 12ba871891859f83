"""Privacy and control: a person can stop a training and take their data back, and we stop
keeping what we no longer need.

- Cancel: the training is canceled on Replicate first, then the job fails with "Canceled by user.";
  a finished job cannot be canceled (409).
- Retention: once a job is final, its zip leaves Replicate's Files API (the cancel and delete paths
  try at once, the sweep makes sure), and its photos leave Storage after `photo_retention_days`.
- Delete: the request is written first (`deletion_requested_at`: from then on the job is final,
  hidden from every route and from RLS reads); then the photos, the zip, the trained version,
  the progress history and the previews (predictions canceled, rows anonymised, pictures
  removed from the bucket) are removed, each (but the history) stamped when gone; last, the row is
  anonymised (`deleted_at`). Whatever fails is retried by the sweep until done. The row stays as a
  tombstone (ids, times, cost; no name, no customisation, no photo paths), so a repeated delete
  gets the same answer.

A start may still be running when its job is canceled or deleted: it holds a claim but has not
recorded its training. Its compare-and-set writes fail from then on, but it may already have
created the training; so until `claim_timeout_seconds` have passed, the Replicate side is looked
up by the zip (as crash recovery does) and not called clean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.domain.claims import last_sign_of_life
from shared.domain.job import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    PROGRESS_UPLOADED,
    FailureCode,
    Job,
    JobStatus,
    failed,
)
from shared.domain.phases import Phase
from shared.domain.training import CLOCK_SKEW, TrainingInfo
from shared.errors import AppError, ErrorCode
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import record_deletion_refused
from shared.ports import DeletionRefused
from shared.services.common import TaskReport, for_each_job, owned_job, tally
from shared.services.deps import Deps
from shared.services.previews import remove_previews
from shared.services.status import apply_training
from shared.services.upload_expiry import job_objects

logger = Logger(child=True)


CANCELED_MESSAGE = "Canceled by user."


DELETED_MESSAGE = "Deleted by user."


DELETED_NAME = "(deleted)"  # the column may not be blank


CLEANUP_BATCH = 500


# What a finished deletion leaves of the person: nothing but ids and times.
ANONYMISED: dict[str, Any] = {
    "furrsona_name": DELETED_NAME,
    "customization_data": {},
    "photo_urls": [],
    "photo_checksums": None,
    "estimated_completion": None,
}


# A step removes one kind of data, writing a stamp into the dict as each piece is gone; it returns
# whether that kind of data is gone for good.
Step = Callable[[dict[str, Any]], bool]


def _no_notice(job: Job) -> dict[str, Any]:
    """The person ended the job themselves: no "could not be trained" notice (shared/notify.py
    sends one only while `notified_at` is null), and none naming a job being deleted."""
    return {} if job.notified_at is not None else {"notified_at": datetime.now(UTC)}


def _refuse_if_finished(job: Job) -> None:
    if job.status.is_final:
        raise AppError(
            ErrorCode.JOB_FINISHED,
            f"This job has already {job.status.value}; there is nothing to cancel. "
            "Delete it to remove its photos and model.",
        )


def cancel_job(user_id: UUID, job_id: UUID, deps: Deps) -> Job:
    """The owner stops an active job; it fails with "Canceled by user." and is never trained."""
    job = owned_job(deps.jobs, job_id, user_id)
    _refuse_if_finished(job)
    training: TrainingInfo | None = None
    if job.status is JobStatus.TRAINING and job.replicate_training_id:
        # Replicate first: if it cannot be reached, nothing has changed and the caller can retry.
        training = deps.trainer.cancel_training(job.replicate_training_id)
        if training is not None and training.status == "succeeded":
            _refuse_if_finished(apply_training(job, training, deps))  # it finished first
    changes: dict[str, Any] = {
        **failed(FailureCode.CANCELED_BY_USER, CANCELED_MESSAGE),
        "phase": Phase.CANCELED,
        "estimated_completion": None,
        **_no_notice(job),
    }
    if training is not None:
        changes["last_replicate_status"] = training.status
    # Any active status: a concurrent start (pending -> training) loses its claim to this write.
    canceled = deps.jobs.update(job.id, changes, expect_status=ACTIVE_STATUSES)
    if canceled is None:
        current = owned_job(deps.jobs, job_id, user_id)
        if training is None or current.status is not JobStatus.FAILED:
            _refuse_if_finished(current)  # it ended on its own meanwhile
        # Our cancel's webhook failed the job first; the cancel is still the person's.
        canceled = (
            deps.jobs.update(
                job.id,
                {
                    **failed(FailureCode.CANCELED_BY_USER, CANCELED_MESSAGE),
                    "phase": Phase.CANCELED,
                    **_no_notice(current),
                },
                expect_status=JobStatus.FAILED,
            )
            or current
        )
    logger.info("job canceled by its owner", extra={"job_id": str(job.id)})
    return _tidy_now(canceled, deps)


def delete_job(user_id: UUID, job_id: UUID, deps: Deps) -> Job:
    """The owner deletes a job (one version of a twin): recorded at once, removed now as far as
    possible, else by the sweep. Idempotent: a repeated delete continues (or reports) the same
    deletion. The twin's active version is not deleted on its own (the database refuses too)."""
    job = owned_job(deps.jobs, job_id, user_id, include_deleted=True)
    if job.deletion_requested_at is None:
        refuse_deleting_the_active_version(job, deps)
    return delete_job_now(job, deps)


def delete_job_now(job: Job, deps: Deps) -> Job:
    """Record the deletion (if not yet) and remove what can be removed now; the rest is the
    sweep's. Also how a twin's deletion deletes each of its versions."""
    if job.deleted_at is not None:
        return job
    job = _mark_for_deletion(job, deps)
    return _tidy_now(job, deps)


def refuse_deleting_the_active_version(job: Job, deps: Deps) -> None:
    twin = deps.twins.get(job.twin_id) if job.twin_id else None
    if twin is not None and twin.active_job_id == job.id:
        raise AppError(
            ErrorCode.VERSION_ACTIVE,
            f"Version {job.version} is this twin's active version: activate another version "
            "first (PUT /twins/{twinId}/active), or delete the whole twin (DELETE /twins/{twinId}).",
        )


def _mark_for_deletion(job: Job, deps: Deps) -> Job:
    """Record the request before removing anything; an active job fails in the same write."""
    if job.deletion_requested_at is not None:
        return job
    now = datetime.now(UTC)
    if not job.status.is_final:
        marked = deps.jobs.update(
            job.id,
            {
                "deletion_requested_at": now,
                **failed(FailureCode.DELETED_BY_USER, DELETED_MESSAGE),
                "estimated_completion": None,
                **_no_notice(job),
            },
            expect_status=ACTIVE_STATUSES,
        )
        if marked is not None:
            logger.info("deletion requested", extra={"job_id": str(job.id)})
            return marked
    # Final already, or it became final meanwhile (a final status never changes again).
    marked = deps.jobs.update(
        job.id, {"deletion_requested_at": now, **_no_notice(job)}, expect_status=FINAL_STATUSES
    )
    if marked is None:
        raise AppError(
            ErrorCode.JOB_STATE_CHANGED, "The job changed while we were deleting it; try again."
        )
    logger.info("deletion requested", extra={"job_id": str(job.id)})
    return marked


def finish_deletion(job: Job, deps: Deps, now: datetime) -> Job:
    """Remove what is left of a job being deleted; anonymise the row once everything is gone."""
    job, settled = _run_steps(
        job,
        deps,
        [
            lambda stamps: _release_replicate(job, deps, now, stamps, keep_model=False),
            lambda stamps: _remove_photos(job, deps, now, stamps),
            lambda _: _remove_history(job, deps),
            lambda _: remove_previews(job, deps, now),
        ],
    )
    if not settled:
        return job
    finished = deps.jobs.update(job.id, {**ANONYMISED, "deleted_at": now}) or job
    logger.info("deletion finished", extra={"job_id": str(job.id)})
    return finished


def apply_retention(job: Job, deps: Deps, now: datetime) -> Job:
    """A final job: its zip leaves Replicate now, its photos once the retention has passed."""
    steps: list[Step] = [lambda stamps: _release_replicate(job, deps, now, stamps, keep_model=True)]
    cutoff = now - timedelta(days=deps.settings.photo_retention_days)
    # A job that ended while still uploading holds only raw originals (GPS and all), never
    # checked or stripped and never to be trained on: removed at once, not after the retention.
    never_uploaded = job.progress < PROGRESS_UPLOADED
    if never_uploaded or (job.completed_at is not None and job.completed_at <= cutoff):
        steps.append(lambda stamps: _remove_photos(job, deps, now, stamps))
    job, _ = _run_steps(job, deps, steps)
    return job


def tidy(job: Job, deps: Deps, now: datetime) -> Job:
    """Whatever this job still owes: the rest of its deletion, or its retention."""
    if job.deletion_requested_at is not None:
        return finish_deletion(job, deps, now)
    if job.status.is_final:
        return apply_retention(job, deps, now)
    return job


def _tidy_now(job: Job, deps: Deps) -> Job:
    """An immediate attempt at the sweep's work; trouble is logged and left to the sweep."""
    try:
        return tidy(job, deps, datetime.now(UTC))
    except Exception:
        logger.exception("cleanup left for the sweep", extra={"job_id": str(job.id)})
        return deps.jobs.get(job.id) or job


def _run_steps(job: Job, deps: Deps, steps: list[Step]) -> tuple[Job, bool]:
    """Every step runs even when another fails; what was removed is stamped, then the first
    failure is raised. True when every kind of data is gone for good."""
    stamps: dict[str, Any] = {}
    settled = True
    failure: Exception | None = None
    for step in steps:
        try:
            settled = step(stamps) and settled
        except Exception as exc:
            failure, settled = failure or exc, False
    if stamps:
        job = deps.jobs.update(job.id, stamps) or job
    if failure is not None:
        raise failure
    return job, settled


def _start_may_run(job: Job, now: datetime, deps: Deps) -> bool:
    """A start that saved the zip but not the training may still create one (claim not expired).

    The sweep's takeover of a stalled start renews `last_checked_at`, not `claimed_at`."""
    if job.replicate_training_id is not None or job.replicate_file_id is None:
        return False
    started = last_sign_of_life(job)
    window = timedelta(seconds=deps.settings.claim_timeout_seconds)
    return started is not None and now - started < window


def _job_training(job: Job, deps: Deps) -> TrainingInfo | None:
    if job.replicate_training_id:
        return deps.trainer.get_training(job.replicate_training_id)
    if job.replicate_file_url and job.claimed_at:
        return deps.trainer.find_training(job.replicate_file_url, job.claimed_at - CLOCK_SKEW)
    return None


def _release_replicate(
    job: Job, deps: Deps, now: datetime, stamps: dict[str, Any], *, keep_model: bool
) -> bool:
    """Stop the job's training if it still runs, delete its zip, and delete its trained version
    unless it is a completed job's and `keep_model`. Gone for good once no training of this job
    can still run or start."""
    training: TrainingInfo | None = None
    settled = True
    if job.replicate_file_deleted_at is None:
        training = _job_training(job, deps)
        if training is not None and not training.is_terminal:
            training = deps.trainer.cancel_training(training.id) or training
        if training is not None and job.replicate_training_id is None:
            stamps["replicate_training_id"] = training.id  # a start we cut short had created it
        if job.replicate_file_id and job.replicate_deletion_refused_at is None:
            file_id = job.replicate_file_id
            _refusable(lambda: deps.trainer.delete_file(file_id), job, stamps, now)
        if training is not None:
            settled = training.is_terminal
        else:
            settled = not _start_may_run(job, now, deps)
        if settled and job.replicate_file_id and "replicate_deletion_refused_at" not in stamps:
            stamps["replicate_file_deleted_at"] = now
    version = job.replicate_model_version
    if version is None and training is not None and training.status == "succeeded":
        # A cut-short training finished anyway: remember its version until it is deleted.
        version = stamps["replicate_model_version"] = training.model_version
    # Only a completed job can use its version; any other (a cut-short training's) is an orphan.
    keep = keep_model and job.status is JobStatus.COMPLETED
    refused_before = job.replicate_deletion_refused_at is not None
    if version and job.model_version_deleted_at is None and not keep and not refused_before:
        model_version = version
        if _refusable(lambda: deps.trainer.delete_model_version(model_version), job, stamps, now):
            stamps["model_version_deleted_at"] = now
    return settled


def _refusable(delete: Callable[[], None], job: Job, stamps: dict[str, Any], now: datetime) -> bool:
    """Run a Replicate deletion; True when done. Refused for good (403/409): stamped
    `replicate_deletion_refused_at`, never asked again, and the metric raises the alarm
    (docs/operations.md: remove it by hand)."""
    try:
        delete()
    except DeletionRefused as refused:
        stamps["replicate_deletion_refused_at"] = now
        record_deletion_refused()
        logger.error(
            "Replicate refused a deletion for good; an operator must remove it",
            extra={"job_id": str(job.id), "what": refused.what, "status": refused.status},
        )
        return False
    return True


def _remove_history(job: Job, deps: Deps) -> bool:
    """The progress history; none can come back once the job is final (the database drops
    points for a job that is not training)."""
    deps.jobs.delete_progress_points(job.id)
    return True


def _remove_photos(job: Job, deps: Deps, now: datetime, stamps: dict[str, Any]) -> bool:
    if job.photos_deleted_at is not None:
        return True
    deps.photos.remove(job_objects(job, deps.photos))
    # Gone now. A signed upload URL still valid could put a photo back: once stamped, anything
    # under the job's folder is an orphan the sweep removes (`shared.services.orphans`), so the
    # job need not wait for its URLs to expire.
    stamps["photos_deleted_at"] = now
    return True


@dataclass
class CleanupReport(TaskReport):
    changed: int = 0
    deletions_finished: int = 0


def sweep_cleanup(deps: Deps, deadline: Deadline) -> CleanupReport:
    """The sweep's privacy task: finish deletions, drop final jobs' zips, expire old photos."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=deps.settings.photo_retention_days)
    jobs = deps.jobs.list_cleanup_due(cutoff, CLEANUP_BATCH)
    outcomes = for_each_job(
        jobs,
        lambda job: tidy(job, deps, now),
        deadline=deadline,
        workers=deps.settings.sweep_concurrency,
        failure="cleanup of a job failed",
    )

    def count(report: CleanupReport, before: Job, after: Job) -> None:
        report.changed += after != before
        report.deletions_finished += after.deleted_at is not None

    return tally(CleanupReport(seen=len(jobs)), outcomes, count)
