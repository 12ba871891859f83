"""The training job: one row of `ai_training_jobs`, its states, its allowed moves and progress milestones."""

from __future__ import annotations

import enum
import math
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.phases import Phase

MAX_NAME_LENGTH = 100


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    QUEUED = "queued"  # started, waiting in our own line for a training slot
    TRAINING = "training"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED)


class FailureCode(enum.StrEnum):
    """Why a failed job failed: its `errorCode` on the wire, and what that means for the person.
    `error_message` is the sentence to show; the code is what a frontend branches on."""

    meaning: str

    def __new__(cls, code: str, meaning: str) -> FailureCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    CANCELED_BY_USER = "canceled_by_user", "The owner canceled it (`POST /cancel`)."
    DELETED_BY_USER = "deleted_by_user", "The owner deleted it while it was still active."
    UPLOAD_EXPIRED = "upload_expired", "Not every photo arrived before the upload links expired."
    PHOTOS_REFUSED = (
        "photos_refused",
        "A photo was refused at complete and could not be cleaned up.",
    )
    PHOTOS_MISSING = (
        "photos_missing",
        "Its photos were gone from storage when the training started.",
    )
    PHOTOS_CHANGED = (
        "photos_changed",
        "A stored photo was not the one checked at upload (changed, swapped or not a JPEG) "
        "when the training started; nothing was sent to Replicate.",
    )
    NEVER_STARTED = (
        "never_started",
        "Its photos were uploaded but it was not started within `UNSTARTED_JOB_EXPIRY_HOURS`; "
        "its photos were removed.",
    )
    NOT_STARTED = "not_started", "Replicate could not be asked to start the training in time."
    TRAINING_FAILED = "training_failed", "The training failed or was canceled on Replicate."
    TRAINING_LOST = "training_lost", "Replicate no longer knows the training."
    STALLED = "stalled", "The training made no progress for too long and was canceled."
    QUEUE_EXPIRED = (
        "queue_expired",
        "It waited in line longer than `QUEUE_MAX_WAIT_HOURS` and was never started.",
    )


def failed(code: FailureCode, message: str) -> dict[str, Any]:
    """The columns that fail a job: its status, why (the code) and the sentence for the person.
    Every failure is written through this, so no failed job lacks its code."""
    return {"status": JobStatus.FAILED, "failure_code": code, "error_message": message}


ACTIVE_STATUSES = (JobStatus.UPLOADING, JobStatus.PENDING, JobStatus.QUEUED, JobStatus.TRAINING)


# The moves the database trigger allows (supabase/migrations); the code never tries another.
ALLOWED_MOVES: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (JobStatus.UPLOADING, JobStatus.PENDING),
        (JobStatus.UPLOADING, JobStatus.FAILED),
        (JobStatus.PENDING, JobStatus.QUEUED),
        (JobStatus.PENDING, JobStatus.FAILED),
        (JobStatus.QUEUED, JobStatus.TRAINING),
        (JobStatus.QUEUED, JobStatus.FAILED),
        # Back in line, only while no training exists (Replicate refused the create).
        (JobStatus.TRAINING, JobStatus.QUEUED),
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
    # The twin this job is a version of, and its number there (both set by the database on
    # insert; None only in unit-test rows made without a twin).
    twin_id: UUID | None = None
    version: int | None = None
    furrsona_name: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    estimated_completion: datetime | None = None
    replicate_training_id: str | None = None
    replicate_model_version: str | None = None
    error_message: str | None = None
    failure_code: FailureCode | None = None  # set with every move to failed, never otherwise
    photo_urls: list[str] = Field(default_factory=list)
    # SHA-256 (hex) of each stored NN.jpg, in photo_urls' order, recorded when it was stored;
    # None for jobs stored before checksums were recorded (start then checks only for JPEG).
    photo_checksums: list[str] | None = None
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
    # The queue (batch admission): when it joined the line, when it was let in, and what its
    # training is expected to cost until Replicate's bill is known.
    queued_at: datetime | None = None
    queue_position: int | None = None  # refreshed by the sweep; null once it leaves the line
    admitted_at: datetime | None = None
    reserved_cost_usd: float | None = None
    predict_time_seconds: float | None = None
    cost_usd: float | None = None
    notified_at: datetime | None = None
    previews_requested_at: datetime | None = None  # the completion set is made (once)
    last_webhook_id: str | None = None
    deletion_requested_at: datetime | None = None
    deleted_at: datetime | None = None
    photos_deleted_at: datetime | None = None
    replicate_file_deleted_at: datetime | None = None
    model_version_deleted_at: datetime | None = None
    # Replicate refused deleting this job's zip or version for good (403/409): not asked again.
    replicate_deletion_refused_at: datetime | None = None
    progress_changed_at: datetime | None = None  # set by the database when the job moves forward
    # Progress you can see: the phase (the database keeps it in step with the status), the
    # trainer's step, when each phase began, and what this job's estimate expects of each phase.
    phase: Phase = Phase.UPLOADING
    step: int | None = None
    total_steps: int | None = None
    phase_times: dict[Phase, datetime] = Field(default_factory=dict)
    expected_phase_seconds: dict[str, float] | None = None


def validate_furrsona_name(raw: object, *, field: str = "fursonaName") -> str:
    """The name the person gave their twin (sent as `field`): required, trimmed, at most 100
    characters."""
    from shared.errors import AppError, ErrorCode

    if not isinstance(raw, str) or not raw.strip():
        raise AppError(ErrorCode.MISSING_FIELD, f"{field} is required: give your twin a name.")
    name = raw.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise AppError(
            ErrorCode.INVALID_FIELD,
            f"{field} is {len(name)} characters long; use at most {MAX_NAME_LENGTH}.",
        )
    problem = name_problem(name)
    if problem is not None:
        raise AppError(ErrorCode.INVALID_FIELD, f"{field} {problem}.")
    return name


# Characters that reorder the text around them (embeddings, overrides, isolates, marks): a name
# holding one can show as something else than it is ("Ember\u202egpj.exe").
BIDI_CONTROLS = frozenset(
    map(chr, (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)))
)
# Letters that show as nothing (Unicode's default-ignorable or blank letters).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def name_problem(name: str) -> str | None:
    """What makes `name` unfit to show a person, or None: a control, surrogate or
    bidirectional-control character, or nothing visible at all (only spaces, zero-width or
    format characters, blank letters). Emoji sequences (ZWJ), combining marks and every
    script stay welcome."""
    import unicodedata

    visible = False
    for ch in name:
        category = unicodedata.category(ch)
        if category == "Cc":
            return "may not contain control characters"
        if category == "Cs":
            return "may not contain unpaired surrogates (not Unicode text)"
        if ch in BIDI_CONTROLS:
            return "may not contain characters that reverse or reorder the text"
        if category[0] in "LNPS" and ch not in _BLANK_LETTERS:
            visible = True
    if not visible:
        return "must contain at least one visible character"
    return None


def poll_after_seconds(job: Job, refresh_seconds: float, now: datetime) -> int | None:
    """Whole seconds until a status read can show something new; None once the job is final.

    A training moves when Replicate is read, at most once per `refresh_seconds` per job: the wait
    is what is left of the current interval. Uploading and pending jobs move on the owner's own
    call (complete, start) or the sweep, a queued one when it is admitted: one interval. Never
    less than 1 s."""
    if job.status.is_final:
        return None
    wait = refresh_seconds
    if job.status is JobStatus.TRAINING and job.last_checked_at is not None:
        wait = (job.last_checked_at + timedelta(seconds=refresh_seconds) - now).total_seconds()
    return max(1, math.ceil(wait))
