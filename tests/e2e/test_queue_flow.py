"""Batch training end to end, over HTTP through the real handlers, PostgREST and Postgres, with
the Replicate emulator: a small cap, starts that wait in line and start as trainings end (the
emulator's webhooks), cancel and delete while queued, the daily budget on a controllable clock,
and Replicate's 429 held for every start.

A stack of its own on a database of its own: the cap counts every training row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from devstack.postgres import LocalPostgres
from devstack.replicate_emulator import ReplicateEmulator
from devstack.stack import LocalStack
from shared import bootstrap
from tests.stack_fixtures import User, own_database, photo_files, stack_on, wait_for

CAP = 2
CREATE = "/v1/models/{owner}/{name}/versions/{version}/trainings"
ENV = {
    "MAX_CONCURRENT_TRAININGS": str(CAP),
    "MAX_TRAININGS_PER_USER": "1",
    "TRAINING_COST_ESTIMATE_USD": "1.5",
    "STATUS_REFRESH_SECONDS": "0",
}


@pytest.fixture(scope="module")
def queue_stack(
    pg: LocalPostgres, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    data_dir = Path(tmp_path_factory.mktemp("queue-stack"))
    with (
        own_database(pg, jwt_secret, data_dir) as (db, rest),
        stack_on(db, rest, jwt_secret, data_dir, train_seconds=1.5, extra_env=ENV) as local,
    ):
        yield local


class Day:
    """The queue's clock (`shared.bootstrap.clock`) on a day of the budget test's own (the
    other tests' admissions count on the real day); `next_day()` is midnight after."""

    def __init__(self, offset_days: int):
        real = datetime.now(UTC)
        self.start = real.replace(hour=9, minute=0) + timedelta(days=offset_days)
        self.offset = self.start - real

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def next_day(self) -> None:
        midnight = (self.start + timedelta(days=1)).replace(hour=0, minute=1)
        self.offset += midnight - self()


@pytest.fixture
def clean(queue_stack: LocalStack) -> Iterator[None]:
    """Afterwards: no faults, no hold, nothing in flight for the next test."""
    assert queue_stack.pg is not None and queue_stack.replicate is not None
    yield
    queue_stack.replicate.faults.clear()
    with psycopg.connect(queue_stack.pg.dsn(), autocommit=True) as db:
        db.execute("truncate training_admission_hold")
        db.execute(
            "update ai_training_jobs set status = 'failed', error_message = 'test over',"
            " failure_code = 'canceled_by_user' where status in ('queued', 'training', 'pending')"
        )


@pytest.fixture
def budget_day(monkeypatch: pytest.MonkeyPatch) -> Iterator[Day]:
    """$6 a day (four trainings at the $1.50 estimate, and billed about as much: the emulator's
    1.5 s trainings at $1 a second), on a day of this test's own."""
    clock = Day(offset_days=100)
    monkeypatch.setattr(bootstrap, "clock", clock)
    monkeypatch.setenv("DAILY_TRAINING_BUDGET_USD", "6")
    monkeypatch.setenv("TRAINING_PRICE_PER_SECOND", "1")
    bootstrap.reset()  # settings are read once per container
    yield clock
    monkeypatch.undo()
    bootstrap.reset()


def person(stack: LocalStack) -> User:
    return User(*stack.sign_in())


def start(stack: LocalStack, http: httpx.Client, who: User) -> dict[str, Any]:
    uploaded = http.post(
        stack.url("upload_training_photos"),
        headers=who.headers,
        data={"fursonaName": "Ember", "customizationData": '{"type": "fox"}'},
        files=photo_files(),
    )
    assert uploaded.status_code == 201, uploaded.text
    started = http.post(
        stack.url("start_ai_training"),
        headers=who.headers,
        json={"jobId": uploaded.json()["jobId"]},
    )
    assert started.status_code == 202, started.text
    body: dict[str, Any] = started.json()
    return body


def status(stack: LocalStack, http: httpx.Client, who: User, job_id: str) -> dict[str, Any]:
    answer = http.get(
        stack.url("check_training_status"), headers=who.headers, params={"jobId": job_id}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def in_training(stack: LocalStack) -> int:
    assert stack.pg is not None
    with psycopg.connect(stack.pg.dsn()) as db:
        row = db.execute(
            "select count(*) from ai_training_jobs where status = 'training'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_starts_beyond_the_cap_wait_in_line_then_train_as_slots_free(
    queue_stack: LocalStack, http: httpx.Client, clean: None
) -> None:
    emulator = queue_stack.replicate
    assert emulator is not None
    emulator.reset_stats()
    people = [person(queue_stack) for _ in range(4)]
    answers = [start(queue_stack, http, who) for who in people]
    assert [a["status"] for a in answers] == ["training", "training", "queued", "queued"]
    assert answers[0]["queue"] is None and answers[0]["trainingId"]
    place = answers[3]["queue"]
    assert place["position"] == 2 and place["heldBy"] == "cap"
    assert "number 2 in line" in place["message"] and answers[3]["trainingId"] is None
    waiting = status(queue_stack, http, people[3], answers[3]["jobId"])
    assert waiting["phase"] == "waiting" and waiting["progress"] == 20
    assert waiting["queue"]["estimatedStartAt"] < waiting["estimatedCompletion"]
    # The emulator's webhooks end the first two; each ending lets the next one in.
    for who, answer in zip(people, answers, strict=True):
        wait_for(lambda: status(queue_stack, http, who, answer["jobId"])["status"] == "completed")
    assert emulator.stats()["max_trainings_in_flight"] <= CAP
    assert emulator.stats()["trainings"] >= 4 and in_training(queue_stack) == 0


def test_a_queued_job_is_canceled_or_deleted_and_never_trains(
    queue_stack: LocalStack, http: httpx.Client, clean: None
) -> None:
    emulator = queue_stack.replicate
    assert emulator is not None
    busy = [start(queue_stack, http, person(queue_stack)) for _ in range(CAP)]
    assert all(b["status"] == "training" for b in busy)
    before = emulator.stats()["trainings"]
    ann, bob = person(queue_stack), person(queue_stack)
    hers, his = start(queue_stack, http, ann), start(queue_stack, http, bob)
    assert hers["status"] == his["status"] == "queued"
    canceled = http.post(
        queue_stack.url("check_training_status") + "cancel",
        headers=ann.headers,
        json={"jobId": hers["jobId"]},
    )
    assert canceled.status_code == 200 and canceled.json()["errorCode"] == "canceled_by_user"
    deleted = http.delete(
        queue_stack.url("check_training_status"),
        headers=bob.headers,
        params={"jobId": his["jobId"]},
    )
    assert deleted.status_code in (200, 202), deleted.text
    # The two trainings end (webhooks); the slots they free go to nobody.
    wait_for(lambda: in_training(queue_stack) == 0)
    queue_stack.functions.fire_schedule()  # type: ignore[union-attr]
    assert emulator.stats()["trainings"] == before  # neither of them ever trained
    assert in_training(queue_stack) == 0


def test_the_budget_holds_the_fifth_until_the_next_day(
    queue_stack: LocalStack, http: httpx.Client, clean: None, budget_day: Day
) -> None:
    people = [person(queue_stack) for _ in range(5)]
    answers = []
    for who in people:
        answers.append(start(queue_stack, http, who))
        wait_for(lambda: in_training(queue_stack) < CAP, timeout=30)  # the cap is not the point
    last = answers[4]
    assert [a["status"] for a in answers[:4]].count("queued") <= 2
    wait_for(
        lambda: all(
            status(queue_stack, http, w, a["jobId"])["status"] == "completed"
            for w, a in zip(people[:4], answers[:4], strict=True)
        )
    )
    queue_stack.functions.fire_schedule()  # type: ignore[union-attr]
    held = status(queue_stack, http, people[4], last["jobId"])
    assert held["status"] == "queued" and held["queue"]["heldBy"] == "budget"
    assert "tomorrow" in held["queue"]["message"]
    budget_day.next_day()
    queue_stack.functions.fire_schedule()  # type: ignore[union-attr]
    assert status(queue_stack, http, people[4], last["jobId"])["status"] == "training"


def test_a_429_on_a_create_holds_every_start_until_its_retry_after(
    queue_stack: LocalStack, http: httpx.Client, clean: None
) -> None:
    emulator: ReplicateEmulator | None = queue_stack.replicate
    assert emulator is not None and queue_stack.pg is not None
    emulator.faults.add("POST", r"/trainings$", "status", status=429, retry_after=3)
    ann, bob = person(queue_stack), person(queue_stack)
    hers = start(queue_stack, http, ann)
    assert hers["status"] == "queued" and hers["queue"]["heldBy"] == "throttle"
    with psycopg.connect(queue_stack.pg.dsn()) as db:
        held = db.execute("select held_until - now() from training_admission_hold").fetchone()
    assert held is not None and timedelta(seconds=1) < held[0] <= timedelta(seconds=3)
    creates = emulator.count("POST", CREATE)
    his = start(queue_stack, http, bob)  # held back: not even tried
    assert his["status"] == "queued" and emulator.count("POST", CREATE) == creates
    wait_for(lambda: (queue_stack.functions.fire_schedule(), in_training(queue_stack) == 2)[1])  # type: ignore[union-attr]
    assert status(queue_stack, http, ann, hers["jobId"])["status"] in ("training", "completed")
