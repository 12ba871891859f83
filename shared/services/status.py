"""check_training_status: answer a job's status, follow Replicate, apply its webhooks.

A training job's status and its webhooks are what this function serves most; the branches that
run once in a job's life (its end: the next job admitted, its first pictures, its notice; a
stalled start resumed) or only for some jobs (a queued one's place, a completed one's pictures)
import their code when they first run, so a cold start for a training job does not pay for them
(bench cold_start)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.contract.previews import PreviewSetView
from shared.contract.status import StatusResponse
from shared.domain.claims import stalled_start
from shared.domain.job import FailureCode, Job, JobStatus, failed, poll_after_seconds
from shared.domain.progress import history_points, plan_update
from shared.domain.trainer_logs import LogReading, read_logs
from shared.domain.training import TrainingInfo
from shared.errors import AppError, ErrorCode, UpstreamError
from shared.plumbing import json_input, webhooks
from shared.plumbing.observability import record_training_finished
from shared.plumbing.settings import Settings
from shared.services.common import owned_job
from shared.services.deps import Deps

logger = Logger(child=True)


LOGS_TAIL_CHARS = 2000  # of a failed training's logs, kept in our logs next to its raw error


def apply_training(
    job: Job,
    training: TrainingInfo,
    deps: Deps,
    *,
    extra: dict | None = None,
    planned: dict | None = None,
    reading: LogReading | None = None,
) -> Job:
    """Move the row to what `training` says, if it is still in the state we read.

    `planned`: the `plan_update` of this job and training (and `reading` its logs read), when
    the caller made them already."""
    reading = reading or read_logs(training.logs)
    if planned is None:
        planned = plan_update(job, training, datetime.now(UTC), deps.settings, reading)
    if points := history_points(job, reading, planned):
        # Before the row: if the row's write is lost, the next refresh derives these again
        # (a bucket kept already stays), so no point is ever skipped.
        deps.jobs.add_progress_points(job.id, points)
    changes = {**planned, **(extra or {})}
    if training.is_terminal and job.status is JobStatus.TRAINING:
        _log_finished(job, training)
    return _write(job, changes, deps)


def _write(job: Job, changes: dict, deps: Deps) -> Job:
    """`changes` on the row if it is still in the state we read, then settle what moved."""
    updated = deps.jobs.update(job.id, changes, expect_status=job.status)
    if updated is None:  # moved meanwhile (webhook vs sweep): the newer row wins
        return _settle(job, deps.jobs.get(job.id) or job, deps, moved_by_us=False)
    return _settle(job, updated, deps, moved_by_us=True)


def _log_finished(job: Job, training: TrainingInfo) -> None:
    """The raw upstream detail, which the person's error message leaves out, for operators."""
    detail: dict = {
        "job_id": str(job.id),
        "training_id": training.id,
        "replicate_status": training.status,
        "predict_time": training.predict_time,
    }
    if training.status == "succeeded":
        logger.info("training finished", extra=detail)
        return
    detail.update(error=training.error, logs_tail=(training.logs or "")[-LOGS_TAIL_CHARS:])
    logger.warning("training failed", extra=detail)


def _settle(before: Job, after: Job, deps: Deps, *, moved_by_us: bool) -> Job:
    """Count a training this call ended and give its slot to the next job in line, and make
    sure its notice goes out (once, whoever ended it: a webhook and the sweep may both get here
    for the same job), with its previews first (made once, whoever ended it; the notice waits a
    while for them)."""
    if not after.status.is_final:
        return after
    if moved_by_us and before.status is JobStatus.TRAINING:
        from shared.services.start import admit_next

        record_training_finished(after)
        admit_next(deps)
    if after.status is JobStatus.COMPLETED and after.previews_requested_at is None:
        from shared.services.previews import start_completion_previews

        start_completion_previews(after, deps)
        after = deps.jobs.get(after.id) or after
    from shared.services.notices import notify_once

    notify_once(after, deps)
    return after


def refresh(job: Job, deps: Deps) -> Job:
    """Read Replicate for an active job and move the row."""
    now = datetime.now(UTC)
    if job.status is not JobStatus.TRAINING:
        return job
    if job.replicate_training_id is None:
        if not stalled_start(job, deps.settings, now):
            return job
        from shared.services.launch import resume_stalled_start

        return resume_stalled_start(job, deps, now)
    training = deps.trainer.get_training(job.replicate_training_id)
    if training is None:
        return _fail(
            job,
            deps,
            FailureCode.TRAINING_LOST,
            "Replicate has no record of this training any more; start a new one.",
        )
    reading = read_logs(training.logs)
    planned = plan_update(job, training, now, deps.settings, reading)
    if not training.is_terminal and _stuck(job, training, planned, now, deps.settings):
        deps.trainer.cancel_training(training.id)  # first: a failed row would never cancel it
        return _fail(
            job,
            deps,
            FailureCode.STALLED,
            f"The training made no progress for {deps.settings.training_stale_minutes:g} "
            "minutes and was canceled; start a new training.",
        )
    return apply_training(job, training, deps, planned=planned, reading=reading)


