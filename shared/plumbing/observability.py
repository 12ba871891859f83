"""Structured logging and metrics singletons (Powertools), one per function container.

Metrics go out as CloudWatch Embedded Metric Format lines, flushed by `@metrics.log_metrics` on
each handler; they are recorded where the event happens, whichever path (start call, status call,
webhook, sweep) sees it. `POWERTOOLS_METRICS_DISABLED=true` keeps them out of local output.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared.domain.job import Job, JobStatus

logger = Logger()  # service name from POWERTOOLS_SERVICE_NAME
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "FlurrtyTwin")

# Powertools' metric set is a plain dict of lists: the sweep records from several threads.
_lock = threading.Lock()


def _add(name: str, unit: MetricUnit, value: float) -> None:
    with _lock:
        metrics.add_metric(name=name, unit=unit, value=value)


def record_training_started() -> None:
    _add("JobsStarted", MetricUnit.Count, 1)


def record_training_finished(job: Job) -> None:
    """A job that just left `training`: its outcome, and the billed seconds and cost if known."""
    name = "JobsCompleted" if job.status is JobStatus.COMPLETED else "JobsFailed"
    _add(name, MetricUnit.Count, 1)
    if job.predict_time_seconds is not None:
        _add("TrainingSeconds", MetricUnit.Seconds, job.predict_time_seconds)
    if job.cost_usd is not None:
        _add("TrainingCostUSD", MetricUnit.NoUnit, job.cost_usd)


def record_admitted(waited_seconds: float) -> None:
    """A queued job let in to train, after waiting this long in line."""
    _add("QueueWaitSeconds", MetricUnit.Seconds, waited_seconds)


def record_throttled() -> None:
    """Replicate refused a start with 429: every admission waits (the shared hold)."""
    _add("TrainingsThrottled", MetricUnit.Count, 1)


def record_deletion_refused() -> None:
    """Replicate refused deleting a zip or a trained version for good (403/409): not retried;
    the `ReplicateDeletionRefusedAlarm` asks an operator to remove it by hand."""
    _add("ReplicateDeletionsRefused", MetricUnit.Count, 1)


def record_orphans_removed(count: int) -> None:
    """Leftovers no row knew about, removed by the sweep (bucket objects, Replicate zips)."""
    _add("OrphansRemoved", MetricUnit.Count, count)


def record_queue(depth: int, in_flight: int, oldest_wait_seconds: float, spent_usd: float) -> None:
    """The queue as the sweep saw it, once a minute, for the dashboards and the queue alarm."""
    _add("QueueDepth", MetricUnit.Count, depth)
    _add("TrainingsInFlight", MetricUnit.Count, in_flight)
    _add("OldestQueuedSeconds", MetricUnit.Seconds, oldest_wait_seconds)
    _add("TrainingSpendTodayUSD", MetricUnit.NoUnit, spent_usd)


def record_sweep(report: Mapping[str, object]) -> None:
    """The sweep's own health, for its alarms (template.yaml): one `SweepRuns` per run, and the
    `SweepErrors` and `SweepSkipped` of all its tasks. A task that failed outright counts as one
    error, a task not begun before the deadline as one skip."""
    errors = skipped = 0
    for task in report.values():
        if not isinstance(task, Mapping):
            continue
        if task.get("error") is True:
            errors += 1
        elif task.get("skipped") == "deadline":
            skipped += 1
        else:
            errors += int(task.get("errors", 0))
            skipped += int(task.get("skipped", 0))
    _add("SweepRuns", MetricUnit.Count, 1)
    _add("SweepErrors", MetricUnit.Count, errors)
    _add("SweepSkipped", MetricUnit.Count, skipped)
