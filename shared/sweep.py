"""The scheduled sweep (DESIGN §3): the safety net for missed webhooks and for starts that died
half-way.

- Every active job, least recently checked first: a checked job goes to the back of the queue.
- At most `sweep_concurrency` jobs at a time.
- No job is begun once the deadline (Lambda's remaining time minus a margin) has passed; those are
  reported as `skipped` and, never checked, stay at the front of the queue for the next run. The
  calls of a job already begun are bounded by the same deadline (`shared.retry`, `shared.trainer`).
- One job's trouble is logged and counted, never fatal. Outcomes are counted by this thread only.
"""

from __future__ import annotations

import enum
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from shared.models import Job, JobStatus
from shared.notify import send_pending_notices
from shared.privacy import sweep_cleanup
from shared.retry import Deadline
from shared.status import refresh
from shared.training import StartDeps
from shared.upload_expiry import expire_uploads

logger = Logger(child=True)

SWEEP_BATCH = 5000


@dataclass
class SweepReport:
    seen: int = 0
    checked: int = 0
    changed: int = 0
    errors: int = 0
    skipped: int = 0
    failed_jobs: list[str] = field(default_factory=list)


class Outcome(enum.Enum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    ERROR = "error"
    SKIPPED = "skipped"


def sweep(deps: StartDeps, deadline: Deadline) -> SweepReport:
    """Check every active job, least recently checked first, until done or past the deadline."""
    jobs = deps.jobs.list_active([JobStatus.TRAINING], SWEEP_BATCH)
    report = SweepReport(seen=len(jobs))
    if not jobs:
        return report

    def check(job: Job) -> Outcome:
        if deadline.expired():
            return Outcome.SKIPPED
        try:
            after = refresh(job, deps)
        except Exception:
            # One job's trouble never stops the others.
            logger.exception("sweep could not check a job", extra={"job_id": str(job.id)})
            return Outcome.ERROR
        moved = after.status is not job.status or after.progress != job.progress
        return Outcome.CHANGED if moved else Outcome.UNCHANGED

    workers = min(deps.settings.sweep_concurrency, len(jobs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # Workers take the jobs in list order; the outcomes come back here, in this thread.
        for job, outcome in zip(jobs, pool.map(check, jobs), strict=True):
            if outcome is Outcome.SKIPPED:
                report.skipped += 1
            elif outcome is Outcome.ERROR:
                report.errors += 1
                report.failed_jobs.append(str(job.id))
            else:
                report.checked += 1
                report.changed += outcome is Outcome.CHANGED
    if report.skipped:
        logger.warning(
            "sweep reached its deadline; the jobs not checked go first next time",
            extra={"skipped": report.skipped, "seen": report.seen},
        )
    return report


def sweep_all(deps: StartDeps, deadline: Deadline) -> dict[str, object]:
    """The scheduled invocation: every sweep task in turn, each bounded by the same deadline.

    Tasks return a small JSON-able report; one task failing never stops the next.
    """
    tasks = [
        ("trainings", lambda: sweep(deps, deadline).__dict__),
        (
            "uploads",
            lambda: expire_uploads(deps.jobs, deps.photos, deps.settings, deadline).__dict__,
        ),
        ("cleanup", lambda: sweep_cleanup(deps, deadline).__dict__),
        ("notices", lambda: send_pending_notices(deps.jobs, deps.notifier, deadline)),
    ]
    report: dict[str, object] = {}
    for name, task in tasks:
        if deadline.expired():
            report[name] = {"skipped": "deadline"}
            continue
        try:
            report[name] = task()
        except Exception:
            logger.exception("sweep task failed", extra={"task": name})
            report[name] = {"error": True}
    return report
