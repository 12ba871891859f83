"""From a Replicate training to the job row: status mapping, progress, estimate, readable errors."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from shared.domain.job import (
    PROGRESS_DONE,
    PROGRESS_TRAINING_MAX,
    PROGRESS_TRAINING_STARTED,
    FailureCode,
    Job,
    JobStatus,
    failed,
)
from shared.domain.training import TrainingInfo
from shared.plumbing.settings import Settings

# The trainer's own bar (job name flux_train_replicate). Earlier bars without that label (file
# lists, latent caching) must not count.
TRAINER_BAR = re.compile(r"flux_train_replicate:\s*(\d{1,3})%\|[^|\r\n]*\|\s*(\d+)/(\d+)")

MAX_ERROR_LENGTH = 500


def trainer_steps(logs: str | None) -> tuple[int, int] | None:
    """(done, total) from the last trainer progress line, if any."""
    if not logs:
        return None
    last = None
    for last in TRAINER_BAR.finditer(logs):  # noqa: B007 - we want the final match
        pass
    if last is None:
        return None
    done, total = int(last.group(2)), int(last.group(3))
    if total <= 0:
        return None
    return min(done, total), total


def training_progress(done: int, total: int) -> int:
    """Steps mapped onto 30..95."""
    span = PROGRESS_TRAINING_MAX - PROGRESS_TRAINING_STARTED
    return PROGRESS_TRAINING_STARTED + (span * done) // total


def estimate_completion(
    training: TrainingInfo, steps: tuple[int, int] | None, now: datetime, settings: Settings
) -> datetime:
    """From the observed step rate when there is one, else the typical duration."""
    if steps and steps[0] > 0 and training.started_at:
        done, total = steps
        elapsed = (now - training.started_at).total_seconds()
        if elapsed > 0:
            return now + timedelta(seconds=elapsed * (total - done) / done)
    begun = training.created_at or now
    estimate = begun + timedelta(seconds=settings.expected_training_seconds)
    return max(estimate, now)


def readable_failure(training: TrainingInfo) -> str:
    """A sentence for the person; the raw upstream detail stays in the logs."""
    if training.status == "canceled":
        # Replicate also cancels a training that runs past its time limit.
        return (
            "The training was canceled on Replicate before it finished (by hand, or because it "
            "ran past its time limit); start a new training."
        )
    if training.status == "aborted":
        return "Replicate stopped the training before it began (for example a deadline); start a new training."
    error = (training.error or "").strip()
    if error.startswith("Prediction input failed validation"):
        return (
            f"The trainer refused our training settings ({_validation_detail(error)}), so nothing "
            "was trained. This is a problem on our side, not with your photos; please try again "
            "later."
        )[:MAX_ERROR_LENGTH]
    if not error:
        return "The training failed on Replicate without a reason; start a new training."
    # The first line only: a trainer's error can go on with a whole traceback.
    return f"The training failed on Replicate: {error.splitlines()[0]}"[:MAX_ERROR_LENGTH]


def _validation_detail(error: str) -> str:
    """Cog's `{"detail": [{"loc": [..., field], "msg": ...}]}` as `field: msg; ...`."""
    try:
        payload: Any = json.loads(error.split(":", 1)[1])
        messages = [
            f"{item['loc'][-1]}: {item['msg']}".rstrip(".")
            if item.get("loc")
            else str(item["msg"]).rstrip(".")
            for item in payload.get("detail", [])
            if item.get("msg")
        ]
        if messages:
            return "; ".join(messages)
    except (IndexError, ValueError, AttributeError, KeyError, TypeError):
        pass
    return error.split(":", 1)[-1].strip() or "invalid input"


def plan_update(
    job: Job, training: TrainingInfo, now: datetime, settings: Settings
) -> dict[str, Any]:
    """The columns to write so the row reflects `training`; empty when nothing changes."""
    changes: dict[str, Any] = {"last_checked_at": now, "last_replicate_status": training.status}
    if job.status is not JobStatus.TRAINING:
        return changes
    if training.is_terminal:
        changes.update(completed_at=training.completed_at or now, estimated_completion=None)
        if (seconds := training.predict_time) is not None:
            # Replicate bills the compute time of failed and canceled trainings too.
            changes["predict_time_seconds"] = seconds
            changes["cost_usd"] = round(seconds * settings.training_price_per_second, 4)
    if training.status == "succeeded" and training.model_version:
        changes.update(
            status=JobStatus.COMPLETED,
            progress=PROGRESS_DONE,
            replicate_model_version=training.model_version,
        )
        return changes
    if training.status == "succeeded":
        changes.update(
            failed(
                FailureCode.TRAINING_FAILED,
                "The training finished but Replicate returned no model version.",
            )
        )
        return changes
    if training.is_terminal:
        changes.update(failed(FailureCode.TRAINING_FAILED, readable_failure(training)))
        return changes
    steps = trainer_steps(training.logs)
    progress = training_progress(*steps) if steps else PROGRESS_TRAINING_STARTED
    if progress > job.progress:
        changes["progress"] = progress
    current = job.estimated_completion
    if steps or current is None or current <= now:
        # Without steps (e.g. a late `start` webhook) a step-based estimate is kept.
        changes["estimated_completion"] = estimate_completion(training, steps, now, settings)
    return changes
