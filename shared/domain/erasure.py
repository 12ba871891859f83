"""An account's erasure: what a deleted account left to remove (`account_erasures`, written by
the database before the auth.users row goes), and the anonymous record it ends as."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class ErasedJob(BaseModel):
    """One of the account's jobs as the database saw it when the account went."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    job_id: UUID
    training_id: str | None = None
    file_id: str | None = None  # the zip on Replicate, unless deleted already
    file_url: str | None = None
    model_version: str | None = None  # unless deleted already
    claimed_at: datetime | None = None
    last_checked_at: datetime | None = None
    status: str | None = None


class AccountErasure(BaseModel):
    """One row of `account_erasures`."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: UUID
    user_id: UUID | None = None
    storage_prefix: str | None = None
    jobs: list[ErasedJob] = Field(default_factory=list)
    twin_ids: list[UUID] = Field(default_factory=list)
    uploads_open_until: datetime | None = None
    requested_at: datetime
    attempts: int = 0
    last_attempt_at: datetime | None = None
    finished_at: datetime | None = None
    summary: dict[str, Any] | None = None


def anonymised(summary: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The columns that finish an erasure: nothing left that names the person."""
    return {
        "user_id": None,
        "storage_prefix": None,
        "jobs": [],
        "twin_ids": [],
        "finished_at": now,
        "summary": summary,
    }
