"""Helpers every use case shares: the caller's job, work over many jobs and its report, quiet
clean-up."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.domain.job import Job
from shared.errors import AppError, ErrorCode
from shared.plumbing.deadline import Deadline
from shared.ports import JobStore, PhotoStore

logger = Logger(child=True)

R = TypeVar("R")


class HasId(Protocol):
    @property
    def id(self) -> UUID: ...


Item = TypeVar("Item", bound=HasId)


def job_not_found() -> AppError:
    return AppError(ErrorCode.JOB_NOT_FOUND, "No training job with this id belongs to you.")


def owned_job(jobs: JobStore, job_id: UUID, user_id: UUID, *, include_deleted: bool = False) -> Job:
    """The caller's job; someone else's job, or one being deleted, is reported like a missing one."""
    job = jobs.get(job_id)
    hidden = job is not None and job.deletion_requested_at is not None and not include_deleted
    if job is None or job.user_id != user_id or hidden:
        raise job_not_found()
    return job


class Attempt(enum.Enum):
    DONE = "done"
    FAILED = "failed"  # logged; the next sweep tries again
    SKIPPED = "skipped"  # the deadline came first


def for_each_job(
    jobs: list[Item],
    work: Callable[[Item], R],
    *,
    deadline: Deadline,
    workers: int,
    failure: str,
    log_key: str = "job_id",
) -> list[tuple[Item, Attempt, R | None]]:
    """`work` on every job (or twin), `workers` at a time, starting none past the deadline; one
    item's exception is logged as `failure` (with its id under `log_key`) and never stops the
    others. Outcomes in `jobs` order."""

    def attempt(job: Item) -> tuple[Attempt, R | None]:
        if deadline.expired():
            return Attempt.SKIPPED, None
        try:
            return Attempt.DONE, work(job)
        except Exception:
            logger.exception(failure, extra={log_key: str(job.id)})
            return Attempt.FAILED, None

    if not jobs:
        return []
    from concurrent.futures import ThreadPoolExecutor  # the sweep's tasks: not a request's path

    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return [(job, *done) for job, done in zip(jobs, pool.map(attempt, jobs), strict=True)]


@dataclass
class TaskReport:
    """What one sweep task did; each task adds its own counts. `failed_jobs` are the ids whose
    error was logged (search the logs for them)."""

    seen: int = 0
    errors: int = 0
    skipped: int = 0  # not begun: the invocation's deadline came first; they go first next time
    failed_jobs: list[str] = field(default_factory=list)


Report = TypeVar("Report", bound=TaskReport)


def tally(
    report: Report,
    outcomes: list[tuple[Item, Attempt, R | None]],
    done: Callable[[Report, Item, R], None],
) -> Report:
    """Count `for_each_job`'s outcomes into `report`, in this thread; `done` counts a success."""
    for job, attempt, result in outcomes:
        if attempt is Attempt.SKIPPED:
            report.skipped += 1
        elif attempt is Attempt.FAILED:
            report.errors += 1
            report.failed_jobs.append(str(job.id))
        else:
            done(report, job, result)  # type: ignore[arg-type]  # DONE always carries a result
    return report


def remove_quietly(photos: PhotoStore, paths: list[str]) -> None:
    # The original error matters more than a failed clean-up.
    with contextlib.suppress(Exception):
        photos.remove(paths)
