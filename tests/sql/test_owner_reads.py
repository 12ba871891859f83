"""The visible-progress migration as the owner sees it, through the real PostgREST: only the
public columns of a job, the job's progress points under RLS, and both in the Realtime
publication (Realtime drops the columns a role cannot select, so the grants decide its payload
too: team reference, next capabilities 3.3)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import create_user
from devstack.tokens import anon_key, service_role_key, user_access_token

pytestmark = pytest.mark.stack

JOBS = "ai_training_jobs"
POINTS = "training_progress_points"
# What docs/api.md lists for the frontend; everything else on the row is bookkeeping.
PUBLIC_JOB_COLUMNS = {
    "id", "user_id", "twin_id", "version", "furrsona_name", "status", "phase", "step",
    "total_steps", "progress", "estimated_completion", "replicate_model_version", "failure_code",
    "error_message", "photo_urls", "queued_at", "admitted_at", "queue_position",
    "customization_data", "created_at", "completed_at", "updated_at",
}  # fmt: skip
POINT_COLUMNS = {"job_id", "bucket", "step", "observed_at", "loss", "steps_per_second"}


def client(rest: LocalPostgrest, apikey: str, token: str) -> SyncPostgrestClient:
    return SyncPostgrestClient(
        base_url=rest.url,
        headers={"apikey": apikey, "Authorization": f"Bearer {token}"},
        retry_enabled=False,
    )


class Owners:
    """Two users, each with a training job that has a point; their clients, anon's and the
    service role's."""

    def __init__(self, pg: LocalPostgres, rest: LocalPostgrest, secret: str) -> None:
        anon = anon_key(secret)
        self.anon = client(rest, anon, anon)
        self.service = client(rest, service_role_key(secret), service_role_key(secret))
        self.jobs: list[str] = []
        self.clients: list[SyncPostgrestClient] = []
        with psycopg.connect(pg.dsn(), autocommit=True) as db:
            for _ in range(2):
                user = create_user(pg.dsn())
                job = training_job(db, user)
                add_point(db, job, 0)
                self.jobs.append(job)
                self.clients.append(client(rest, anon, user_access_token(secret, rest.url, user)))


def training_job(db: psycopg.Connection, user: str) -> str:
    row = db.execute(
        "insert into public.ai_training_jobs (user_id, furrsona_name, claim_token,"
        " replicate_file_url) values (%s, 'Biscuit', gen_random_uuid(), 'https://x/zip')"
        " returning id::text",
        [user],
    ).fetchone()
    assert row is not None
    for move in ("status = 'queued', queued_at = now()", "status = 'training', progress = 30"):
        db.execute(f"update public.ai_training_jobs set {move} where id = %s", [row[0]])
    return str(row[0])


def add_point(db: psycopg.Connection, job: str, bucket: int) -> int:
    """Insert one point as the backend does; the number of rows the database kept."""
    return db.execute(
        "insert into public.training_progress_points (job_id, bucket, step, observed_at, loss,"
        " steps_per_second) values (%s, %s, %s, now(), 0.3, 1.4)",
        [job, bucket, 5 * (bucket + 1)],
    ).rowcount


@pytest.fixture
def owners(pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str) -> Owners:
    return Owners(pg, rest, jwt_secret)


def test_the_owner_may_select_exactly_the_public_columns(db: psycopg.Connection) -> None:
    rows = db.execute(
        "select column_name, has_column_privilege('authenticated', %s::regclass, column_name,"
        " 'SELECT') from information_schema.columns where table_schema = 'public'"
        " and table_name = %s",
        [f"public.{JOBS}", JOBS],
    ).fetchall()
    assert {name for name, allowed in rows if allowed} == PUBLIC_JOB_COLUMNS
    assert len(rows) > len(PUBLIC_JOB_COLUMNS)  # bookkeeping exists, and stays private
    anon = db.execute(
        "select bool_or(has_column_privilege('anon', %s::regclass, column_name, 'SELECT'))"
        " from information_schema.columns where table_schema = 'public' and table_name = %s",
        [f"public.{JOBS}", JOBS],
    ).fetchone()
    assert anon == (False,)


