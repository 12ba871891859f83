"""The training job: one row of `ai_training_jobs`, its states, its allowed moves and progress milestones."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.phases import Phase

MAX_NAME_LENGTH = 100


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    TRAINING = "training"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED)


ACTIVE_STATUSES = (JobStatus.UPLOADING, JobStatus.PENDING, JobStatus.TRAINING)


# The moves the database trigger allows (supabase/migrations); the code never tries another.
ALLOWED_MOVES: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (JobStatus.UPLOADING, JobStatus.PENDING),
        (JobStatus.UPLOADING, JobStatus.FAILED),
        (JobStatus.PENDING, JobStatus.TRAINING),
        (JobStatus.PENDING, JobStatus.FAILED),
        (JobStatus.TRAINING, JobStatus.COMPLETED),
        (JobStatus.TRAINING, JobStatus.FAILED),
    }
)


PROGRESS_UPLOADED = 20


PROGRESS_TRAINING_STARTED = 30


PROGRESS_TRAINING_MAX = 95


PROGRESS_DONE = 100


class Job(BaseModel):
    """One row of `ai_training_jobs`."""

    # Every model here is built at its first use, not at import: a path pays only for its own.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: UUID
    user_id: UUID
    furrsona_name: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    estimated_completion: datetime | None = None
    replicate_training_id: str | None = None
    replicate_model_version: str | None = None
    error_message: str | None = None
    photo_urls: list[str] = Field(default_factory=list)
    customization_data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    completed_at: datetime | None = None
    updated_at: datetime
    claim_token: UUID | None = None
    claimed_at: datetime | None = None
    replicate_file_id: str | None = None
    replicate_file_url: str | None = None
    last_checked_at: datetime | None = None
    last_replicate_status: str | None = None
    upload_expires_at: datetime | None = None
    predict_time_seconds: float | None = None
    cost_usd: float | None = None
    notified_at: datetime | None = None
    last_webhook_id: str | None = None
    deletion_requested_at: datetime | None = None
    deleted_at: datetime | None = None
    photos_deleted_at: datetime | None = None
    replicate_file_deleted_at: datetime | None = None
    model_version_deleted_at: datetime | None = None
    progress_changed_at: datetime | None = None  # set by the database when the job moves forward
    # Progress you can see: the phase (the database keeps it in step with the status), the
    # trainer's step, when each phase began, and what this job's estimate expects of each phase.
    phase: Phase = Phase.UPLOADING
    step: int | None = None
    total_steps: int | None = None
    phase_times: dict[Phase, datetime] = Field(default_factory=dict)
    expected_phase_seconds: dict[str, float] | None = None


def validate_furrsona_name(raw: object) -> str:
    """The name the person gave their twin: required, trimmed, at most 100 characters."""
    from shared.errors import AppError, ErrorCode

    if not isinstance(raw, str) or not raw.strip():
        raise AppError(ErrorCode.MISSING_FIELD, "fursonaName is required: give your twin a name.")
    name = raw.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise AppError(
            ErrorCode.INVALID_FIELD,
            f"fursonaName is {len(name)} characters long; use at most {MAX_NAME_LENGTH}.",
        )
    if any(ord(ch) < 32 for ch in name):
        raise AppError(ErrorCode.INVALID_FIELD, "fursonaName may not contain control characters.")
    return name
