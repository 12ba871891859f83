"""The privacy migration on real Postgres and PostgREST: a job being deleted is final, the
deletion cannot be withdrawn, and its owner no longer reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from postgrest import SyncPostgrestClient
from psycopg import errors

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import create_user
from devstack.tokens import anon_key, user_access_token

pytestmark = pytest.mark.stack


@pytest.fixture
def user_id(pg: LocalPostgres) -> str:
    return create_user(pg.dsn())


def new_job(db: psycopg.Connection, user_id: str, status: str = "pending") -> str:
    row = db.execute(
        "insert into public.ai_training_jobs (user_id, furrsona_name) values (%s, 'Biscuit')"
        " returning id::text",
        [user_id],
    ).fetchone()
    assert row is not None
    if status == "training":
        for move in ("status = 'queued', queued_at = now()", "status = 'training', progress = 30"):
            db.execute(f"update public.ai_training_jobs set {move} where id = %s", [row[0]])
    return str(row[0])


def update(db: psycopg.Connection, job_id: str, **values: Any) -> dict[str, Any]:
    sets = ", ".join(f"{col} = %s" for col in values)
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            f"update public.ai_training_jobs set {sets} where id = %s returning *",
            [*values.values(), job_id],
        )
        row = cur.fetchone()
    assert row is not None
    return row


@pytest.mark.parametrize("status", ["pending", "training"])
def test_an_active_job_cannot_be_marked_for_deletion_without_ending(
    db: psycopg.Connection, user_id: str, status: str
) -> None:
    job = new_job(db, user_id, status)
    with pytest.raises(errors.CheckViolation, match="ai_training_jobs_deleted_is_final"):
        update(db, job, deletion_requested_at=datetime.now(UTC))
    marked = update(db, job, deletion_requested_at=datetime.now(UTC), status="failed")
    assert marked["status"] == "failed" and marked["completed_at"] is not None


def test_a_job_being_deleted_never_moves_again(db: psycopg.Connection, user_id: str) -> None:
    job = new_job(db, user_id)
    update(db, job, deletion_requested_at=datetime.now(UTC), status="failed")
    for status in ("pending", "training", "completed"):
        with pytest.raises(errors.CheckViolation):
            update(db, job, status=status)


def test_a_deletion_cannot_be_withdrawn_and_the_first_request_stands(
    db: psycopg.Connection, user_id: str
) -> None:
    job = new_job(db, user_id)
    first = datetime.now(UTC) - timedelta(minutes=5)
    update(db, job, deletion_requested_at=first, status="failed")
    assert (
        update(db, job, deletion_requested_at=datetime.now(UTC))["deletion_requested_at"] == first
    )
    done = update(db, job, deleted_at=first)
    assert update(db, job, deleted_at=datetime.now(UTC))["deleted_at"] == done["deleted_at"]
    for column in ("deletion_requested_at", "deleted_at"):
        with pytest.raises(errors.CheckViolation, match="cannot be withdrawn"):
            update(db, job, **{column: None})


def test_a_deletion_finishes_only_after_it_was_requested(
    db: psycopg.Connection, user_id: str
) -> None:
    job = new_job(db, user_id)
    with pytest.raises(errors.CheckViolation, match="ai_training_jobs_deleted_after_request"):
        update(db, job, deleted_at=datetime.now(UTC), status="failed")


def test_the_owner_no_longer_reads_a_job_being_deleted(
    db: psycopg.Connection, rest: LocalPostgrest, jwt_secret: str, user_id: str
) -> None:
    kept, deleted = new_job(db, user_id), new_job(db, user_id)
    update(db, deleted, deletion_requested_at=datetime.now(UTC), status="failed")
    owner = SyncPostgrestClient(
        base_url=rest.url,
        headers={
            "apikey": anon_key(jwt_secret),
            "Authorization": f"Bearer {user_access_token(jwt_secret, rest.url, user_id)}",
        },
    )
    rows: Any = owner.from_("ai_training_jobs").select("id").execute().data
    assert [r["id"] for r in rows] == [kept]