def test_the_owner_reads_public_columns_and_is_refused_bookkeeping(owners: Owners) -> None:
    mine, theirs = owners.jobs
    me = owners.clients[0]
    rows: Any = me.from_(JOBS).select(",".join(sorted(PUBLIC_JOB_COLUMNS))).execute().data
    assert [row["id"] for row in rows] == [mine]
    assert rows[0]["phase"] == "preparing_gpu" and set(rows[0]) == PUBLIC_JOB_COLUMNS
    for private in ("claim_token", "replicate_file_url", "last_webhook_id", "cost_usd", "*"):
        with pytest.raises(APIError) as refused:
            me.from_(JOBS).select(private).eq("id", mine).execute()
        assert refused.value.code == "42501", private
    assert me.from_(JOBS).select("id").eq("id", theirs).execute().data == []


def test_the_owner_reads_the_points_of_their_own_jobs_only(owners: Owners) -> None:
    mine, theirs = owners.jobs
    me = owners.clients[0]
    rows: Any = me.from_(POINTS).select("*").execute().data
    assert [row["job_id"] for row in rows] == [mine] and set(rows[0]) == POINT_COLUMNS
    assert me.from_(POINTS).select("*").eq("job_id", theirs).execute().data == []
    with pytest.raises(APIError) as refused:
        owners.anon.from_(POINTS).select("*").execute()
    assert refused.value.code == "42501"


def test_nobody_but_the_backend_writes_points(owners: Owners) -> None:
    mine, _ = owners.jobs
    point = {"job_id": mine, "bucket": 1, "step": 10, "observed_at": "2026-11-24T10:00:00Z"}
    for who in (owners.clients[0], owners.anon):
        with pytest.raises(APIError) as refused:
            who.from_(POINTS).insert(point).execute()
        assert refused.value.code == "42501"
    with pytest.raises(APIError):
        owners.clients[0].from_(POINTS).delete().eq("job_id", mine).execute()
    kept: Any = owners.service.from_(POINTS).select("bucket").eq("job_id", mine).execute().data
    assert kept == [{"bucket": 0}]


def test_points_arrive_only_while_the_job_trains(db: psycopg.Connection, pg: LocalPostgres) -> None:
    job = training_job(db, create_user(pg.dsn()))
    assert add_point(db, job, 0) == 1
    with pytest.raises(psycopg.errors.CheckViolation):
        add_point(db, job, 200)  # at most 200 buckets
    db.execute("update public.ai_training_jobs set status = 'failed' where id = %s", [job])
    assert add_point(db, job, 1) == 0  # dropped, no error: a refresh that raced the end
    db.execute(
        "update public.ai_training_jobs set deletion_requested_at = now() where id = %s", [job]
    )
    count = db.execute(f"select count(*) from public.{POINTS} where job_id = %s", [job]).fetchone()
    assert count == (1,)


def test_a_job_being_deleted_hides_its_points_from_its_owner(
    owners: Owners, db: psycopg.Connection
) -> None:
    mine, _ = owners.jobs
    me = owners.clients[0]
    assert me.from_(POINTS).select("bucket").execute().data == [{"bucket": 0}]
    db.execute(
        "update public.ai_training_jobs set status = 'failed', deletion_requested_at = now()"
        " where id = %s",
        [mine],
    )
    assert me.from_(POINTS).select("bucket").execute().data == []


def test_jobs_and_points_are_in_the_realtime_publication(db: psycopg.Connection) -> None:
    rows = db.execute(
        "select tablename from pg_publication_tables where pubname = 'supabase_realtime'"
        " and schemaname = 'public'"
    ).fetchall()
    assert {JOBS, POINTS} <= {row[0] for row in rows}


def test_the_phase_follows_the_status_in_the_database(
    db: psycopg.Connection, pg: LocalPostgres
) -> None:
    job = training_job(db, create_user(pg.dsn()))

    def phase_after(sql: str) -> Any:
        row = db.execute(
            f"update public.ai_training_jobs set {sql} where id = %s returning phase, step", [job]
        ).fetchone()
        assert row is not None
        return tuple(row)

    assert phase_after("phase = 'saving', step = 1000, total_steps = 1000") == ("saving", 1000)
    assert phase_after("phase = 'reading_photos', step = 3") == ("saving", 1000)
    assert phase_after("phase = 'uploading'") == ("saving", 1000)
    assert phase_after("phase = 'somewhere'") == ("saving", 1000)
    assert phase_after("status = 'failed'") == ("failed", 1000)
