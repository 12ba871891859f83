"""The training queue in the database (migration 20261207000000): admission under a cap, a
budget and a per-owner cap, fair order, the shared hold, a queued job's place; the same rules for
`PostgrestTrainingQueue` over the real PostgREST and the in-memory fake; and admission from many
parallel connections at once never exceeding the cap or the budget.

A database of its own: the cap counts every row in `training`, and the session's database keeps
the other tests' rows."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgrest import SyncPostgrestClient
from psycopg import errors

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import create_user
from devstack.tokens import anon_key, service_role_key, user_access_token
from shared.adapters.postgrest_jobs import PostgrestJobStore
from shared.adapters.postgrest_queue import PostgrestTrainingQueue
from shared.domain.admission import AdmissionRules
from shared.domain.job import Job, JobStatus
from shared.ports import JobStore, TrainingQueue
from tests.fakes import InMemoryJobStore, InMemoryTrainingQueue, InMemoryTwinStore
from tests.stack_fixtures import own_database

pytestmark = pytest.mark.stack

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def queue_db(
    pg: LocalPostgres, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalPostgres, LocalPostgrest]]:
    with own_database(pg, jwt_secret, Path(tmp_path_factory.mktemp("queue"))) as own:
        yield own


@pytest.fixture
def qdb(queue_db: tuple[LocalPostgres, LocalPostgrest]) -> Iterator[psycopg.Connection]:
    """A superuser connection to the queue's database, emptied before each test."""
    database, _ = queue_db
    with psycopg.connect(database.dsn(), autocommit=True) as conn:
        conn.execute("truncate public.training_admission_hold")
        conn.execute("update public.twins set active_job_id = null")
        conn.execute("truncate public.ai_training_jobs cascade")
        yield conn


@dataclass
class Side:
    jobs: JobStore
    queue: TrainingQueue
    new_user: Callable[[], uuid.UUID]


@pytest.fixture(params=["memory", "postgrest"])
def side(
    request: pytest.FixtureRequest,
    queue_db: tuple[LocalPostgres, LocalPostgrest],
    qdb: psycopg.Connection,
    jwt_secret: str,
) -> Side:
    if request.param == "memory":
        jobs = InMemoryJobStore()
        InMemoryTwinStore(jobs)
        return Side(jobs, InMemoryTrainingQueue(jobs), uuid.uuid4)
    database, rest = queue_db
    key = service_role_key(jwt_secret)
    client = SyncPostgrestClient(
        rest.url, headers={"apikey": key, "Authorization": f"Bearer {key}"}, retry_enabled=False
    )
    return Side(
        PostgrestJobStore(lambda: client),
        PostgrestTrainingQueue(lambda: client),
        lambda: uuid.UUID(create_user(database.dsn())),
    )


def queued(side: Side, user: uuid.UUID, at: datetime) -> Job:
    job = side.jobs.insert(
        {
            "id": uuid.uuid4(),
            "user_id": user,
            "furrsona_name": "Ember",
            "status": JobStatus.PENDING,
            "progress": 20,
        }
    )
    moved = side.jobs.update(
        job.id, {"status": JobStatus.QUEUED, "queued_at": at}, expect_status=JobStatus.PENDING
    )
    assert moved is not None
    return moved


def rules(cap: int = 10, per_user: int = 1, budget: float | None = None) -> AdmissionRules:
    return AdmissionRules(
        max_in_flight=cap, per_user=per_user, daily_budget_usd=budget, cost_estimate_usd=1.5
    )


def end(side: Side, job_id: uuid.UUID, cost: float | None = None) -> None:
    ended = side.jobs.update(
        job_id,
        {"status": JobStatus.FAILED, "error_message": "ended", "cost_usd": cost},
        expect_status=JobStatus.TRAINING,
    )
    assert ended is not None


# --- the same rules on both sides ----------------------------------------------------------------


