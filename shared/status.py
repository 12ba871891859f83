"""check_training_status: answer a job's status, follow Replicate, take webhooks (DESIGN §3, §5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

from aws_lambda_powertools import Logger

from shared import webhooks
from shared.errors import BadRequest, Conflict, UpstreamError
from shared.jobs import owned_job
from shared.models import Job, JobStatus, StatusResponse
from shared.progress import plan_update
from shared.trainer import TrainingInfo
from shared.training import StartDeps, resume_stalled_start

logger = Logger(child=True)


def status_response(job: Job) -> StatusResponse:
    return StatusResponse(
        job_id=job.id,
        status=job.status,
        progress=job.progress,
        model_version=job.replicate_model_version,
        error_message=job.error_message,
        estimated_completion=job.estimated_completion,
    )


def apply_training(
    job: Job, training: TrainingInfo, deps: StartDeps, *, extra: dict | None = None
) -> Job:
    """Move the row to what `training` says, if it is still in the state we read."""
    now = datetime.now(UTC)
    changes = plan_update(job, training, now, deps.settings)
    if extra:
        changes.update(extra)
    if training.is_terminal and job.status is JobStatus.TRAINING:
        logger.info(
            "training finished",
            extra={
                "job_id": str(job.id),
                "replicate_status": training.status,
                "error": training.error,
            },
        )
    updated = deps.jobs.update(job.id, changes, expect_status=job.status)
    if updated is None:  # moved meanwhile (webhook vs sweep): the newer row wins
        return deps.jobs.get(job.id) or job
    return updated


def refresh(job: Job, deps: StartDeps) -> Job:
    """Read Replicate for an active job and move the row."""
    now = datetime.now(UTC)
    if job.status is not JobStatus.TRAINING:
        return job
    if job.replicate_training_id is None:
        stalled = job.claimed_at is None or (
            now - job.claimed_at > timedelta(seconds=deps.settings.claim_timeout_seconds)
            and (
                job.last_checked_at is None
                or now - job.last_checked_at
                > timedelta(seconds=deps.settings.claim_timeout_seconds)
            )
        )
        return resume_stalled_start(job, deps, now) if stalled else job
    training = deps.trainer.get_training(job.replicate_training_id)
    if training is None:
        return _fail(
            job, deps, "Replicate has no record of this training any more; start a new one."
        )
    if not training.is_terminal and training.created_at is not None:
        age = now - training.created_at
        if age > timedelta(minutes=deps.settings.training_stale_minutes):
            deps.trainer.cancel_training(training.id)
            return _fail(
                job,
                deps,
                f"The training made no progress within {deps.settings.training_stale_minutes:g} "
                "minutes and was canceled; start it again.",
            )
    return apply_training(job, training, deps)


def _fail(job: Job, deps: StartDeps, message: str) -> Job:
    updated = deps.jobs.update(
        job.id,
        {
            "status": JobStatus.FAILED,
            "error_message": message,
            "last_checked_at": datetime.now(UTC),
        },
        expect_status=JobStatus.TRAINING,
    )
    return updated or deps.jobs.get(job.id) or job


def get_status(user_id: UUID, job_id: UUID, deps: StartDeps) -> Job:
    """The caller's job; Replicate is read at most once per refresh interval per job."""
    job = owned_job(deps.jobs, job_id, user_id)
    if job.status is not JobStatus.TRAINING:
        return job
    interval = timedelta(seconds=deps.settings.status_refresh_seconds)
    if job.last_checked_at is not None and datetime.now(UTC) - job.last_checked_at < interval:
        return job
    try:
        return refresh(job, deps)
    except UpstreamError:
        # Replicate is having trouble: the row is still the truth we have; the sweep catches up.
        logger.warning(
            "status refresh failed; answering from the row", extra={"job_id": str(job_id)}
        )
        return job


def apply_webhook(job_id: UUID, headers: dict[str, str], body: bytes, deps: StartDeps) -> Job:
    """A verified Replicate webhook, applied once, with the same transition logic as polling."""
    secret = deps.settings.replicate_webhook_secret
    if secret is None:
        raise UpstreamError(
            "Webhooks are not configured on this deployment.", code="webhooks_disabled"
        )
    webhook_id = webhooks.verify(secret.get_secret_value(), headers, body)
    try:
        training = TrainingInfo.model_validate(json.loads(body))
    except ValueError:
        raise BadRequest("The webhook body is not a training object.", code="bad_webhook") from None
    job = deps.jobs.get(job_id)
    if job is None:
        from shared.errors import NotFound

        raise NotFound("No training job with this id.", code="job_not_found")
    extra: dict = {"last_webhook_id": webhook_id}
    zip_url = training.input.get("input_images")
    if job.replicate_training_id is None and zip_url and zip_url == job.replicate_file_url:
        # The webhook beat the start function to saving the id; the zip proves it is ours.
        extra["replicate_training_id"] = training.id
    elif job.replicate_training_id != training.id:
        raise Conflict(
            "This webhook is for a different training than the job's.", code="training_mismatch"
        )
    if job.last_webhook_id == webhook_id:
        return job  # a redelivery: already applied
    return apply_training(job, training, deps, extra=extra)
