"""The previews migration on real Postgres and PostgREST: the `PreviewStore` contract against the
fake and the adapter side by side, the table's rules, RLS (the owner reads public columns of
their own pictures only), the daily on-demand limit under concurrent callers, the day's spend."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import create_user
from devstack.tokens import anon_key, service_role_key, user_access_token
from shared.adapters.postgrest_jobs import PostgrestJobStore
from shared.adapters.postgrest_previews import PostgrestPreviewStore
from shared.domain.job import JobStatus
from shared.domain.previews import PreviewFailure, PreviewKind, PreviewStatus, preview_id, seed_of
from shared.errors import AppError
from shared.ports import JobStore, PreviewStore
from tests.fakes import InMemoryJobStore, InMemoryPreviewStore

pytestmark = pytest.mark.stack

TABLE = "twin_previews"
VERSION = "flurrty/flurrty-twins:" + "c" * 64
PUBLIC_PREVIEW_COLUMNS = {
    "id", "job_id", "user_id", "set_id", "kind", "slot", "style", "status", "prompt",
    "storage_path", "content_type", "failure_code", "error_message", "created_at", "finished_at",
}  # fmt: skip


def service(rest: LocalPostgrest, secret: str) -> SyncPostgrestClient:
    key = service_role_key(secret)
    return SyncPostgrestClient(
        rest.url, headers={"apikey": key, "Authorization": f"Bearer {key}"}, retry_enabled=False
    )


Stores = tuple[PreviewStore, JobStore, Callable[[], uuid.UUID]]


@pytest.fixture(params=["memory", "postgrest"])
def stores(
    request: pytest.FixtureRequest, pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str
) -> Iterator[Stores]:
    if request.param == "memory":
        jobs = InMemoryJobStore()
        yield InMemoryPreviewStore(jobs), jobs, uuid.uuid4
        return
    client = service(rest, jwt_secret)
    yield (
        PostgrestPreviewStore(lambda: client),
        PostgrestJobStore(lambda: client),
        lambda: uuid.UUID(create_user(pg.dsn())),
    )


def a_job(jobs: JobStore, user: uuid.UUID) -> uuid.UUID:
    job = jobs.insert(
        {
            "id": uuid.uuid4(),
            "user_id": user,
            "furrsona_name": "Ember",
            "status": JobStatus.PENDING,
            "progress": 20,
        }
    )
    return job.id


def rows(
    job: uuid.UUID, user: uuid.UUID, count: int = 2, kind: PreviewKind = PreviewKind.COMPLETION
) -> list[dict[str, Any]]:
    set_id = uuid.uuid4()
    out = []
    for slot in range(count):
        pid = preview_id(set_id, slot)
        out.append(
            {
                "id": pid,
                "job_id": job,
                "user_id": user,
                "set_id": set_id,
                "kind": kind,
                "slot": slot,
                "style": None,
                "prompt": f"portrait of TOK {slot}",
                "seed": seed_of(pid),
                "lora_scale": 1.0,
                "model_version": VERSION,
                "reserved_cost_usd": 0.012,
            }
        )
    return out


def test_a_set_inserted_twice_is_one_set(stores: Stores) -> None:
    previews, jobs, new_user = stores
    user = new_user()
    made = rows(a_job(jobs, user), user)
    first = previews.insert_set(made)
    again = previews.insert_set(made)
    assert [p.id for p in first] == [p.id for p in again] == [r["id"] for r in made]
    assert all(p.status is PreviewStatus.PENDING and p.claim_token is None for p in again)
    assert len(previews.for_jobs([made[0]["job_id"]])) == 2


def test_a_claim_is_a_compare_and_set_and_a_recorded_prediction_ends_claiming(
    stores: Stores,
) -> None:
    previews, jobs, new_user = stores
    user = new_user()
    p = previews.insert_set(rows(a_job(jobs, user), user, 1))[0]
    now = datetime.now(UTC)
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    assert previews.claim(p.id, None, mine, now) is not None
    assert previews.claim(p.id, None, theirs, now) is None  # taken
    taken = previews.claim(p.id, mine, theirs, now)  # a takeover of the claim we saw
    assert taken is not None and taken.claim_token == theirs
    assert previews.update(p.id, {"prediction_id": "x1"}, expect_claim=mine) is None
    recorded = previews.update(p.id, {"prediction_id": "x1"}, expect_claim=theirs)
    assert recorded is not None and recorded.prediction_id == "x1"
    assert previews.claim(p.id, theirs, uuid.uuid4(), now) is None  # nothing left to claim
    with pytest.raises(AppError):
        previews.update(p.id, {"prediction_id": "x2"})  # a prediction never changes


def test_a_final_picture_stays_final_and_a_ready_one_is_stored(stores: Stores) -> None:
    previews, jobs, new_user = stores
    user = new_user()
    a, b = previews.insert_set(rows(a_job(jobs, user), user))
    with pytest.raises(AppError):
        previews.update(a.id, {"status": PreviewStatus.READY})  # no object
    ready = previews.update(
        a.id, {"status": PreviewStatus.READY, "storage_path": "u/previews/j/a.webp"}
    )
    assert ready is not None and ready.status is PreviewStatus.READY
    assert previews.update(a.id, {"status": PreviewStatus.FAILED}) is None  # not pending now
    with pytest.raises(AppError):
        previews.update(
            a.id,
            {"status": PreviewStatus.FAILED, "failure_code": PreviewFailure.UNSAFE},
            expect_status=None,
        )
    failed = previews.update(
        b.id,
        {
            "status": PreviewStatus.FAILED,
            "failure_code": PreviewFailure.UNSAFE,
            "error_message": "flagged",
        },
    )
    assert failed is not None and failed.failure_code is PreviewFailure.UNSAFE
    assert previews.list_unfinished(100) == [] or all(
        p.job_id != a.job_id for p in previews.list_unfinished(100)
    )
    gone = previews.update(
        a.id,
        {"deleted_at": datetime.now(UTC), "prompt": "", "storage_path": None},
        expect_status=None,
    )
    assert gone is not None and previews.for_jobs([a.job_id]) == [failed]


def test_the_daily_limit_counts_on_demand_pictures_once_per_set(stores: Stores) -> None:
    previews, jobs, new_user = stores
    user = new_user()
    job = a_job(jobs, user)
    now = datetime.now(UTC)
    first = rows(job, user, 3, PreviewKind.ON_DEMAND)
    assert previews.request_on_demand(user, first, 5, now) == (True, 3)
    assert previews.request_on_demand(user, first, 5, now) == (True, 3)  # a repeat
    assert previews.request_on_demand(user, rows(job, user, 3, PreviewKind.ON_DEMAND), 5, now) == (
        False,
        3,
    )
    assert previews.request_on_demand(user, rows(job, user, 2, PreviewKind.ON_DEMAND), 5, now) == (
        True,
        5,
    )
    tomorrow = now + timedelta(days=1)
    assert previews.request_on_demand(
        user, rows(job, user, 2, PreviewKind.ON_DEMAND), 5, tomorrow
    ) == (True, 2)
    previews.insert_set(rows(job, user, 4))  # completion sets do not count
    other = new_user()
    assert previews.request_on_demand(
        other, rows(a_job(jobs, other), other, 5, PreviewKind.ON_DEMAND), 5, now
    )[0]


def test_concurrent_requests_in_the_database_never_pass_the_limit(
    pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str
) -> None:
    client_rows: list[bool] = []
    user = uuid.UUID(create_user(pg.dsn()))
    jobs = PostgrestJobStore(lambda: service(rest, jwt_secret))
    job = a_job(jobs, user)
    barrier = threading.Barrier(8)
    lock = threading.Lock()

    def ask() -> None:
        store = PostgrestPreviewStore(lambda: service(rest, jwt_secret))
        wanted = rows(job, user, 2, PreviewKind.ON_DEMAND)
        barrier.wait()
        accepted, _ = store.request_on_demand(user, wanted, 6, datetime.now(UTC))
        with lock:
            client_rows.append(accepted)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(client_rows) == [False] * 5 + [True] * 3
    with psycopg.connect(pg.dsn()) as db:
        count = db.execute(
            f"select count(*) from public.{TABLE} where user_id = %s", [user]
        ).fetchone()
    assert count == (6,)


def test_preview_costs_count_in_the_days_training_spend(
    pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str, db: psycopg.Connection
) -> None:
    day = datetime(2031, 5, 4, 12, tzinfo=UTC)

    def spend() -> float:
        row = db.execute("select public.training_spend_today(%s)", [day]).fetchone()
        assert row is not None
        return float(row[0])

    before = spend()
    user = uuid.UUID(create_user(pg.dsn()))
    jobs = PostgrestJobStore(lambda: service(rest, jwt_secret))
    store = PostgrestPreviewStore(lambda: service(rest, jwt_secret))
    job = a_job(jobs, user)
    made = rows(job, user, 3, PreviewKind.ON_DEMAND)
    assert store.request_on_demand(user, made, 10, day)[0]
    assert spend() == pytest.approx(before + 3 * 0.012)  # reserved until billed
    store.update(made[0]["id"], {"cost_usd": 0.05, "predict_time_seconds": 30})
    assert spend() == pytest.approx(before + 0.05 + 2 * 0.012)
    db.execute(
        f"update public.{TABLE} set created_at = %s where id = %s",
        [day - timedelta(days=1), made[1]["id"]],
    )
    assert spend() == pytest.approx(before + 0.05 + 0.012)


class Owners:
    def __init__(self, pg: LocalPostgres, rest: LocalPostgrest, secret: str) -> None:
        anon = anon_key(secret)
        self.anon = SyncPostgrestClient(
            rest.url,
            headers={"apikey": anon, "Authorization": f"Bearer {anon}"},
            retry_enabled=False,
        )
        store = PostgrestPreviewStore(lambda: service(rest, secret))
        jobs = PostgrestJobStore(lambda: service(rest, secret))
        self.jobs: list[uuid.UUID] = []
        self.clients: list[SyncPostgrestClient] = []
        for _ in range(2):
            user = uuid.UUID(create_user(pg.dsn()))
            job = a_job(jobs, user)
            store.insert_set(rows(job, user, 2))
            self.jobs.append(job)
            token = user_access_token(secret, rest.url, str(user))
            self.clients.append(
                SyncPostgrestClient(
                    rest.url,
                    headers={"apikey": anon, "Authorization": f"Bearer {token}"},
                    retry_enabled=False,
                )
            )


@pytest.fixture
def owners(pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str) -> Owners:
    return Owners(pg, rest, jwt_secret)


def test_the_owner_may_select_exactly_the_public_columns(db: psycopg.Connection) -> None:
    granted = db.execute(
        "select column_name, has_column_privilege('authenticated', %s::regclass, column_name,"
        " 'SELECT') from information_schema.columns where table_schema = 'public'"
        " and table_name = %s",
        [f"public.{TABLE}", TABLE],
    ).fetchall()
    assert {name for name, allowed in granted if allowed} == PUBLIC_PREVIEW_COLUMNS


def test_the_owner_reads_their_own_pictures_only_and_nobody_but_the_backend_writes(
    owners: Owners, db: psycopg.Connection
) -> None:
    mine, theirs = owners.jobs
    me = owners.clients[0]
    seen: Any = me.from_(TABLE).select(",".join(sorted(PUBLIC_PREVIEW_COLUMNS))).execute().data
    assert {row["job_id"] for row in seen} == {str(mine)} and len(seen) == 2
    for private in ("claim_token", "prediction_id", "cost_usd", "seed", "*"):
        with pytest.raises(APIError) as refused:
            me.from_(TABLE).select(private).execute()
        assert refused.value.code == "42501", private
    assert me.from_(TABLE).select("id").eq("job_id", str(theirs)).execute().data == []
    with pytest.raises(APIError):
        owners.anon.from_(TABLE).select("id").execute()
    with pytest.raises(APIError):
        me.from_(TABLE).update({"status": "ready"}).eq("job_id", str(mine)).execute()
    with pytest.raises(APIError):
        me.from_(TABLE).delete().eq("job_id", str(mine)).execute()
    # A version being deleted hides its pictures at once.
    db.execute(
        "update public.ai_training_jobs set status = 'failed', failure_code = 'deleted_by_user',"
        " deletion_requested_at = now() where id = %s",
        [mine],
    )
    assert me.from_(TABLE).select("id").execute().data == []


def test_the_orphan_query_keeps_the_pictures_its_rows_name(
    db: psycopg.Connection, pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str
) -> None:
    user = uuid.UUID(create_user(pg.dsn()))
    jobs = PostgrestJobStore(lambda: service(rest, jwt_secret))
    previews = PostgrestPreviewStore(lambda: service(rest, jwt_secret))
    job = a_job(jobs, user)
    a, b = previews.insert_set(rows(job, user))
    kept, gone = (f"{user}/previews/{job}/{p.id}.webp" for p in (a, b))
    stray = f"{user}/previews/{job}/{uuid.uuid4()}.webp"
    previews.update(a.id, {"status": PreviewStatus.READY, "storage_path": kept})
    previews.update(b.id, {"status": PreviewStatus.READY, "storage_path": gone})
    previews.update(
        b.id, {"deleted_at": datetime.now(UTC), "storage_path": None}, expect_status=None
    )
    for name in (kept, gone, stray):
        db.execute(
            "insert into storage.objects (bucket_id, name, metadata, created_at)"
            " values ('training-photos', %s, '{}', now() - interval '1 hour')",
            [name],
        )
    found = set(jobs.orphan_photo_objects(datetime.now(UTC) - timedelta(minutes=15), 10_000))
    assert {n for n in found if n.startswith(f"{user}/")} == {gone, stray}
    db.execute("delete from storage.objects where name like %s", [f"{user}/%"])
