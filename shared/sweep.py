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

from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from shared.jobs import Attempt, for_each_job
from shared.models import Job, JobStatus
from shared.notify import send_pending_notices
from shared.observability import record_sweep
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


def sweep(deps: StartDeps, deadline: Deadline) -> SweepReport:
    """Check every active job, least recently checked first, until done or past the deadline."""
    jobs = deps.jobs.list_active([JobStatus.TRAINING], SWEEP_BATCH)
    report = SweepReport(seen=len(jobs))

    def moved(job: Job) -> bool:
        after = refresh(job, deps)
        return after.status is not job.status or after.progress != job.progress

    outcomes = for_each_job(
        jobs,
        moved,
        deadline=deadline,
        workers=deps.settings.sweep_concurrency,
        failure="sweep could not check a job",
    )
    # Counted here, in this thread.
    for job, attempt, changed in outcomes:
        if attempt is Attempt.SKIPPED:
            report.skipped += 1
        elif attempt is Attempt.FAILED:
            report.errors += 1
            report.failed_jobs.append(str(job.id))
        else:
            report.checked += 1
            report.changed += bool(changed)
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
    record_sweep(report)
    return report
