"""Start claims: when a claimed start is presumed dead, and what its job is told if it never starts."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.domain.job import Job, JobStatus
from shared.plumbing.settings import Settings

# A failed job stays failed: the way forward is a new job, so the message says so.
NOT_STARTED_MESSAGE = (
    "We could not start your training on Replicate; upload your photos again to start a new one."
)


def stalled_start(job: Job, settings: Settings, now: datetime) -> bool:
    """A claim that has not recorded its training, and whose holder has shown no sign of life for
    `claim_timeout_seconds` (longer than the start function may run): the holder is gone."""
    if job.status is not JobStatus.TRAINING or job.replicate_training_id is not None:
        return False
    last = last_sign_of_life(job)
    return last is None or now - last > timedelta(seconds=settings.claim_timeout_seconds)


def last_sign_of_life(job: Job) -> datetime | None:
    """When the claim's holder last showed it was alive (claimed it, or renewed it)."""
    return max((t for t in (job.claimed_at, job.last_checked_at) if t is not None), default=None)
