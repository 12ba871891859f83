"""check_training_status's other job routes: the owner's job list and a job's deletion."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from shared.contract.base import CamelModel, phase_text_of
from shared.domain.job import FailureCode, Job, JobStatus
from shared.domain.phases import Phase


class JobSummary(CamelModel):
    """One of the caller's jobs in their list: the public fields, none of the bookkeeping."""

    job_id: UUID
    twin_id: UUID | None
    version: int | None
    fursona_name: str
    status: JobStatus
    phase: Phase
    phase_text: str
    progress: int
    model_version: str | None
    error_code: FailureCode | None
    error_message: str | None
    estimated_completion: datetime | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobSummary:
        return cls(
            job_id=job.id,
            twin_id=job.twin_id,
            version=job.version,
            fursona_name=job.furrsona_name,
            status=job.status,
            phase=job.phase,
            phase_text=phase_text_of(job),
            progress=job.progress,
            model_version=job.replicate_model_version,
            error_code=job.failure_code,
            error_message=job.error_message,
            estimated_completion=job.estimated_completion,
            created_at=job.created_at,
            completed_at=job.completed_at,
        )


class JobList(CamelModel):
    """A page of the caller's jobs, newest first."""

    jobs: list[JobSummary]  # newest first
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


class DeletionResponse(CamelModel):
    """How far the deletion is: `deleted` once nothing of the job is left."""

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
