"""The HTTP contract's bodies: every request and response model, camelCase on the wire.

Each response that shows a job is made from the row by one function, `Model.of(job)`, so a field
means the same on every route. The wire field `fursonaName` is the column `furrsona_name`: both
spellings are fixed by the frontend and the table.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.domain.history import ProgressPoint
from shared.domain.job import Job, JobStatus
from shared.domain.phases import Phase, phase_text


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True
    )


class CustomizationData(BaseModel):
    """The frontend's customisation form; known fields are checked, extra ones are kept."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, alias_generator=to_camel, defer_build=True
    )

    type: str | None = Field(default=None, max_length=100)
    hybrid_style: str | None = Field(default=None, max_length=100)
    personality: str | None = Field(default=None, max_length=500)
    voice_tone: str | None = Field(default=None, max_length=100)
    fur_type: str | None = Field(default=None, max_length=100)
    colors: list[str] | None = Field(default=None, max_length=20)


class JobRequest(CamelModel):
    """Body of start_ai_training and of check_training_status's POST."""

    job_id: UUID
    user_id: UUID | None = None


class StatusRequest(JobRequest):
    """Body of check_training_status's POST: `history: true` adds the progress history."""

    history: bool = Field(False, strict=True)


class UploadResponse(CamelModel):
    job_id: UUID
    photo_urls: list[str]  # object paths in the private bucket, never public URLs
    status: JobStatus
    progress: int

    @classmethod
    def of(cls, job: Job) -> UploadResponse:
        return cls(
            job_id=job.id, photo_urls=job.photo_urls, status=job.status, progress=job.progress
        )


class StartResponse(CamelModel):
    job_id: UUID
    training_id: str | None
    status: JobStatus
    progress: int

    @classmethod
    def of(cls, job: Job) -> StartResponse:
        return cls(
            job_id=job.id,
            training_id=job.replicate_training_id,
            status=job.status,
            progress=job.progress,
        )


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
    job_id: UUID
    status: JobStatus
    progress: int
    model_version: str | None
    error_message: str | None
    estimated_completion: datetime | None
    # What the job is doing, for a person (issue 18).
    phase: Phase
    phase_text: str
    step: int | None
    total_steps: int | None
    history: ProgressHistory | None = None  # only when asked for (`history=1`)

    @classmethod
    def of(cls, job: Job, history: list[ProgressPoint] | None = None) -> StatusResponse:
        return cls(
            job_id=job.id,
            status=job.status,
            progress=job.progress,
            model_version=job.replicate_model_version,
            error_message=job.error_message,
            estimated_completion=job.estimated_completion,
            phase=job.phase,
            phase_text=phase_text(
                job.phase,
                uploaded=job.status is JobStatus.PENDING,
                step=job.step,
                total=job.total_steps,
            ),
            step=job.step,
            total_steps=job.total_steps,
            history=None if history is None else ProgressHistory.of(job, history),
        )


class DeclaredPhoto(BaseModel):
    """One photo the browser is about to upload, as it describes it (not trusted)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", defer_build=True
    )

    filename: str = Field("", max_length=1024)
    content_type: str | None = Field(None, max_length=255)
    size: int = Field(strict=True, ge=0)


class UploadTarget(CamelModel):
    """Where and how to send one photo: `PUT url` with `Content-Type: contentType` (or
    supabase-js `uploadToSignedUrl(path, token, file)`), before `expiresAt`."""

    photo: int  # 1-based, in the order declared
    path: str  # the object path in the bucket
    url: str
    method: str = "PUT"
    token: str
    content_type: str
    expires_at: datetime


class SignedUploadResponse(CamelModel):
    job_id: UUID
    status: JobStatus
    progress: int
    expires_at: datetime
    uploads: list[UploadTarget]


class DeletionResponse(CamelModel):
    job_id: UUID
    deleted: bool  # false while something is still left for the sweep to remove
    deletion_requested_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> DeletionResponse:
        return cls(
            job_id=job.id,
            deleted=job.deleted_at is not None,
            deletion_requested_at=job.deletion_requested_at,
            deleted_at=job.deleted_at,
        )
