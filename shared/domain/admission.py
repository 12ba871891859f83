"""What admission to the training queue is bound by, and what the database answers about the line.

Admission itself happens in the database (`admit_trainings`, one function for every caller); here
are the limits it is given, the jobs it let in, and one queued job's or the whole line's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.plumbing.settings import Settings


@dataclass(frozen=True)
class AdmissionRules:
    max_in_flight: int
    per_user: int
    daily_budget_usd: float | None  # None: no budget
    cost_estimate_usd: float  # reserved per admitted training until its bill is known

    @classmethod
    def of(cls, settings: Settings) -> AdmissionRules:
        return cls(
            max_in_flight=settings.max_concurrent_trainings,
            per_user=settings.max_trainings_per_user,
            daily_budget_usd=settings.daily_training_budget_usd,
            cost_estimate_usd=settings.training_cost_estimate_usd,
        )


@dataclass(frozen=True)
class Admitted:
    """A job `admit_trainings` let in: it is in `training` now, with this claim."""

    job_id: UUID
    claim_token: UUID

    @property
    def id(self) -> UUID:  # named like a job's, for the sweep's logs
        return self.job_id


@dataclass(frozen=True)
class QueueSnapshot:
    """What the database says about one queued job (`training_queue_place`)."""

    position: int  # 1 = next in line (among the jobs that may start now)
    eligible: bool  # False: the owner has `per_user` trainings in flight already
    queued_at: datetime
    in_flight: int
    owner_in_flight: int
    running_ends: list[datetime]  # the estimated ends of the trainings in flight, earliest first
    spent_today: float
    held_until: datetime | None  # Replicate throttled us until then
    median_training_seconds: float | None  # of the last completed trainings


@dataclass(frozen=True)
class QueueStats:
    depth: int
    oldest_queued_at: datetime | None
    in_flight: int
    spent_today: float
