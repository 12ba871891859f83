"""The sweep and the start's crash recovery, against in-memory fakes that enforce the DB rules."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.sample_photos import make_photo
from shared.domain.claims import NOT_STARTED_MESSAGE
from shared.domain.job import FailureCode, Job, JobStatus
from shared.errors import UpstreamError
from shared.plumbing.deadline import Deadline
from shared.services.deps import Deps
from shared.services.start import resume_stalled_start, start_training
from shared.services.status import refresh
from shared.services.sweep import sweep, sweep_all
from tests.crash import Boundaries, Crash
from tests.fakes import FakeTrainer, InMemoryJobStore
from tests.unit.helpers import make_deps

PHOTOS = {f"0{i}.jpg": make_photo(64, 64, seed=i) for i in (1, 2, 3)}


@pytest.fixture
def deps() -> Deps:
    return make_deps()


def fake_jobs(deps: Deps) -> InMemoryJobStore:
    assert isinstance(deps.jobs, InMemoryJobStore)
    return deps.jobs


def fake_trainer(deps: Deps) -> FakeTrainer:
    assert isinstance(deps.trainer, FakeTrainer)
    return deps.trainer


def pending_job(deps: Deps) -> Job:
    user_id, job_id = uuid.uuid4(), uuid.uuid4()
    paths = [f"{user_id}/{job_id}/{name}" for name in PHOTOS]
    for path, data in zip(paths, PHOTOS.values(), strict=True):
        deps.photos.put(path, data, "image/jpeg")
    return deps.jobs.insert(
        {
            "id": job_id,
            "user_id": user_id,
            "furrsona_name": "Ember",
            "status": "pending",
            "progress": 20,
            "photo_urls": paths,
        }
    )


def training_job(deps: Deps, **row: Any) -> Job:
    """A started job, its training running on the fake Replicate."""
    job = pending_job(deps)
    started = start_training(job.user_id, job.id, deps)
    fake_jobs(deps).rows[job.id].update(row)
    assert started.replicate_training_id is not None
    return started


def training_id(job: Job) -> str:
    assert job.replicate_training_id is not None
    return job.replicate_training_id


def age(deps: Deps, job_id: uuid.UUID, **columns: timedelta) -> None:
    """Move the named timestamps of a row into the past."""
    now = datetime.now(UTC)
    fake_jobs(deps).rows[job_id].update({k: now - v for k, v in columns.items()})


def row(deps: Deps, job_id: uuid.UUID) -> Job:
    job = deps.jobs.get(job_id)
    assert job is not None
    return job


class Countdown(Deadline):
    """A deadline that passes once `ticks()` has returned `after` truthy values."""

    def __init__(self, after: int, ticks: Callable[[], int]):
        super().__init__(None)
        self._after, self._ticks = after, ticks

    def remaining(self) -> float:
        return 0.0 if self._ticks() >= self._after else float("inf")


def record_reads(deps: Deps) -> list[str]:
    """Training ids in the order the sweep reads them from Replicate."""
    reads: list[str] = []
    real_get = deps.trainer.get_training

    def get(training_id: str) -> Any:
        reads.append(training_id)
        return real_get(training_id)

    deps.trainer.get_training = get  # type: ignore[method-assign]
    return reads


# --- order, concurrency, deadline, errors --------------------------------------------------------


def test_the_least_recently_checked_job_is_checked_first():
    deps = make_deps(sweep_concurrency=1)
    ages = [timedelta(minutes=m) for m in (5, 50, 1, 20)]
    jobs = [training_job(deps) for _ in ages]
    for job, ago in zip(jobs, ages, strict=True):
        age(deps, job.id, last_checked_at=ago)
    never = training_job(deps, last_checked_at=None)
    reads = record_reads(deps)
    report = sweep(deps, Deadline(30))
    by_age = [j for _, j in sorted(zip(ages, jobs, strict=True), key=lambda p: p[0], reverse=True)]
    assert reads == [j.replicate_training_id for j in [never, *by_age]]
    assert report.checked == 5 and report.errors == 0


def test_no_more_than_sweep_concurrency_jobs_are_checked_at_once():
    deps = make_deps(sweep_concurrency=4)
    for _ in range(12):
        training_job(deps)
    in_flight, most = 0, 0
    lock = threading.Lock()
    # Each check waits for three others: fewer than 4 at once would break the barrier.
    together = threading.Barrier(4, timeout=10)
    real_get = deps.trainer.get_training

    def get(training_id: str) -> Any:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        together.wait()
        with lock:
            in_flight -= 1
        return real_get(training_id)

    deps.trainer.get_training = get  # type: ignore[method-assign]
    report = sweep(deps, Deadline(30))
    assert report.errors == 0 and report.checked == 12
    assert most == 4


def test_the_sweep_stops_at_its_deadline_and_the_rest_go_first_next_time():
    deps = make_deps(sweep_concurrency=1)
    jobs = [training_job(deps) for _ in range(6)]
    for i, job in enumerate(jobs):
        age(deps, job.id, last_checked_at=timedelta(minutes=10 - i))
    before = {j.id: row(deps, j.id).last_checked_at for j in jobs}
    reads = record_reads(deps)
    report = sweep(deps, Countdown(3, lambda: len(reads)))
    assert (report.seen, report.checked, report.skipped, report.errors) == (6, 3, 3, 0)
    assert [row(deps, j.id).last_checked_at == before[j.id] for j in jobs] == [False] * 3 + [
        True
    ] * 3
    reads.clear()
    report = sweep(deps, Countdown(3, lambda: len(reads)))
    assert reads == [j.replicate_training_id for j in jobs[3:]]
    assert report.checked == 3 and report.skipped == 3


def test_every_error_is_counted_even_under_heavy_thread_switching():
    deps = make_deps(sweep_concurrency=16)
    jobs = [training_job(deps) for _ in range(96)]

    def broken(training_id: str) -> Any:
        raise UpstreamError("Replicate is down")

    deps.trainer.get_training = broken  # type: ignore[method-assign]
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: racy counters would lose
    try:
        report = sweep(deps, Deadline(30))
    finally:
        sys.setswitchinterval(before)
    assert report.errors == 96 and report.checked == 0
    assert sorted(report.failed_jobs) == sorted(str(j.id) for j in jobs)


def test_a_failing_task_never_stops_the_scheduled_run(deps):
    def down(statuses: Any, limit: int) -> list[Job]:
        raise UpstreamError("The job database is not available right now.")

    deps.jobs.list_active = down
    assert sweep_all(deps, Deadline(30))["trainings"] == {"error": True}


# --- no progress, measured from the last progress change ----------------------------------------


def test_a_long_training_that_keeps_progressing_is_not_canceled(deps):
    job = training_job(deps)
    fake_trainer(deps).set(
        training_id(job),
        status="processing",
        created_at=datetime.now(UTC) - timedelta(hours=5),
    )
    job = refresh(row(deps, job.id), deps)  # the status change is progress: the clock restarts
    assert job.status is JobStatus.TRAINING
    age(deps, job.id, progress_changed_at=timedelta(minutes=80))
    assert refresh(row(deps, job.id), deps).status is JobStatus.TRAINING
    assert fake_trainer(deps).trainings[training_id(job)].status == "processing"


def test_a_training_without_progress_for_the_limit_is_canceled_and_failed(deps):
    job = training_job(deps)
    # Young by creation: only the time since the last progress counts.
    fake_trainer(deps).set(training_id(job), created_at=datetime.now(UTC))
    age(deps, job.id, progress_changed_at=timedelta(minutes=91))
    report = sweep(deps, Deadline(30))
    failed = row(deps, job.id)
    assert report.changed == 1 and failed.status is JobStatus.FAILED
    assert failed.error_message == (
        "The training made no progress for 90 minutes and was canceled; start a new training."
    )
    assert failed.failure_code is FailureCode.STALLED
    assert fake_trainer(deps).trainings[training_id(job)].status == "canceled"


def test_progress_seen_now_restarts_the_clock_instead_of_canceling(deps):
    job = training_job(deps)
    age(deps, job.id, progress_changed_at=timedelta(minutes=91))
    fake_trainer(deps).set(
        training_id(job),
        status="starting",
        logs="flux_train_replicate:  40%|████      | 400/1000 [00:40<01:00, 10it/s]",
    )
    moved = refresh(row(deps, job.id), deps)
    assert moved.status is JobStatus.TRAINING and moved.progress > 30
    assert moved.progress_changed_at is not None
    assert datetime.now(UTC) - moved.progress_changed_at < timedelta(minutes=1)


# --- a start that died at any step ---------------------------------------------------------------


def boundaries_of_a_start() -> Iterator[int]:
    deps = make_deps()
    job = pending_job(deps)
    counter = Boundaries(None)
    start_training(job.user_id, job.id, counter.deps(deps))
    return iter(range(counter.passed))


@pytest.mark.parametrize("boundary", list(boundaries_of_a_start()))
@pytest.mark.parametrize("recovery", ["sweep", "repeated start"])
def test_a_crash_at_any_step_ends_with_exactly_one_training(boundary, recovery):
    deps = make_deps()
    job = pending_job(deps)
    with pytest.raises(Crash):
        start_training(job.user_id, job.id, Boundaries(boundary).deps(deps))
    crashed = row(deps, job.id)
    if crashed.status is JobStatus.PENDING:
        recovery = "repeated start"  # died before queueing it: only the person can start it
    elif crashed.status is JobStatus.TRAINING and crashed.replicate_training_id is None:
        # Within the claim timeout nobody may take over: the holder could still be alive.
        assert start_training(job.user_id, job.id, deps).replicate_training_id is None
        assert sweep(deps, Deadline(30)).checked == 1
        assert fake_trainer(deps).trainings_created <= 1
        timeout = timedelta(seconds=deps.settings.claim_timeout_seconds + 1)
        age(deps, job.id, claimed_at=timeout, last_checked_at=timeout)
    if recovery == "sweep":
        report = sweep_all(deps, Deadline(30))  # the trainings, and the queue for a queued job
        assert not any(task.get("errors") or task.get("error") for task in report.values())
    else:
        start_training(job.user_id, job.id, deps)
    final = row(deps, job.id)
    assert final.status is JobStatus.TRAINING
    assert final.replicate_training_id in fake_trainer(deps).trainings
    assert fake_trainer(deps).trainings_created == 1


def test_a_holder_slowed_down_past_the_claim_timeout_cannot_create_a_second_training(deps):
    job = pending_job(deps)
    real_ensure = deps.trainer.ensure_destination
    resumed: list[Job] = []

    def slow_ensure() -> None:
        # While the first start is stuck here, its claim times out and someone resumes it.
        deps.trainer.ensure_destination = real_ensure
        timeout = timedelta(seconds=deps.settings.claim_timeout_seconds + 1)
        age(deps, job.id, claimed_at=timeout, last_checked_at=timeout)
        resumed.append(resume_stalled_start(row(deps, job.id), deps, datetime.now(UTC)))
        real_ensure()

    deps.trainer.ensure_destination = slow_ensure
    first = start_training(job.user_id, job.id, deps)
    assert fake_trainer(deps).trainings_created == 1
    assert first.replicate_training_id == resumed[0].replicate_training_id


def test_a_claim_that_never_started_is_failed_after_the_stale_limit(deps):
    job = pending_job(deps)
    with pytest.raises(Crash):
        # Boundary 7: right after admission claimed it (get, queue it, read it back, admit).
        start_training(job.user_id, job.id, Boundaries(7).deps(deps))
    claimed = row(deps, job.id)
    assert claimed.status is JobStatus.TRAINING and claimed.replicate_training_id is None
    stale = timedelta(minutes=deps.settings.training_stale_minutes + 1)
    age(deps, job.id, claimed_at=stale, last_checked_at=stale)
    sweep(deps, Deadline(30))
    failed = row(deps, job.id)
    assert failed.status is JobStatus.FAILED and failed.error_message == NOT_STARTED_MESSAGE
    assert failed.failure_code is FailureCode.NOT_STARTED
    assert fake_trainer(deps).trainings_created == 0


def test_a_stale_claim_whose_training_exists_is_adopted_not_failed(deps):
    job = pending_job(deps)
    real_update = deps.jobs.update

    def die_when_recording(job_id: uuid.UUID, changes: dict, **kw: Any) -> Any:
        if "replicate_training_id" in changes:
            raise Crash("died after creating the training")
        return real_update(job_id, changes, **kw)

    deps.jobs.update = die_when_recording
    with pytest.raises(Crash):
        start_training(job.user_id, job.id, deps)
    deps.jobs.update = real_update
    stale = timedelta(minutes=deps.settings.training_stale_minutes + 1)
    age(deps, job.id, claimed_at=stale, last_checked_at=stale)
    sweep(deps, Deadline(30))
    adopted = row(deps, job.id)
    assert adopted.status is JobStatus.TRAINING
    assert adopted.replicate_training_id in fake_trainer(deps).trainings
    assert fake_trainer(deps).trainings_created == 1
