"""The scheduled sweep: the safety net for missed webhooks and for starts that died half-way, and
the one place where time-based work happens (expired uploads, clean-up, notices to retry).

- Every active job, least recently checked first: a checked job goes to the back of the queue.
- At most `sweep_concurrency` jobs at a time.
- No job is begun once the deadline (Lambda's remaining time minus a margin) has passed; those are
  reported as `skipped` and, never checked, stay at the front of the queue for the next run. The
  calls of a job already begun are bounded by the same deadline (every adapter is bound to it).
- One job's trouble is logged and counted, never fatal. Outcomes are counted by this thread only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from shared.domain.job import Job, JobStatus
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import record_sweep
from shared.services.common import TaskReport, for_each_job, tally
from shared.services.deps import Deps
from shared.services.erasure import sweep_account_erasures
from shared.services.notices import send_pending_notices
from shared.services.orphans import sweep_orphans
from shared.services.previews import sweep_previews
from shared.services.privacy import sweep_cleanup
from shared.services.start import sweep_queue
from shared.services.status import refresh
from shared.services.twins import sweep_twin_deletions
from shared.services.upload_expiry import expire_unstarted, expire_uploads

logger = Logger(child=True)

SWEEP_BATCH = 20_000  # active trainings one sweep reads (a page of 1,000 a request)


@dataclass
class SweepReport(TaskReport):
    checked: int = 0
    changed: int = 0


def sweep(deps: Deps, deadline: Deadline) -> SweepReport:
    """Check every active job, least recently checked first, until done or past the deadline."""
    jobs = deps.jobs.list_active([JobStatus.TRAINING], SWEEP_BATCH)

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

    def count(report: SweepReport, _: Job, changed: bool) -> None:
        report.checked += 1
        report.changed += changed

    report = tally(SweepReport(seen=len(jobs)), outcomes, count)
    if report.skipped:
        logger.warning(
            "sweep reached its deadline; the jobs not checked go first next time",
            extra={"skipped": report.skipped, "seen": report.seen},
        )
    return report


def sweep_all(deps: Deps, deadline: Deadline) -> dict[str, Any]:
    """The scheduled invocation: every sweep task in turn, each bounded by the same deadline.

    Each task's report becomes a JSON object; one task failing never stops the next.
    """
    tasks: list[tuple[str, Callable[[], Any]]] = [
        ("trainings", lambda: sweep(deps, deadline)),
        ("queue", lambda: sweep_queue(deps, deadline)),
        ("uploads", lambda: expire_uploads(deps, deadline)),
        ("unstarted", lambda: expire_unstarted(deps, deadline)),
        ("cleanup", lambda: sweep_cleanup(deps, deadline)),
        ("twins", lambda: sweep_twin_deletions(deps, deadline)),
        ("previews", lambda: sweep_previews(deps, deadline)),
        ("accounts", lambda: sweep_account_erasures(deps, deadline)),
        ("orphans", lambda: sweep_orphans(deps, deadline)),
        ("notices", lambda: send_pending_notices(deps, deadline)),
    ]
    report: dict[str, Any] = {}
    for name, task in tasks:
        if deadline.expired():
            report[name] = {"skipped": "deadline"}
            continue
        try:
            report[name] = dataclasses.asdict(task())
        except Exception:
            logger.exception("sweep task failed", extra={"task": name})
            report[name] = {"error": True}
    record_sweep(report)
    return report
