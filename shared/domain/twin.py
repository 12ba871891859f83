"""The twin: what a person owns. It has a name, a customisation and versions (its training jobs,
numbered from 1); one completed version is active, the one pictures are made with."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.job import ACTIVE_STATUSES, Job, JobStatus


class Twin(BaseModel):
    """One row of `twins`."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: UUID
    user_id: UUID
    name: str
    customization_data: dict[str, Any] = Field(default_factory=dict)
    active_job_id: UUID | None = None
    next_version: int = 1
    created_at: datetime
    updated_at: datetime
    deletion_requested_at: datetime | None = None
    deleted_at: datetime | None = None

    @property
    def being_deleted(self) -> bool:
        return self.deletion_requested_at is not None


def version_on_its_way(versions: list[Job]) -> Job | None:
    """The version being uploaded, waiting or training, if any (the database allows one)."""
    return next((job for job in versions if job.status in ACTIVE_STATUSES), None)


def can_be_active(job: Job, twin: Twin) -> bool:
    """The rule the database enforces on `twins.active_job_id`."""
    return (
        job.twin_id == twin.id
        and job.user_id == twin.user_id
        and job.status is JobStatus.COMPLETED
        and job.deletion_requested_at is None
    )
