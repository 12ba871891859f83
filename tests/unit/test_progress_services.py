"""The use cases keep the history and the phase: one extra database call per refresh at most,
the history from the logs, the phase through cancel, and nothing left once a job is deleted."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.sample_photos import make_photo
from shared.domain.eta import Expected
from shared.domain.history import ProgressPoint
from shared.domain.job import Job, JobStatus
from shared.domain.phases import TRAINING_PHASES, Phase
from shared.services.deps import Deps
from shared.services.privacy import cancel_job, delete_job
from shared.services.start import start_training
from shared.services.status import get_status, refresh
from tests.fakes import FakeTrainer, InMemoryJobStore, InMemoryTrainingQueue
from tests.replay import REALISTIC as RUN
from tests.unit import helpers


class CountingJobStore(InMemoryJobStore):
    """Counts the calls a database would answer."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if callable(attribute) and not name.startswith("_") and name != "calls":
            super().__getattribute__("calls")[name] += 1
        return attribute


def make_deps() -> Deps:
    deps = helpers.make_deps(trainer=FakeTrainer(), status_refresh_seconds=0)
    deps.jobs = jobs = CountingJobStore()
    deps.queue = InMemoryTrainingQueue(jobs)
    return deps


def started(deps: Deps) -> Job:
    user_id, job_id = uuid.uuid4(), uuid.uuid4()
    path = f"{user_id}/{job_id}/01.jpg"
    deps.photos.put(path, make_photo(64, 64), "image/jpeg")
    deps.jobs.insert(
        {"id": job_id, "user_id": user_id, "furrsona_name": "Ember", "status": "pending",
         "progress": 20, "photo_urls": [path]}
    )  # fmt: skip
    return start_training(user_id, job_id, deps)


def at(deps: Deps, job: Job, seconds: float) -> None:
    """The fake training as Replicate shows it `seconds` after its creation."""
    assert isinstance(deps.trainer, FakeTrainer) and job.replicate_training_id
    created = datetime.now(UTC) - timedelta(seconds=seconds)
    shown = RUN.training_at(created, seconds)
    deps.trainer.set(job.replicate_training_id, **shown.model_dump(exclude={"id", "input"}))


def test_a_refresh_costs_at_most_one_extra_database_call_for_the_history() -> None:
    deps = make_deps()
    job = started(deps)
    assert job.phase is Phase.PREPARING_GPU and job.expected_phase_seconds
    assert isinstance(deps.jobs, CountingJobStore)
    per_refresh = []
    for seconds in (1, 60, 150, 300, 500, RUN.total - 1):
        at(deps, job, seconds)
        deps.jobs.calls.clear()
        job = get_status(job.user_id, job.id, deps)
        per_refresh.append(deps.jobs.calls.copy())
    # As before: the row, the refresh's compare-and-set, the write; plus the history's insert.
    assert all(calls["add_progress_points"] <= 1 for calls in per_refresh), per_refresh
    assert all(
        calls - Counter(add_progress_points=1) == Counter(get=1, compare_and_set=1, update=1)
        for calls in per_refresh
    ), per_refresh
    assert sum(calls["add_progress_points"] for calls in per_refresh) == 3  # while it trains
    at(deps, job, RUN.total + 1)
    job = get_status(job.user_id, job.id, deps)
    assert job.status is JobStatus.COMPLETED and job.phase is Phase.DONE
    points = deps.jobs.progress_points(job.id)
    assert len(points) == 200 and [p.step for p in points][-1] == RUN.steps


def test_the_start_takes_the_recent_jobs_phase_times_for_its_estimate() -> None:
    deps = make_deps()
    assert isinstance(deps.jobs, CountingJobStore)
    for spent in (0.6, 0.7, 0.8):  # three completed jobs, their trainers at 0.6-0.8 s per step
        job = started(deps)
        began, times = job.phase_times[Phase.PREPARING_GPU], {}
        for phase, seconds in zip(TRAINING_PHASES, (100, 50, 1000 * spent, 30), strict=True):
            times[phase] = began
            began += timedelta(seconds=seconds)
        times[Phase.DONE] = began
        deps.jobs.update(job.id, {"phase_times": times, "total_steps": 1000})
        deps.jobs.update(
            job.id, {"status": JobStatus.COMPLETED, "progress": 100, "completed_at": began,
                     "replicate_model_version": "a/b:c"},
        )  # fmt: skip
    fresh = started(deps)
    assert fresh.expected_phase_seconds == Expected(100, 50, 0.7, 30).as_row()
    assert fresh.estimated_completion is not None
    left = (fresh.estimated_completion - datetime.now(UTC)).total_seconds()
    assert 100 + 50 + 700 + 30 - 5 < left <= 100 + 50 + 700 + 30


def test_a_canceled_job_reads_canceled_and_a_deleted_one_leaves_no_history() -> None:
    deps = make_deps()
    job = started(deps)
    at(deps, job, 300)
    job = refresh(job, deps)
    assert job.phase is Phase.TRAINING and deps.jobs.progress_points(job.id)
    kept = deps.jobs.progress_points(job.id)
    canceled = cancel_job(job.user_id, job.id, deps)
    assert canceled.phase is Phase.CANCELED and canceled.status is JobStatus.FAILED
    # A refresh that raced the cancel adds nothing (the database drops such points).
    late = ProgressPoint(199, 1000, datetime.now(UTC), 0.3, 1.4)
    deps.jobs.add_progress_points(job.id, [late])
    assert deps.jobs.progress_points(job.id) == kept
    delete_job(job.user_id, job.id, deps)
    assert deps.jobs.progress_points(job.id) == []