def test_admission_fills_the_free_slots_oldest_first_each_with_a_claim(side: Side) -> None:
    users = [side.new_user() for _ in range(4)]
    jobs = [queued(side, u, NOW + timedelta(seconds=i)) for i, u in enumerate(users)]
    admitted = side.queue.admit(rules(cap=3), 2, NOW)
    assert [a.job_id for a in admitted] == [jobs[0].id, jobs[1].id]  # the limit: 2 of 3 slots
    for entry in admitted:
        row = side.jobs.get(entry.job_id)
        assert row is not None and row.status is JobStatus.TRAINING
        assert row.claim_token == entry.claim_token and row.admitted_at == NOW
        assert row.reserved_cost_usd == 1.5 and row.claimed_at is not None
        assert abs(row.claimed_at - datetime.now(UTC)) < timedelta(minutes=1)  # real time
    assert [a.job_id for a in side.queue.admit(rules(cap=3), 5, NOW)] == [jobs[2].id]  # cap
    assert side.queue.admit(rules(cap=3), 5, NOW) == []
    end(side, jobs[0].id)
    assert [a.job_id for a in side.queue.admit(rules(cap=3), 5, NOW)] == [jobs[3].id]


def test_owners_take_turns_by_their_trainings_today(side: Side) -> None:
    ann, bob, cat = side.new_user(), side.new_user(), side.new_user()
    ann1, ann2 = queued(side, ann, NOW), queued(side, ann, NOW + timedelta(seconds=1))
    bob1 = queued(side, bob, NOW + timedelta(seconds=2))
    [first] = side.queue.admit(rules(cap=1, per_user=2), 1, NOW)
    assert first.job_id == ann1.id
    end(side, ann1.id)
    cat1 = queued(side, cat, NOW + timedelta(seconds=3))
    # ann has had her turn today: bob's and cat's first jobs go before her second.
    order = []
    for _ in range(3):
        [entry] = side.queue.admit(rules(cap=1, per_user=2), 1, NOW)
        order.append(entry.job_id)
        end(side, entry.job_id)
    assert order == [bob1.id, cat1.id, ann2.id]


def test_an_owner_at_their_cap_is_skipped_not_waited_for(side: Side) -> None:
    ann, bob = side.new_user(), side.new_user()
    ann1, ann2 = queued(side, ann, NOW), queued(side, ann, NOW + timedelta(seconds=1))
    bob1 = queued(side, bob, NOW + timedelta(seconds=2))
    admitted = side.queue.admit(rules(cap=10, per_user=1), 10, NOW)
    assert {a.job_id for a in admitted} == {ann1.id, bob1.id}
    place = side.queue.place(ann2.id, 1, NOW)
    assert place is not None and place.eligible is False and place.owner_in_flight == 1


def test_the_budget_counts_bills_and_reservations_of_the_day(side: Side) -> None:
    users = [side.new_user() for _ in range(4)]
    jobs = [queued(side, u, NOW + timedelta(seconds=i)) for i, u in enumerate(users)]
    # $4 a day at $1.50 each: two fit ($3 reserved), a third would make $4.50.
    assert len(side.queue.admit(rules(budget=4.0), 10, NOW)) == 2
    assert side.queue.admit(rules(budget=4.0), 10, NOW) == []
    end(side, jobs[0].id, cost=0.9)  # billed less than reserved: $0.90 + $1.50 = $2.40
    assert [a.job_id for a in side.queue.admit(rules(budget=4.0), 10, NOW)] == [jobs[2].id]
    assert side.queue.stats(NOW).spent_today == pytest.approx(3.9)
    tomorrow = NOW + timedelta(days=1)
    assert [a.job_id for a in side.queue.admit(rules(budget=4.0), 10, tomorrow)] == [jobs[3].id]
    assert side.queue.stats(tomorrow).spent_today == pytest.approx(1.5)


def test_a_hold_stops_every_admission_until_it_ends_and_only_grows(side: Side) -> None:
    job = queued(side, side.new_user(), NOW)
    assert side.queue.hold(NOW + timedelta(seconds=30), "replicate_throttled") == NOW + timedelta(
        seconds=30
    )
    assert side.queue.hold(NOW + timedelta(seconds=5), "replicate_throttled") == NOW + timedelta(
        seconds=30
    )
    assert side.queue.admit(rules(), 10, NOW + timedelta(seconds=29)) == []
    [entry] = side.queue.admit(rules(), 10, NOW + timedelta(seconds=31))
    assert entry.job_id == job.id


