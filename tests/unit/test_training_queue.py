"""The training queue on in-memory fakes that keep the database's rules: the cap, owners taking
turns, the per-owner cap, the daily budget on a controllable clock, Replicate's 429 held for
everyone, cancel and delete while queued, and jobs that waited too long."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.sample_photos import make_photo
from shared.domain.caller import Caller
from shared.domain.job import FailureCode, Job, JobStatus
from shared.domain.phases import Phase
from shared.domain.queue import HeldBy
from shared.errors import AppError, ErrorCode, UpstreamError
from shared.plumbing.deadline import Deadline
from shared.services.deps import Deps
from shared.services.intake import normalise_all
from shared.services.privacy import cancel_job, delete_job
from shared.services.start import start_training
from shared.services.status import get_status, status_answer
from shared.services.sweep import sweep_all
from shared.services.upload import create_job_with_photos
from shared.services.versions import VersionPlan
from tests.fakes import FakeTrainer, InMemoryTrainingQueue
from tests.unit.helpers import make_deps

PHOTOS = [(f"p{i}.jpg", make_photo(640, 640, seed=500 + i)) for i in range(3)]


class Clock:
    """The queue's clock, moved by the test; it starts at the real time, which the fakes' other
    times (a training's estimate) come from."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def queue_deps(**settings: Any) -> Deps:
    deps = make_deps(**{"status_refresh_seconds": 0, **settings})
    deps.clock = Clock()
    return deps


def owner() -> Caller:
    return Caller(user_id=uuid.uuid4(), claims={})


def uploaded(deps: Deps, who: Caller) -> Job:
    """A new twin's first version, pending: photos stored, not started."""
    jpegs = normalise_all(PHOTOS, deps.settings)
    return create_job_with_photos(who, VersionPlan("Ember", {"type": "fox"}, None), jpegs, deps)


def started(deps: Deps, who: Caller) -> Job:
    return start_training(who.user_id, uploaded(deps, who).id, deps)


def trainer(deps: Deps) -> FakeTrainer:
    assert isinstance(deps.trainer, FakeTrainer)
    return deps.trainer


def finish(deps: Deps, job: Job, who: Caller) -> Job:
    """Replicate ends the job's training; the next status read sees it (and frees the slot)."""
    current = deps.jobs.get(job.id)
    assert current is not None and current.replicate_training_id
    version = f"flurrty/flurrty-twins:{uuid.uuid4().hex}{uuid.uuid4().hex}"
    trainer(deps).set(
        current.replicate_training_id, status="succeeded", output={"version": version}
    )
    return get_status(who.user_id, job.id, deps)


def status_of(deps: Deps, job: Job) -> JobStatus:
    current = deps.jobs.get(job.id)
    assert current is not None
    return current.status


def test_starts_beyond_the_cap_wait_in_line_and_each_finished_training_lets_the_next_in():
    deps = queue_deps(max_concurrent_trainings=2)
    clock = deps.clock
    assert isinstance(clock, Clock)
    people = [owner() for _ in range(4)]
    jobs = []
    for who in people:
        clock.advance(seconds=1)
        jobs.append(started(deps, who))
    assert [j.status for j in jobs] == [JobStatus.TRAINING] * 2 + [JobStatus.QUEUED] * 2
    assert trainer(deps).trainings_created == 2
    waiting = status_answer(jobs[3], deps)
    assert waiting.phase is Phase.WAITING and waiting.progress == 20
    assert waiting.queue is not None and waiting.queue.position == 2
    assert waiting.queue.held_by is HeldBy.CAP and "number 2 in line" in waiting.queue.message
    assert waiting.estimated_completion is not None
    assert waiting.estimated_completion > waiting.queue.estimated_start_at
    finish(deps, jobs[0], people[0])
    assert status_of(deps, jobs[2]) is JobStatus.TRAINING  # the freed slot, at once
    assert trainer(deps).trainings_created == 3
    assert status_answer(jobs[3], deps).queue.position == 1  # type: ignore[union-attr]
    assert status_answer(jobs[2], deps).queue is None


def test_owners_take_turns_and_each_keeps_their_own_order():
    deps = queue_deps(max_concurrent_trainings=1, max_trainings_per_user=3)
    ann, bob, cat = owner(), owner(), owner()
    first = started(deps, ann)  # takes the only slot
    clock = deps.clock
    assert isinstance(clock, Clock)
    line: list[tuple[str, Job]] = []
    for name, who in [("ann2", ann), ("ann3", ann), ("bob1", bob), ("cat1", cat)]:
        clock.advance(seconds=1)
        line.append((name, started(deps, who)))
    people = {"ann": ann, "bob": bob, "cat": cat}
    jobs = {"ann1": first, **dict(line)}
    order, running = [], "ann1"
    for _ in line:
        finish(deps, jobs[running], people[running[:3]])
        running = next(n for n, job in jobs.items() if status_of(deps, job) is JobStatus.TRAINING)
        order.append(running)
    # Every owner's first job before anyone's second; within an owner, oldest first.
    assert order == ["bob1", "cat1", "ann2", "ann3"]


def test_an_owner_at_their_cap_waits_for_their_own_training_and_others_go_ahead():
    deps = queue_deps(max_concurrent_trainings=10, max_trainings_per_user=1)
    ann, bob = owner(), owner()
    mine = started(deps, ann)
    second = started(deps, ann)  # another twin of hers
    assert (mine.status, second.status) == (JobStatus.TRAINING, JobStatus.QUEUED)
    place = status_answer(second, deps).queue
    assert place is not None and place.held_by is HeldBy.OWN_TRAINING
    assert "other twin is training" in place.message
    assert started(deps, bob).status is JobStatus.TRAINING  # the slots are not hers to hold
    finish(deps, mine, ann)
    assert status_of(deps, second) is JobStatus.TRAINING


def test_the_daily_budget_holds_jobs_until_the_next_day():
    deps = queue_deps(daily_training_budget_usd=3.0, training_cost_estimate_usd=1.5)
    clock = deps.clock
    assert isinstance(clock, Clock)
    people = [owner() for _ in range(3)]
    jobs = [started(deps, who) for who in people]
    assert [j.status for j in jobs] == [JobStatus.TRAINING, JobStatus.TRAINING, JobStatus.QUEUED]
    place = status_answer(jobs[2], deps).queue
    assert place is not None and place.held_by is HeldBy.BUDGET
    assert "tomorrow" in place.message and place.estimated_start_at.date() == date_after(clock)
    # The first two end (billed, say, $1.20 each): still $0.60 short of a third today.
    for job, who in zip(jobs[:2], people[:2], strict=True):
        finish(deps, job, who)
    sweep_all(deps, Deadline(30))
    assert status_of(deps, jobs[2]) is JobStatus.QUEUED and trainer(deps).trainings_created == 2
    clock.now = clock.now.replace(hour=0, minute=1) + timedelta(days=1)
    sweep_all(deps, Deadline(30))
    assert status_of(deps, jobs[2]) is JobStatus.TRAINING and trainer(deps).trainings_created == 3


def date_after(clock: Clock) -> Any:
    return (clock.now + timedelta(days=1)).date()


def test_a_throttled_start_goes_back_in_line_and_holds_every_admission():
    deps = queue_deps(max_concurrent_trainings=5)
    clock = deps.clock
    assert isinstance(clock, Clock)
    trainer(deps).fail_create_with = UpstreamError(
        "throttled", ErrorCode.UPSTREAM_THROTTLED, retry_after=20
    )
    ann, bob = owner(), owner()
    job = started(deps, ann)
    assert job.status is JobStatus.QUEUED and job.claim_token is None
    assert job.queued_at is not None and trainer(deps).trainings_created == 0
    queue = deps.queue
    assert isinstance(queue, InMemoryTrainingQueue)
    assert queue.held_until == clock.now + timedelta(seconds=20)
    trainer(deps).fail_create_with = None
    # While the hold lasts nobody is let in, not even a new start.
    assert started(deps, bob).status is JobStatus.QUEUED
    place = status_answer(job, deps).queue
    assert place is not None and place.held_by is HeldBy.THROTTLE
    assert place.estimated_start_at >= clock.now + timedelta(seconds=20)
    clock.advance(seconds=21)
    sweep_all(deps, Deadline(30))
    assert status_of(deps, job) is JobStatus.TRAINING
    assert trainer(deps).trainings_created == 2  # both, each exactly once


def test_a_hold_never_exceeds_its_cap_whatever_replicate_asks():
    deps = queue_deps(throttle_hold_max_seconds=60)
    trainer(deps).fail_create_with = UpstreamError(
        "throttled", ErrorCode.UPSTREAM_THROTTLED, retry_after=86_400
    )
    started(deps, owner())
    queue = deps.queue
    assert isinstance(queue, InMemoryTrainingQueue) and queue.held_until is not None
    assert queue.held_until - deps.clock() == timedelta(seconds=60)


def test_a_queued_job_can_be_canceled_or_deleted_and_never_trains():
    deps = queue_deps(max_concurrent_trainings=1)
    ann, bob, cat = owner(), owner(), owner()
    started(deps, ann)
    waiting, going = started(deps, bob), started(deps, cat)
    canceled = cancel_job(bob.user_id, waiting.id, deps)
    assert canceled.status is JobStatus.FAILED
    assert canceled.failure_code is FailureCode.CANCELED_BY_USER
    assert canceled.phase is Phase.CANCELED
    gone = delete_job(cat.user_id, going.id, deps)
    assert gone.status is JobStatus.FAILED and gone.deletion_requested_at is not None
    sweep_all(deps, Deadline(30))
    assert trainer(deps).trainings_created == 1
    with pytest.raises(AppError) as info:
        start_training(bob.user_id, waiting.id, deps)
    assert info.value.code == "job_failed"


def test_a_retrain_waits_while_the_twins_version_is_queued():
    deps = queue_deps(max_concurrent_trainings=1)
    started(deps, owner())
    who = owner()
    queued = started(deps, who)
    twin = deps.twins.get(queued.twin_id)  # type: ignore[arg-type]
    assert queued.status is JobStatus.QUEUED and twin is not None
    jpegs = normalise_all(PHOTOS, deps.settings)
    with pytest.raises(AppError) as info:
        create_job_with_photos(who, VersionPlan(twin.name, {}, twin), jpegs, deps)
    assert info.value.code == "twin_busy"


def test_a_job_that_waited_too_long_is_failed_with_its_reason():
    deps = queue_deps(max_concurrent_trainings=1, queue_max_wait_hours=2)
    clock = deps.clock
    assert isinstance(clock, Clock)
    started(deps, owner())
    waiting = started(deps, owner())
    clock.advance(hours=1)
    sweep_all(deps, Deadline(30))
    assert status_of(deps, waiting) is JobStatus.QUEUED
    clock.advance(hours=1, seconds=1)
    report = sweep_all(deps, Deadline(30))
    expired = deps.jobs.get(waiting.id)
    assert expired is not None and expired.status is JobStatus.FAILED
    assert expired.failure_code is FailureCode.QUEUE_EXPIRED
    assert "waited in line too long" in (expired.error_message or "")
    assert report["queue"]["expired"] == 1


def test_the_sweep_fills_free_slots_left_by_a_start_that_could_not_launch():
    deps = queue_deps(max_concurrent_trainings=3)
    trainer(deps).fail_create_with = UpstreamError("Replicate is down")
    people = [owner() for _ in range(3)]
    with pytest.raises(UpstreamError):  # the caller hears about their own start
        started(deps, people[0])
    trainer(deps).fail_create_with = None
    jobs = [started(deps, who) for who in people[1:]]
    assert all(j.status is JobStatus.TRAINING for j in jobs)
    report = sweep_all(deps, Deadline(30))
    assert report["queue"]["depth"] == 0 and report["queue"]["in_flight"] == 3
