"""A twin and its versions (check_training_status's twin routes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from shared.contract.base import CamelModel, phase_text_of
from shared.contract.previews import PreviewSetView
from shared.contract.upload import CustomizationData
from shared.domain.job import FailureCode, Job, JobStatus
from shared.domain.phases import Phase
from shared.domain.previews import (
    PreviewSet,
)
from shared.domain.twin import Twin


class VersionResponse(CamelModel):
    """One version of a twin: one training job."""

    job_id: UUID
    version: int | None
    active: bool
    status: JobStatus
    phase: Phase
    phase_text: str
    progress: int
    created_at: datetime
    completed_at: datetime | None
    model_version: str | None
    error_code: FailureCode | None
    error_message: str | None
    # Its preview sets, newest first (the first pictures are the oldest set).
    previews: list[PreviewSetView] = Field(default_factory=list)

    @classmethod
    def of(
        cls, job: Job, twin: Twin, previews: list[PreviewSetView] | None = None
    ) -> VersionResponse:
        return cls(
            job_id=job.id,
            version=job.version,
            active=twin.active_job_id == job.id,
            status=job.status,
            phase=job.phase,
            phase_text=phase_text_of(job),
            progress=job.progress,
            created_at=job.created_at,
            completed_at=job.completed_at,
            model_version=job.replicate_model_version,
            error_code=job.failure_code,
            error_message=job.error_message,
            previews=previews or [],
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
    def of(
        cls,
        twin: Twin,
        versions: list[Job],
        sets: Mapping[UUID, list[PreviewSet]] | None = None,
        urls: Mapping[str, str] | None = None,
        expires_at: datetime | None = None,
    ) -> TwinResponse:
        active = next((j for j in versions if j.id == twin.active_job_id), None)

        def previews(job: Job) -> list[PreviewSetView]:
            views = [
                PreviewSetView.of_set(s, urls or {}, expires_at)
                for s in (sets or {}).get(job.id, [])
            ]
            return [v for v in views if v is not None]

        return cls(
            twin_id=twin.id,
            name=twin.name,
            customization_data=twin.customization_data,
            active_job_id=twin.active_job_id,
            active_version=active.version if active else None,
            created_at=twin.created_at,
            updated_at=twin.updated_at,
            versions=[VersionResponse.of(job, twin, previews(job)) for job in versions],
        )


class TwinListResponse(CamelModel):
    twins: list[TwinResponse]  # newest first


class TwinUpdate(CamelModel):
    """Body of PATCH /twins/{twinId}: what to change (at least one); no retraining needed."""

    name: str | None = Field(None, max_length=100)
    customization_data: CustomizationData | None = None
    user_id: UUID | None = None


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
