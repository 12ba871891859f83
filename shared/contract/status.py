"""A job's status and its progress history: what the status routes, cancel and the training
webhook answer."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from shared.contract.base import CamelModel, JobRequest, phase_text_of
from shared.contract.previews import PreviewSetView
from shared.contract.start import QueueView
from shared.domain.history import ProgressPoint
from shared.domain.job import FailureCode, Job, JobStatus
from shared.domain.phases import Phase
from shared.domain.queue import QueuePlace
from shared.domain.twin import Twin


class StatusRequest(JobRequest):
    """Body of check_training_status's POST: `history: true` adds the progress history."""

    history: bool = Field(False, strict=True)


def _significant(value: float | None, digits: int) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


class ProgressHistory(CamelModel):
    """A job's history as parallel arrays (compact: at most 200 entries each, ~5 KB): the
    seconds after `startedAt` (when the training phase began), the step, the mean loss of the
    steps since the previous point, the trainer's steps per second."""

    started_at: datetime | None
    seconds: list[int]
    steps: list[int]
    loss: list[float | None]
    steps_per_second: list[float | None]

    @classmethod
    def of(cls, job: Job, points: list[ProgressPoint]) -> ProgressHistory:
        began = job.phase_times.get(Phase.TRAINING) or (points[0].observed_at if points else None)
        return cls(
            started_at=began,
            seconds=[round((p.observed_at - began).total_seconds()) for p in points if began],
            steps=[p.step for p in points],
            loss=[_significant(p.loss, 4) for p in points],
            steps_per_second=[_significant(p.steps_per_second, 3) for p in points],
        )


class StatusResponse(CamelModel):
    """The job's status, progress and result, and when to ask again."""

    job_id: UUID
    twin_id: UUID | None
    version: int | None
    active: bool  # this version is the twin's active one (the one pictures are made with)
    status: JobStatus
    progress: int
    model_version: str | None
    error_code: FailureCode | None  # why a failed job failed; null unless failed
    error_message: str | None
    estimated_completion: datetime | None
    # What the job is doing, for a person.
    phase: Phase
    phase_text: str
    step: int | None
    total_steps: int | None
    # When to ask again (also the Retry-After header); null once the job is final.
    retry_after_seconds: int | None
    history: ProgressHistory | None = None  # only when asked for (`history=1`)
    queue: QueueView | None = None  # a queued job's place in line
    previews: PreviewSetView | None = None  # a completed version's first pictures

    @classmethod
    def of(
        cls,
        job: Job,
        twin: Twin | None,
        retry_after_seconds: int | None,
        history: list[ProgressPoint] | None = None,
        place: QueuePlace | None = None,
        previews: PreviewSetView | None = None,
    ) -> StatusResponse:
        return cls(
            job_id=job.id,
            twin_id=job.twin_id,
            version=job.version,
            active=twin is not None and twin.active_job_id == job.id,
            status=job.status,
            progress=job.progress,
            model_version=job.replicate_model_version,
            error_code=job.failure_code,
            error_message=job.error_message,
            estimated_completion=place.estimated_completion if place else job.estimated_completion,
            retry_after_seconds=retry_after_seconds,
            phase=job.phase,
            phase_text=phase_text_of(job),
            step=job.step,
            total_steps=job.total_steps,
            history=None if history is None else ProgressHistory.of(job, history),
            queue=QueueView.of(place),
            previews=previews,
        )