def test_a_queued_jobs_place_and_the_queue_stats(side: Side) -> None:
    users = [side.new_user() for _ in range(3)]
    jobs = [queued(side, u, NOW + timedelta(seconds=i)) for i, u in enumerate(users)]
    [running] = side.queue.admit(rules(cap=1), 1, NOW)
    ends = NOW + timedelta(minutes=7)
    side.jobs.update(running.job_id, {"estimated_completion": ends})
    place = side.queue.place(jobs[2].id, 1, NOW)
    assert place is not None
    assert (place.position, place.eligible, place.in_flight) == (2, True, 1)
    assert place.running_ends == [ends] and place.queued_at == NOW + timedelta(seconds=2)
    assert place.held_until is None and place.spent_today == pytest.approx(1.5)
    assert side.queue.place(running.job_id, 1, NOW) is None  # not queued
    stats = side.queue.stats(NOW)
    assert (stats.depth, stats.in_flight, stats.oldest_queued_at) == (
        2,
        1,
        NOW + timedelta(seconds=1),
    )


def test_places_in_line_are_ranked_live_until_the_sweep_keeps_them(side: Side) -> None:
    ann, bob = side.new_user(), side.new_user()
    ann1, ann2 = queued(side, ann, NOW), queued(side, ann, NOW + timedelta(seconds=1))
    bob1 = queued(side, bob, NOW + timedelta(seconds=2))
    # Owners take turns: ann1, bob1, then ann2.
    assert [side.queue.place(j.id, 2, NOW).position for j in (ann1, bob1, ann2)] == [1, 2, 3]  # type: ignore[union-attr]
    assert side.queue.refresh_positions(2, NOW) == 3
    assert side.queue.refresh_positions(2, NOW) == 0  # nothing moved: nothing written
    assert [side.jobs.get(j.id).queue_position for j in (ann1, bob1, ann2)] == [1, 2, 3]  # type: ignore[union-attr]
    [first] = side.queue.admit(rules(cap=1, per_user=2), 1, NOW)
    assert first.job_id == ann1.id and side.jobs.get(ann1.id).queue_position is None  # type: ignore[union-attr]
    assert side.queue.place(bob1.id, 2, NOW).position == 2  # type: ignore[union-attr]  # kept till the sweep
    assert side.queue.refresh_positions(2, NOW) == 2
    assert [side.jobs.get(j.id).queue_position for j in (bob1, ann2)] == [1, 2]  # type: ignore[union-attr]


# --- the database alone -------------------------------------------------------------------------


def _job(db: psycopg.Connection, user: str, status: str = "queued", at: datetime = NOW) -> str:
    row = db.execute(
        "insert into ai_training_jobs (user_id, furrsona_name) values (%s, 'Ember') returning id",
        [user],
    ).fetchone()
    assert row is not None
    if status != "pending":
        db.execute(
            "update ai_training_jobs set status = 'queued', queued_at = %s where id = %s",
            [at, row[0]],
        )
    return str(row[0])


def _admit(dsn: str, cap: int, budget: float | None, limit: int) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "select job_id from admit_trainings(%s, 100, %s::numeric, 1.5, %s, %s)",
            [cap, budget, limit, NOW],
        ).fetchall()
    return [str(r[0]) for r in rows]


