"""`public.stuck_training_jobs()`: every stuck job once, with its reason; service_role only."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from devstack.postgres import LocalPostgres
from devstack.schema import create_user
from tests.sql.test_jobs_table import insert_job, job_in, train

pytestmark = pytest.mark.stack


def age(db: psycopg.Connection, job_id: Any, **ago: str) -> None:
    """Set timestamps in the past, past the triggers that keep them (as time itself would)."""
    sets = ", ".join(
        f"{column} = now() - interval '{interval}'" for column, interval in ago.items()
    )
    with db.transaction():
        db.execute("set local session_replication_role = replica")
        db.execute(f"update public.ai_training_jobs set {sets} where id = %s", (job_id,))


def stuck(db: psycopg.Connection) -> dict[Any, str]:
    rows = db.execute("select id, reason, stuck_for from public.stuck_training_jobs()").fetchall()
    assert all(row[2].total_seconds() > 0 for row in rows)
    return {row[0]: row[1] for row in rows}


@pytest.fixture
def user(pg: LocalPostgres) -> str:
    return create_user(pg.dsn())


def test_each_kind_of_stuck_job_is_listed_once_with_its_reason(db, user) -> None:
    died = train(db, insert_job(db, user, status="pending", progress=20)["id"])
    age(db, died["id"], claimed_at="10 minutes")

    unchecked = train(db, insert_job(db, user, status="pending", progress=20)["id"])
    db.execute(
        "update ai_training_jobs set replicate_training_id = 'tr_unchecked' where id = %s",
        (unchecked["id"],),
    )
    age(db, unchecked["id"], last_checked_at="30 minutes")

    no_progress = train(db, insert_job(db, user, status="pending", progress=20)["id"])
    db.execute(
        "update ai_training_jobs set replicate_training_id = 'tr_stale', last_checked_at = now() where id = %s",
        (no_progress["id"],),
    )
    age(db, no_progress["id"], progress_changed_at="2 hours")

    upload = insert_job(db, user, status="uploading")
    age(db, upload["id"], upload_expires_at="1 hour")

    unstarted = insert_job(db, user, status="pending", progress=20)
    age(db, unstarted["id"], updated_at="3 hours")

    deleting = job_in(db, user, "completed")
    # Its twin is being deleted with it: the active pointer goes first (the active version is
    # never deleted on its own).
    db.execute(
        "update twins set active_job_id = null, deletion_requested_at = now()"
        " where active_job_id = %s",
        (deleting["id"],),
    )
    db.execute(
        "update ai_training_jobs set deletion_requested_at = now() where id = %s", (deleting["id"],)
    )
    age(db, deleting["id"], deletion_requested_at="1 hour")

    listed = stuck(db)
    assert listed[died["id"]].startswith("start died before the training was created")
    assert listed[unchecked["id"]].startswith("not checked recently")
    assert listed[no_progress["id"]].startswith("no progress for training_stale_minutes")
    assert listed[upload["id"]].startswith("upload window closed")
    assert listed[unstarted["id"]].startswith("photos uploaded but training never started")
    assert listed[deleting["id"]].startswith("deletion not finished")


def test_healthy_and_finished_jobs_are_not_listed(db, user) -> None:
    training = train(db, insert_job(db, user, status="pending", progress=20)["id"])
    db.execute(
        "update ai_training_jobs set replicate_training_id = 'tr_ok', last_checked_at = now() where id = %s",
        (training["id"],),
    )
    starting = train(db, insert_job(db, user, status="pending", progress=20)["id"])
    fresh_upload = insert_job(db, user, status="uploading")
    done = job_in(db, user, "completed")
    age(db, done["id"], updated_at="3 days", progress_changed_at="3 days")
    failed = job_in(db, user, "failed")
    listed = stuck(db)
    for job in (training, starting, fresh_upload, done, failed):
        assert job["id"] not in listed


def test_the_thresholds_follow_the_arguments(db, user) -> None:
    job = train(db, insert_job(db, user, status="pending", progress=20)["id"])
    db.execute(
        "update ai_training_jobs set replicate_training_id = 'tr_slow', last_checked_at = now() where id = %s",
        (job["id"],),
    )
    age(db, job["id"], progress_changed_at="40 minutes")
    assert job["id"] not in stuck(db)
    rows = db.execute(
        "select id from public.stuck_training_jobs(training_stale_minutes => 30)"
    ).fetchall()
    assert (job["id"],) in rows


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_users_cannot_call_it(db, role: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
        db.execute(f"set local role {role}")
        db.execute("select * from public.stuck_training_jobs()")


def test_the_service_role_can(db, user) -> None:
    job = insert_job(db, user, status="uploading")
    age(db, job["id"], upload_expires_at="1 hour")
    with db.transaction():
        db.execute("set local role service_role")
        ids = [row[0] for row in db.execute("select id from public.stuck_training_jobs()")]
    assert job["id"] in ids