def _stuck(
    job: Job, training: TrainingInfo, planned: dict, now: datetime, settings: Settings
) -> bool:
    """No progress for `training_stale_minutes`, counted from the row's last progress change
    (however long the training has run), unless what Replicate says now (`planned`, from
    `plan_update`) is itself progress."""
    if planned.get("progress", job.progress) > job.progress:
        return False
    if training.status != job.last_replicate_status:
        return False
    since = job.progress_changed_at or training.created_at
    return since is not None and now - since > timedelta(minutes=settings.training_stale_minutes)


def _fail(job: Job, deps: Deps, code: FailureCode, message: str) -> Job:
    changes = {**failed(code, message), "last_checked_at": datetime.now(UTC)}
    return _write(job, changes, deps)  # job.status is TRAINING: refresh returned otherwise


def status_answer(job: Job, deps: Deps, *, with_history: bool = False) -> StatusResponse:
    """The status answer of a job: with its twin (is this the active version?), when to ask
    again (from the refresh interval and the job's state) and, on request, its progress history
    (one more database read)."""
    twin = deps.twins.get(job.twin_id) if job.twin_id else None
    wait = poll_after_seconds(job, deps.settings.status_refresh_seconds, datetime.now(UTC))
    history = deps.jobs.progress_points(job.id) if with_history else None
    previews = place = None
    if job.status is JobStatus.COMPLETED:
        from shared.services.previews import signed_sets

        signed = signed_sets([job.id], deps)
        previews = PreviewSetView.of_set(signed.completion(job.id), signed.urls, signed.expires_at)
    elif job.status is JobStatus.QUEUED:
        from shared.services.start import queue_place

        place = queue_place(job, deps)
    return StatusResponse.of(job, twin, wait, history, place, previews)


def get_status(user_id: UUID, job_id: UUID, deps: Deps) -> Job:
    """The caller's job; Replicate is read at most once per refresh interval per job."""
    job = owned_job(deps.jobs, job_id, user_id)
    if job.status is not JobStatus.TRAINING:
        return job
    interval = timedelta(seconds=deps.settings.status_refresh_seconds)
    now = datetime.now(UTC)
    if job.last_checked_at is not None and now - job.last_checked_at < interval:
        return job
    try:
        # Of many callers at once (open tabs), only the one that moves `last_checked_at` reads
        # Replicate; the others answer from the row.
        if not deps.jobs.compare_and_set(job.id, "last_checked_at", job.last_checked_at, now):
            return job
        return refresh(job, deps)
    except UpstreamError:
        # Replicate is having trouble: the row is still the truth we have; the sweep catches up.
        logger.warning(
            "status refresh failed; answering from the row", extra={"job_id": str(job_id)}
        )
        return job


def apply_webhook(job_id: UUID, headers: dict[str, str], body: bytes, deps: Deps) -> Job:
    """A verified Replicate webhook, applied once, with the same transition logic as polling."""
    secret = deps.settings.replicate_webhook_secret
    if secret is None:
        raise UpstreamError(
            "Webhooks are not configured on this deployment.", ErrorCode.WEBHOOKS_DISABLED
        )
    webhook_id = webhooks.verify(secret.get_secret_value(), headers, body)
    try:
        # Signed by Replicate, yet bounded all the same: a deep body must not reach the parser.
        payload = json_input.loads(body, plain_strings=False)
        training = TrainingInfo.model_validate(payload)
    except ValueError:
        raise AppError(
            ErrorCode.BAD_WEBHOOK, "The webhook body is not a training object."
        ) from None
    job = deps.jobs.get(job_id)
    if job is None:
        raise AppError(ErrorCode.JOB_NOT_FOUND, "No training job with this id.")
    extra: dict = {"last_webhook_id": webhook_id}
    zip_url = training.input.get("input_images")
    if job.replicate_training_id is None and zip_url and zip_url == job.replicate_file_url:
        # The webhook beat the start function to saving the id; the zip proves it is ours.
        extra["replicate_training_id"] = training.id
    elif job.replicate_training_id != training.id:
        raise AppError(
            ErrorCode.TRAINING_MISMATCH, "This webhook is for a different training than the job's."
        )
    if job.last_webhook_id == webhook_id or job.status.is_final:
        # A redelivery, or a late event (e.g. `start` redelivered after `completed`): nothing
        # left to apply, and the row must not change.
        return job
    return apply_training(job, training, deps, extra=extra)
