"""From a Replicate training to the job row: status mapping, progress, estimate, readable errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from shared.domain.eta import Expected, estimate
from shared.domain.history import ProgressPoint, new_points
from shared.domain.job import (
    PROGRESS_DONE,
    PROGRESS_TRAINING_MAX,
    PROGRESS_TRAINING_STARTED,
    FailureCode,
    Job,
    JobStatus,
    failed,
)
from shared.domain.phases import TRAINING_PHASES, Phase, later
from shared.domain.trainer_logs import LogReading, read_logs
from shared.domain.training import TrainingInfo
from shared.plumbing.settings import Settings

MAX_ERROR_LENGTH = 500


PACE_SAMPLE = 100  # bars the observed pace is fitted on, spread over the training so far


def trainer_steps(logs: str | None) -> tuple[int, int] | None:
    """(done, total) from the last trainer progress line, if any."""
    last = read_logs(logs).last
    return (last.step, last.total) if last else None


def training_progress(done: int, total: int) -> int:
    """Steps mapped onto 30..95."""
    span = PROGRESS_TRAINING_MAX - PROGRESS_TRAINING_STARTED
    return PROGRESS_TRAINING_STARTED + (span * done) // total


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


def observed_phase(training: TrainingInfo, reading: LogReading) -> Phase:
    """The training's phase by Replicate's status and the trainer's logs."""
    if training.status == "starting":
        return Phase.PREPARING_GPU
    return reading.phase or Phase.PREPARING_GPU


def _entered(
    phase: Phase,
    times: dict[Phase, datetime],
    training: TrainingInfo,
    reading: LogReading,
    fallback: datetime | None,
) -> datetime | None:
    """When the training entered `phase`, from Replicate's and the trainer's own clocks where
    they tell (so a job read once a minute learns the same), else `fallback` (the read's time)."""
    last = reading.last
    if phase is Phase.PREPARING_GPU:
        return training.created_at or fallback
    if phase is Phase.READING_PHOTOS:
        if training.started_at and reading.download_seconds is not None:
            return training.started_at + timedelta(seconds=reading.download_seconds)
        return fallback
    if phase is Phase.TRAINING:
        if fallback and last and last.step < last.total and last.elapsed is not None:
            return fallback - timedelta(seconds=last.elapsed)  # the bar runs now
        return fallback
    began = times.get(Phase.TRAINING)
    if began and last and last.step == last.total and last.elapsed is not None:
        return began + timedelta(seconds=last.elapsed)
    return fallback


def _follow_phase(
    job: Job, training: TrainingInfo, reading: LogReading, now: datetime, changes: dict[str, Any]
) -> tuple[Phase, dict[Phase, datetime]]:
    """The phase, step and phase times `training` shows, into `changes` where they moved on."""
    phase = later(job.phase, observed_phase(training, reading))
    times = dict(job.phase_times)
    # A finished training read for the first time: its phases are long over, so only the
    # trainer's own clocks can place them.
    fallback = None if training.is_terminal else now
    for each in TRAINING_PHASES[: TRAINING_PHASES.index(phase) + 1]:
        if each not in times:
            began = _entered(each, times, training, reading, fallback if each is phase else None)
            if began is not None:
                times[each] = began
    if training.status == "succeeded":
        times.setdefault(Phase.DONE, training.completed_at or now)
    if phase != job.phase:
        changes["phase"] = phase
    if times != job.phase_times:
        changes["phase_times"] = times
    if (last := reading.last) is not None:
        if job.step is None or last.step > job.step:
            changes["step"] = last.step
        if last.total != job.total_steps:
            changes["total_steps"] = last.total
    return phase, times


def plan_update(
    job: Job,
    training: TrainingInfo,
    now: datetime,
    settings: Settings,
    reading: LogReading | None = None,
) -> dict[str, Any]:
    """The columns to write so the row reflects `training`; empty when nothing changes.

    `reading`: `read_logs(training.logs)`, when the caller made it already."""
    changes: dict[str, Any] = {"last_checked_at": now, "last_replicate_status": training.status}
    if job.status is not JobStatus.TRAINING:
        return changes
    reading = reading or read_logs(training.logs)
    phase, times = _follow_phase(job, training, reading, now, changes)
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
        if training.status == "canceled":
            changes["phase"] = Phase.CANCELED
        return changes
    last = reading.last
    progress = training_progress(last.step, last.total) if last else PROGRESS_TRAINING_STARTED
    if progress > job.progress:
        changes["progress"] = progress
    # An older view than the row's (a late `start` webhook): its estimate would be worse.
    behind = observed_phase(training, reading) is not phase or (
        last is not None and job.step is not None and last.step < job.step
    )
    current = job.estimated_completion
    if not behind or current is None or current <= now:
        changes["estimated_completion"] = estimate(
            phase,
            times,
            [] if behind else reading.sample(PACE_SAMPLE),
            (last.total if last else job.total_steps) or settings.training_steps,
            Expected.of_row(job.expected_phase_seconds, settings),
            now,
        )
    return changes


def history_points(job: Job, reading: LogReading, changes: dict[str, Any]) -> list[ProgressPoint]:
    """The history points a refresh adds: the buckets the trainer completed since the row's
    step, placed on the clock from when the training phase began."""
    if job.status is not JobStatus.TRAINING:
        return []
    began = changes.get("phase_times", job.phase_times).get(Phase.TRAINING)
    if began is None:
        return []
    return new_points(reading, job.step or 0, began)
