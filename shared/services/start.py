"""start_ai_training, and the queue every start goes through (batch training).

A person's start puts the job in line (`pending -> queued`); admission, one database function
for every caller (`admit_trainings`: the cap on trainings in flight, the daily budget, the
per-owner cap, owners taking turns), lets queued jobs train by moving them to `training` with a
fresh claim, and whoever admitted them launches them through the same claimed-start code as
ever (`shared.services.launch`). Admission runs:
- on every start call (the caller's job, if it is its turn, starts at once: the same 202);
- when a training ends (webhook, status call or sweep: a slot is free);
- on every sweep (the safety net).
A crash between admission and the create call leaves a claimed job without a training: the
stalled start the sweep resumes, never lost and never started twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger

from shared.domain.admission import AdmissionRules, Admitted
from shared.domain.claims import stalled_start
from shared.domain.job import FailureCode, Job, JobStatus, failed
from shared.domain.queue import QueuePlace, place_in_line
from shared.errors import AppError, ErrorCode
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import record_admitted, record_queue, record_training_finished
from shared.services.common import TaskReport, for_each_job, owned_job, tally
from shared.services.deps import Deps
from shared.services.launch import launch, resume_stalled_start

logger = Logger(child=True)

# A start call or a finished training lets in as many jobs as it launches itself: one.
ADMIT_PER_CALL = 1


def start_training(user_id: uuid.UUID, job_id: uuid.UUID, deps: Deps) -> Job:
    """The job as this start leaves it: queued, training, or completed (starting is idempotent).
    A job that has failed, before or during this start, is refused (409 `job_failed`): it can
    never train, and an answer that looked like a start would hide that."""
    job = _start(user_id, job_id, deps)
    if job.status is JobStatus.FAILED:
        raise AppError(
            ErrorCode.JOB_FAILED,
            f"This job has failed and cannot be started again: {job.error_message}",
        )
    return job


def _start(user_id: uuid.UUID, job_id: uuid.UUID, deps: Deps) -> Job:
    job = owned_job(deps.jobs, job_id, user_id)
    if job.status is JobStatus.UPLOADING:
        raise AppError(
            ErrorCode.UPLOAD_INCOMPLETE,
            "The photos of this job are not uploaded yet; complete the upload first.",
        )
    now = datetime.now(UTC)
    if stalled_start(job, deps.settings, now):
        return resume_stalled_start(job, deps, now)  # the earlier start died half-way
    if job.status is JobStatus.PENDING:
        # Lost to a concurrent call? It queued the job just the same.
        deps.jobs.update(
            job_id,
            {"status": JobStatus.QUEUED, "queued_at": deps.clock()},
            expect_status=JobStatus.PENDING,
        )
        job = owned_job(deps.jobs, job_id, user_id)
    if job.status is not JobStatus.QUEUED:
        return job  # already started or finished: idempotent answer
    for launched in admit_and_launch(deps, ADMIT_PER_CALL, own_job=job_id):
        if launched.id == job_id:
            return launched
    return owned_job(deps.jobs, job_id, user_id)


def admit_and_launch(deps: Deps, limit: int, *, own_job: uuid.UUID | None = None) -> list[Job]:
    """Let up to `limit` queued jobs in (whoever's turn it is) and launch each; the jobs as their
    launches left them. A launch that fails leaves its claim for the sweep to resume, and is
    only logged, unless it is `own_job`'s (the caller hears about their own)."""
    admitted = deps.queue.admit(AdmissionRules.of(deps.settings), limit, deps.clock())
    launched: list[Job] = []
    for entry in admitted:
        job = deps.jobs.get(entry.job_id)
        if job is None:
            continue
        if job.queued_at is not None and job.admitted_at is not None:
            # Two clocks (the database's queued_at, the caller's admitted_at): never below 0.
            record_admitted(max(0.0, (job.admitted_at - job.queued_at).total_seconds()))
        try:
            launched.append(launch(job, entry.claim_token, deps))
        except Exception:
            if entry.job_id == own_job:
                raise
            logger.exception(
                "an admitted job did not start yet; the sweep resumes it",
                extra={"job_id": str(entry.job_id)},
            )
    return launched


def admit_next(deps: Deps) -> None:
    """A training just ended: the next job in line takes its slot. Never fails the caller (a
    webhook, a status read or the sweep has its own work done); the sweep admits otherwise."""
    try:
        admit_and_launch(deps, ADMIT_PER_CALL)
    except Exception:
        logger.exception("admission after a finished training failed; the sweep admits later")


def queue_place(job: Job, deps: Deps) -> QueuePlace | None:
    """A queued job's place in line, expected start and a sentence; None for any other job."""
    if job.status is not JobStatus.QUEUED:
        return None
    rules = AdmissionRules.of(deps.settings)
    now = deps.clock()
    snapshot = deps.queue.place(job.id, rules.per_user, now)
    if snapshot is None:
        return None  # admitted (or canceled) since the row was read
    return place_in_line(snapshot, rules, deps.settings, now)


# Jobs one sweep admits at most (each launch zips photos and uploads them).
SWEEP_ADMISSIONS = 50

QUEUE_EXPIRED_MESSAGE = (
    "Your training waited in line too long and was not started; upload your photos again to "
    "start a new one."
)


@dataclass
class QueueReport(TaskReport):
    depth: int = 0  # queued when the sweep looked
    in_flight: int = 0
    admitted: int = 0
    started: int = 0
    back_in_line: int = 0  # Replicate throttled their start
    expired: int = 0
    positions_written: int = 0  # queued jobs whose place in line moved


def sweep_queue(deps: Deps, deadline: Deadline) -> QueueReport:
    """The queue's safety net, every sweep: fail jobs that waited longer than
    `queue_max_wait_hours`, fill the free slots (launching in parallel, none past the deadline),
    and report the queue for its metrics and alarm."""
    settings, now = deps.settings, deps.clock()
    report = QueueReport()
    too_old = now - timedelta(hours=settings.queue_max_wait_hours)
    for job in deps.jobs.list_waiting(too_old, SWEEP_ADMISSIONS):
        ended = deps.jobs.update(
            job.id,
            failed(FailureCode.QUEUE_EXPIRED, QUEUE_EXPIRED_MESSAGE),
            expect_status=JobStatus.QUEUED,
        )
        if ended is not None:
            report.expired += 1
            record_training_finished(ended)
    stats = deps.queue.stats(now)
    oldest = (now - stats.oldest_queued_at).total_seconds() if stats.oldest_queued_at else 0.0
    record_queue(stats.depth, stats.in_flight, max(oldest, 0.0), stats.spent_today)
    report.depth, report.in_flight = stats.depth, stats.in_flight
    room = min(settings.max_concurrent_trainings - stats.in_flight, SWEEP_ADMISSIONS)
    if stats.depth == 0 or deadline.expired():
        return report
    admitted = deps.queue.admit(AdmissionRules.of(settings), room, now) if room > 0 else []
    # Every place in line, in one statement, for the status reads and Realtime.
    report.positions_written = deps.queue.refresh_positions(settings.max_trainings_per_user, now)
    report.seen = report.admitted = len(admitted)

    def start(entry: Admitted) -> Job | None:
        job = deps.jobs.get(entry.job_id)
        return None if job is None else launch(job, entry.claim_token, deps)

    outcomes = for_each_job(
        admitted,
        start,
        deadline=deadline,
        workers=settings.sweep_concurrency,
        failure="an admitted job did not start yet; its claim is resumed later",
    )

    def count(report: QueueReport, _: Admitted, job: Job | None) -> None:
        if job is not None and job.status is JobStatus.QUEUED:
            report.back_in_line += 1
        elif job is not None and job.replicate_training_id:
            report.started += 1

    return tally(report, outcomes, count)
