"""`progress_changed_at`, the sweep's no-progress clock, kept by a trigger on real Postgres."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest

from devstack.postgres import LocalPostgres
from devstack.schema import create_user
from tests.sql.test_jobs_table import insert_job, train, update_job

pytestmark = pytest.mark.stack


@pytest.fixture
def training_row(pg: LocalPostgres, db: psycopg.Connection) -> dict:
    row = insert_job(db, create_user(pg.dsn()), status="pending", progress=20)
    return train(db, row["id"])


def clock(db: psycopg.Connection, job_id: object) -> datetime:
    found = db.execute(
        "select progress_changed_at from ai_training_jobs where id = %s", (job_id,)
    ).fetchone()
    assert found is not None
    return found[0]


def test_checks_that_find_nothing_new_leave_the_clock_alone(db, training_row):
    job_id, before = training_row["id"], clock(db, training_row["id"])
    update_job(db, job_id, last_checked_at="now()", estimated_completion="now()")
    update_job(db, job_id, progress=30, last_replicate_status=None)  # same values again
    assert clock(db, job_id) == before
    update_job(db, job_id, progress_changed_at="2001-01-01T00:00:00Z")  # nobody sets it by hand
    assert clock(db, job_id) == before


@pytest.mark.parametrize(
    "change",
    [
        {"progress": 31},
        {"last_replicate_status": "processing"},
        {"status": "failed", "error_message": "stopped"},
    ],
)
def test_any_forward_move_restarts_the_clock(db, training_row, change):
    job_id, before = training_row["id"], clock(db, training_row["id"])
    update_job(db, job_id, **change)
    assert clock(db, job_id) > before
