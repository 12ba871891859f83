"""What every function's models share: the camelCase base, a job in a body, the phase sentence."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.domain.job import Job, JobStatus
from shared.domain.phases import phase_text


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        defer_build=True,
        # An answer always carries every field (defaults included): required in its schema.
        json_schema_serialization_defaults_required=True,
    )


class JobRequest(CamelModel):
    """Body of start_ai_training and of check_training_status's POST."""

    job_id: UUID
    user_id: UUID | None = None


def phase_text_of(job: Job) -> str:
    """The job's phase as a sentence for a person (every answer that shows a phase)."""
    return phase_text(
        job.phase, uploaded=job.status is JobStatus.PENDING, step=job.step, total=job.total_steps
    )
