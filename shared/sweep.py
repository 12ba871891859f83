"""The scheduled sweep (DESIGN §3): every active job checked, least recently checked first, with
bounded concurrency, within the invocation's time. It is the safety net for missed webhooks and
for starts that died half-way."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger

from shared.models import Job, JobStatus
from shared.retry import Deadline
from shared.status import refresh
from shared.training import StartDeps

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
    """Check every active job, least recently checked first, until done or near the deadline."""
    jobs = deps.jobs.list_active([JobStatus.TRAINING], SWEEP_BATCH)
    report = SweepReport(seen=len(jobs))

    def check(job: Job) -> None:
        if deadline.expired():
            report.skipped += 1
            return
        try:
            after = refresh(job, deps)
            report.checked += 1
            if after.status is not job.status or after.progress != job.progress:
                report.changed += 1
        except Exception:
            # One job's trouble never stops the others.
            report.errors += 1
            report.failed_jobs.append(str(job.id))
            logger.exception("sweep could not check a job", extra={"job_id": str(job.id)})

    with ThreadPoolExecutor(max_workers=deps.settings.sweep_concurrency) as pool:
        list(pool.map(check, jobs))
    return report


def sweep_all(deps: StartDeps, deadline: Deadline) -> dict[str, object]:
    """The scheduled invocation: every sweep task in turn, each bounded by the same deadline.

    Tasks return a small JSON-able report; one task failing never stops the next.
    """
    tasks = [("trainings", lambda: sweep(deps, deadline).__dict__)]
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