@pytest.mark.parametrize(("cap", "budget", "expected"), [(5, None, 5), (50, 9.0, 6)])
def test_parallel_admitters_never_exceed_the_cap_or_the_budget(
    queue_db: tuple[LocalPostgres, LocalPostgrest],
    qdb: psycopg.Connection,
    cap: int,
    budget: float | None,
    expected: int,
) -> None:
    database, _ = queue_db
    users = [create_user(database.dsn()) for _ in range(40)]
    for i, user in enumerate(users):
        _job(qdb, user, at=NOW + timedelta(milliseconds=i))
    barrier = threading.Barrier(16)
    admitted: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def admitter() -> None:
        barrier.wait()
        try:
            for _ in range(3):
                got = _admit(database.dsn(), cap, budget, 3)
                with lock:
                    admitted.extend(got)
        except BaseException as exc:  # a thread's error would otherwise vanish
            failures.append(exc)

    threads = [threading.Thread(target=admitter) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(admitted) == len(set(admitted)) == expected
    training = qdb.execute("select count(*) from ai_training_jobs where status = 'training'")
    assert training.fetchone() == (expected,)


def test_admission_takes_exactly_the_full_orders_first_jobs(
    queue_db: tuple[LocalPostgres, LocalPostgrest], qdb: psycopg.Connection
) -> None:
    """The index path for first turns and the full ranking agree: owners with trainings today,
    several twins in line and one at their cap, admitted in several rounds."""
    import random

    database, _ = queue_db
    rng = random.Random(3)
    users = [create_user(database.dsn()) for _ in range(30)]
    for i in range(80):
        _job(qdb, rng.choice(users), at=NOW + timedelta(seconds=rng.randrange(600), milliseconds=i))
    for user in users[:6]:  # trained earlier today
        job = _job(qdb, user, at=NOW - timedelta(hours=2))
        qdb.execute(
            "update ai_training_jobs set status = 'training', admitted_at = %s where id = %s",
            [NOW - timedelta(hours=1), job],
        )
        if user in users[:3]:
            qdb.execute("update ai_training_jobs set status = 'failed' where id = %s", [job])
    for limit in (4, 9, 15, 30):
        expected = [
            str(r[0])
            for r in qdb.execute(
                "select id from training_queue(2, %s) where eligible order by place limit %s",
                [NOW, limit],
            ).fetchall()
        ]
        got = [
            str(r[0])
            for r in qdb.execute(
                "select job_id from admit_trainings(1000, 2, null, 1.5, %s, %s)", [limit, NOW]
            ).fetchall()
        ]
        assert sorted(got) == sorted(expected) and got


def test_back_in_line_only_while_no_training_exists(qdb: psycopg.Connection) -> None:
    user = create_user_in(qdb)
    job = _job(qdb, user)
    qdb.execute("update ai_training_jobs set status = 'training' where id = %s", [job])
    qdb.execute("update ai_training_jobs set status = 'queued' where id = %s", [job])
    qdb.execute(
        "update ai_training_jobs set status = 'training', replicate_training_id = 'r1'"
        " where id = %s",
        [job],
    )
    with pytest.raises(errors.CheckViolation, match="status move training -> queued"):
        qdb.execute("update ai_training_jobs set status = 'queued' where id = %s", [job])
    with pytest.raises(errors.CheckViolation, match="status move pending -> training"):
        qdb.execute(
            "update ai_training_jobs set status = 'training' where id = %s",
            [_job(qdb, user, status="pending")],
        )
    with pytest.raises(errors.CheckViolation, match="queued_has_time"):
        qdb.execute(
            "update ai_training_jobs set status = 'queued', queued_at = null where id = %s",
            [_job(qdb, user, status="pending")],
        )


def create_user_in(db: psycopg.Connection) -> str:
    row = db.execute("insert into auth.users (email) values (null) returning id::text").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_only_the_backend_may_admit_hold_or_read_the_queue(
    queue_db: tuple[LocalPostgres, LocalPostgrest], qdb: psycopg.Connection, jwt_secret: str,
    role: str,
) -> None:  # fmt: skip
    from postgrest.exceptions import APIError

    database, rest = queue_db
    user = create_user(database.dsn())
    job = _job(qdb, user)
    key = anon_key(jwt_secret)
    token = key if role == "anon" else user_access_token(jwt_secret, "http://supabase.test", user)
    client = SyncPostgrestClient(
        rest.url, headers={"apikey": key, "Authorization": f"Bearer {token}"}
    )
    calls: list[tuple[str, dict[str, Any]]] = [
        ("admit_trainings", {"p_max": 9, "p_per_user": 9, "p_budget": None, "p_estimate": 1,
                             "p_limit": 9}),
        ("hold_training_admissions", {"p_until": NOW.isoformat(), "p_reason": "x"}),
        ("training_queue_place", {"p_job": job, "p_per_user": 1}),
        ("training_queue_stats", {}),
    ]  # fmt: skip
    for name, params in calls:
        with pytest.raises(APIError) as refused:
            client.rpc(name, params).execute()
        assert refused.value.code in ("42501", "PGRST202"), (name, refused.value)
    assert qdb.execute("select status from ai_training_jobs where id = %s", [job]).fetchone() == (
        "queued",
    )
    with pytest.raises(APIError):
        client.table("training_admission_hold").select("*").execute()
