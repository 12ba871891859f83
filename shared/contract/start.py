"""start_ai_training: the answer (the job as the start leaves it) and a queued job's place in line,
which the status answers show too."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from shared.contract.base import CamelModel
from shared.domain.job import Job, JobStatus
from shared.domain.queue import HeldBy, QueuePlace


class QueueView(CamelModel):
    """A queued job's place in line (batch admission): null for any other job."""

    position: int  # 1 = next to start
    held_by: HeldBy  # what it waits for: cap, budget, throttle, own_training, nothing
    estimated_start_at: datetime
    message: str  # the sentence for the person

    @classmethod
    def of(cls, place: QueuePlace | None) -> QueueView | None:
        if place is None:
            return None
        return cls(
            position=place.position,
            held_by=place.held_by,
            estimated_start_at=place.estimated_start,
            message=place.message,
        )


class StartResponse(CamelModel):
    """The job as the start leaves it: queued (waiting for a training slot), training, or
    completed already."""

    job_id: UUID
    training_id: str | None
    status: JobStatus
    progress: int
    queue: QueueView | None = None

    @classmethod
    def of(cls, job: Job, place: QueuePlace | None = None) -> StartResponse:
        return cls(
            job_id=job.id,
            training_id=job.replicate_training_id,
            status=job.status,
            progress=job.progress,
            queue=QueueView.of(place),
        )
