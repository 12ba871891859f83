"""The HTTP contract's bodies: every request and response model, camelCase on the wire.

Each response that shows a job is made from the row by one function, `Model.of(job)`, so a field
means the same on every route. The wire field `fursonaName` is the column `furrsona_name`: both
spellings are fixed by the frontend and the table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.domain.job import Job, JobStatus
from shared.domain.twin import Twin


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


class UploadResponse(CamelModel):
    job_id: UUID
    twin_id: UUID | None  # the twin this job is a version of
    version: int | None  # its number within the twin: 1, 2, ...
    photo_urls: list[str]  # object paths in the private bucket, never public URLs
    status: JobStatus
    progress: int

    @classmethod
    def of(cls, job: Job) -> UploadResponse:
        return cls(
            job_id=job.id,
            twin_id=job.twin_id,
            version=job.version,
            photo_urls=job.photo_urls,
            status=job.status,
            progress=job.progress,
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


class StatusResponse(CamelModel):
    job_id: UUID
    twin_id: UUID | None
    version: int | None
    active: bool  # this version is the twin's active one (the one pictures are made with)
    status: JobStatus
    progress: int
    model_version: str | None
    error_message: str | None
    estimated_completion: datetime | None

    @classmethod
    def of(cls, job: Job, twin: Twin | None) -> StatusResponse:
        return cls(
            job_id=job.id,
            twin_id=job.twin_id,
            version=job.version,
            active=twin is not None and twin.active_job_id == job.id,
            status=job.status,
            progress=job.progress,
            model_version=job.replicate_model_version,
            error_message=job.error_message,
            estimated_completion=job.estimated_completion,
        )


class VersionResponse(CamelModel):
    """One version of a twin: one training job."""

    job_id: UUID
    version: int | None
    active: bool
    status: JobStatus
    progress: int
    created_at: datetime
    completed_at: datetime | None
    model_version: str | None
    error_message: str | None

    @classmethod
    def of(cls, job: Job, twin: Twin) -> VersionResponse:
        return cls(
            job_id=job.id,
            version=job.version,
            active=twin.active_job_id == job.id,
            status=job.status,
            progress=job.progress,
            created_at=job.created_at,
            completed_at=job.completed_at,
            model_version=job.replicate_model_version,
            error_message=job.error_message,
        )


class TwinResponse(CamelModel):
    twin_id: UUID
    name: str
    customization_data: dict[str, Any]
    active_job_id: UUID | None
    active_version: int | None
    created_at: datetime
    updated_at: datetime
    versions: list[VersionResponse]  # oldest first

    @classmethod
    def of(cls, twin: Twin, versions: list[Job]) -> TwinResponse:
        active = next((j for j in versions if j.id == twin.active_job_id), None)
        return cls(
            twin_id=twin.id,
            name=twin.name,
            customization_data=twin.customization_data,
            active_job_id=twin.active_job_id,
            active_version=active.version if active else None,
            created_at=twin.created_at,
            updated_at=twin.updated_at,
            versions=[VersionResponse.of(job, twin) for job in versions],
        )


class TwinListResponse(CamelModel):
    twins: list[TwinResponse]  # newest first


class ActivateRequest(CamelModel):
    """Body of PUT /twins/{twinId}/active."""

    job_id: UUID
    user_id: UUID | None = None


class TwinDeletionResponse(CamelModel):
    twin_id: UUID
    deleted: bool  # false while something is still left for the sweep to remove
    deletion_requested_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, twin: Twin) -> TwinDeletionResponse:
        return cls(
            twin_id=twin.id,
            deleted=twin.deleted_at is not None,
            deletion_requested_at=twin.deletion_requested_at,
            deleted_at=twin.deleted_at,
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
    twin_id: UUID
    version: int | None
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
