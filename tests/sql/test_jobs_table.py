"""ai_training_jobs on real Postgres: columns, constraints and the status/progress triggers."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors

from devstack.postgres import LocalPostgres
from devstack.schema import create_user
from shared.domain.claims import NOT_STARTED_MESSAGE
from shared.services.upload_expiry import UPLOAD_EXPIRED_MESSAGE

pytestmark = pytest.mark.stack

STATUSES = ["uploading", "pending", "queued", "training", "completed", "failed"]
ALLOWED_MOVES = {
    ("uploading", "pending"),
    ("uploading", "failed"),
    ("pending", "queued"),
    ("pending", "failed"),
    ("queued", "training"),
    ("queued", "failed"),
    ("training", "queued"),  # back in line: only while no training exists (its own test)
    ("training", "completed"),
    ("training", "failed"),
}
# How a test gets a row into each status, through allowed moves only.
PATH_TO = {
    "uploading": ["uploading"],
    "pending": ["pending"],
    "queued": ["pending", "queued"],
    "training": ["pending", "queued", "training"],
    "completed": ["pending", "queued", "training", "completed"],
    "failed": ["pending", "failed"],
}
SEED_COLUMNS = {
    "id": "uuid",
    "user_id": "uuid",
    "furrsona_name": "text",
    "status": "text",
    "progress": "integer",
    "estimated_completion": "timestamp with time zone",
    "replicate_training_id": "text",
    "replicate_model_version": "text",
    "error_message": "text",
    "photo_urls": "ARRAY",
    "customization_data": "jsonb",
    "created_at": "timestamp with time zone",
    "completed_at": "timestamp with time zone",
    "updated_at": "timestamp with time zone",
}
ADDED_COLUMNS = {
    "claim_token": "uuid",
    "claimed_at": "timestamp with time zone",
    "replicate_file_id": "text",
    "replicate_file_url": "text",
    "last_checked_at": "timestamp with time zone",
    "last_replicate_status": "text",
    "upload_expires_at": "timestamp with time zone",
    "predict_time_seconds": "double precision",
    "cost_usd": "numeric",
    "notified_at": "timestamp with time zone",
    "previews_requested_at": "timestamp with time zone",
    "last_webhook_id": "text",
    "progress_changed_at": "timestamp with time zone",
    # privacy: what was deleted and when
    "deletion_requested_at": "timestamp with time zone",
    "deleted_at": "timestamp with time zone",
    "photos_deleted_at": "timestamp with time zone",
    "replicate_file_deleted_at": "timestamp with time zone",
    "model_version_deleted_at": "timestamp with time zone",
    "replicate_deletion_refused_at": "timestamp with time zone",
    "photo_checksums": "ARRAY",
    # twins: the twin this job is a version of, and its number there
    "twin_id": "uuid",
    "version": "integer",
    # why a failed job failed (errorCode in the API)
    "failure_code": "text",
    # visible progress: the phase, the trainer's step, the estimate's evidence
    "phase": "text",
    "step": "integer",
    "total_steps": "integer",
    "phase_times": "jsonb",
    "expected_phase_seconds": "jsonb",
    # the training queue: when it joined the line, when admitted, its reserved cost
    "queued_at": "timestamp with time zone",
    "queue_position": "integer",
    "admitted_at": "timestamp with time zone",
    "reserved_cost_usd": "numeric",
}


@pytest.fixture
def user_id(pg: LocalPostgres) -> str:
    return create_user(pg.dsn())


def insert_job(db: psycopg.Connection, user_id: str, **values: Any) -> dict[str, Any]:
    """A job as version 1 of a twin of its own (made here, so the job's own checks are the ones
    a bad value meets)."""
    if "twin_id" not in values:
        twin = db.execute(
            "insert into public.twins (user_id, name) values (%s, 'Biscuit') returning id",
            [user_id],
        ).fetchone()
        assert twin is not None
        values["twin_id"] = twin[0]
        values.setdefault("version", 1)  # what the insert trigger sets (needed with triggers off)
    values = {"user_id": user_id, "furrsona_name": "Biscuit", **values}
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            f"insert into public.ai_training_jobs ({cols}) values ({marks}) returning *",
            list(values.values()),
        )
        row = cur.fetchone()
    assert row is not None
    return row


def update_job(db: psycopg.Connection, job_id: Any, **values: Any) -> dict[str, Any]:
    sets = ", ".join(f"{col} = %s" for col in values)
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            f"update public.ai_training_jobs set {sets} where id = %s returning *",
            [*values.values(), job_id],
        )
        row = cur.fetchone()
    assert row is not None, "update matched no row"
    return row


def move(db: psycopg.Connection, job_id: Any, status: str) -> dict[str, Any]:
    """Set a status, with what that status legitimately needs alongside."""
    if status == "queued":
        return update_job(db, job_id, status=status, queued_at=datetime.now(UTC))
    if status == "training":
        return update_job(db, job_id, status=status, progress=30)
    if status == "completed":
        return update_job(db, job_id, status=status, replicate_model_version="owner/model:abc")
    return update_job(db, job_id, status=status)


def train(db: psycopg.Connection, job_id: Any) -> dict[str, Any]:
    """A pending job through the queue into training, as admission moves it."""
    move(db, job_id, "queued")
    return move(db, job_id, "training")


def job_in(db: psycopg.Connection, user_id: str, status: str) -> dict[str, Any]:
    first, *rest = PATH_TO[status]
    row = insert_job(db, user_id, status=first)
    for step in rest:
        row = move(db, row["id"], step)
    assert row["status"] == status
    return row


def test_columns_are_the_seed_columns_plus_the_added_ones(db: psycopg.Connection) -> None:
    rows = db.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = 'public' and table_name = 'ai_training_jobs'"
    ).fetchall()
    assert dict(rows) == SEED_COLUMNS | ADDED_COLUMNS


def test_defaults(db: psycopg.Connection, user_id: str) -> None:
    row = insert_job(db, user_id)
    assert row["status"] == "pending"
    assert row["progress"] == 0
    assert row["photo_urls"] == []
    assert row["customization_data"] == {}
    assert row["completed_at"] is None
    assert row["created_at"] is not None and row["updated_at"] is not None


@pytest.mark.parametrize(("old", "new"), list(itertools.product(STATUSES, STATUSES)))
def test_status_move(db: psycopg.Connection, user_id: str, old: str, new: str) -> None:
    job = job_in(db, user_id, old)
    if old == new or (old, new) in ALLOWED_MOVES:
        assert move(db, job["id"], new)["status"] == new
    else:
        with pytest.raises(errors.CheckViolation) as exc_info:
            move(db, job["id"], new)
        assert str(exc_info.value.diag.message_primary) == (
            f"ai_training_jobs: status move {old} -> {new} is not allowed"
        )
        current = db.execute(
            "select status from public.ai_training_jobs where id = %s", [job["id"]]
        ).fetchone()
        assert current == (old,)


def test_allowed_moves_are_exactly_the_designed_ones() -> None:
    # Guards the parametrization above against an edit that quietly widens the table.
    assert len(ALLOWED_MOVES) == 9
    assert all(old != new for old, new in ALLOWED_MOVES)


@pytest.mark.parametrize("status", ["pending", "uploading"])
def test_insert_as_starting_status(db: psycopg.Connection, user_id: str, status: str) -> None:
    assert insert_job(db, user_id, status=status)["status"] == status


@pytest.mark.parametrize("status", ["queued", "training", "completed", "failed"])
def test_insert_past_the_start_is_rejected(
    db: psycopg.Connection, user_id: str, status: str
) -> None:
    extra = {"progress": 100, "replicate_model_version": "v"} if status == "completed" else {}
    with pytest.raises(errors.CheckViolation, match="must start as pending or uploading"):
        insert_job(db, user_id, status=status, **extra)


def test_unknown_status_is_rejected(db: psycopg.Connection, user_id: str) -> None:
    with pytest.raises(errors.CheckViolation, match="must start as pending or uploading"):
        insert_job(db, user_id, status="paused")
    job = insert_job(db, user_id)
    with pytest.raises(errors.CheckViolation, match="status move pending -> paused"):
        update_job(db, job["id"], status="paused")


@pytest.mark.parametrize("progress", [-1, 101])
def test_progress_out_of_bounds(db: psycopg.Connection, user_id: str, progress: int) -> None:
    with pytest.raises(errors.CheckViolation, match="ai_training_jobs_progress_range"):
        insert_job(db, user_id, progress=progress)


def test_progress_above_100_rejected_on_update(db: psycopg.Connection, user_id: str) -> None:
    # (Below 0 on update is caught earlier, by the never-decrease trigger.)
    job = job_in(db, user_id, "training")
    with pytest.raises(errors.CheckViolation, match="ai_training_jobs_progress_range"):
        update_job(db, job["id"], progress=101)


@pytest.mark.parametrize("progress", [0, 100])
def test_progress_bounds_are_inclusive(db: psycopg.Connection, user_id: str, progress: int) -> None:
    assert insert_job(db, user_id, progress=progress)["progress"] == progress


def test_progress_never_decreases(db: psycopg.Connection, user_id: str) -> None:
    job = job_in(db, user_id, "training")
    assert update_job(db, job["id"], progress=40)["progress"] == 40
    assert update_job(db, job["id"], progress=40)["progress"] == 40  # unchanged is fine
    with pytest.raises(errors.CheckViolation) as exc_info:
        update_job(db, job["id"], progress=30)
    assert exc_info.value.diag.message_primary == (
        "ai_training_jobs: progress may not decrease (40 -> 30)"
    )
    assert update_job(db, job["id"], progress=95)["progress"] == 95


def test_progress_cannot_decrease_on_a_status_move(db: psycopg.Connection, user_id: str) -> None:
    job = job_in(db, user_id, "uploading")
    update_job(db, job["id"], progress=20)
    with pytest.raises(errors.CheckViolation, match=r"progress may not decrease \(20 -> 0\)"):
        update_job(db, job["id"], status="pending", progress=0)


def test_completed_needs_model_version(db: psycopg.Connection, user_id: str) -> None:
    job = job_in(db, user_id, "training")
    with pytest.raises(errors.CheckViolation, match="ai_training_jobs_completed_has_result"):
        update_job(db, job["id"], status="completed")


def test_completing_sets_progress_100(db: psycopg.Connection, user_id: str) -> None:
    job = job_in(db, user_id, "training")
    update_job(db, job["id"], progress=95)
    row = update_job(db, job["id"], status="completed", replicate_model_version="o/m:v")
    assert row["progress"] == 100


@pytest.mark.parametrize(
    ("progress", "version"), [(50, "o/m:v"), (100, None)], ids=["progress-50", "no-version"]
)
def test_completed_constraint_holds_without_triggers(
    db: psycopg.Connection, user_id: str, progress: int, version: str | None
) -> None:
    # The CHECK must stand on its own, e.g. for a row written with triggers disabled.
    with db.transaction(force_rollback=True):
        db.execute("set local session_replication_role = replica")  # skips ordinary triggers
        with pytest.raises(errors.CheckViolation, match="ai_training_jobs_completed_has_result"):
            insert_job(
                db, user_id, status="completed", progress=progress, replicate_model_version=version
            )


@pytest.mark.parametrize("terminal", ["completed", "failed"])
def test_completed_at_set_on_terminal_moves(
    db: psycopg.Connection, user_id: str, terminal: str
) -> None:
    before = job_in(db, user_id, "training")
    assert before["completed_at"] is None
    after = move(db, before["id"], terminal)
    assert after["completed_at"] is not None
    assert after["completed_at"] >= before["updated_at"]


def test_completed_at_given_by_caller_is_kept(db: psycopg.Connection, user_id: str) -> None:
    job = job_in(db, user_id, "pending")
    row = update_job(db, job["id"], status="failed", completed_at="2026-01-02T03:04:05Z")
    assert row["completed_at"].isoformat() == "2026-01-02T03:04:05+00:00"


def test_completed_at_not_set_on_other_moves(db: psycopg.Connection, user_id: str) -> None:
    job = job_in(db, user_id, "uploading")
    assert move(db, job["id"], "pending")["completed_at"] is None
    assert move(db, job["id"], "queued")["completed_at"] is None
    assert move(db, job["id"], "training")["completed_at"] is None


def test_terminal_rows_accept_bookkeeping_updates(db: psycopg.Connection, user_id: str) -> None:
    job = job_in(db, user_id, "completed")
    row = update_job(db, job["id"], notified_at="2026-01-01T00:00:00Z", cost_usd="1.2345")
    assert row["status"] == "completed"
    assert str(row["cost_usd"]) == "1.2345"


def test_updated_at_is_set_by_trigger(db: psycopg.Connection, user_id: str) -> None:
    job = insert_job(db, user_id)
    row = update_job(db, job["id"], updated_at="2000-01-01T00:00:00Z", error_message="x")
    # Autocommit: each statement is its own transaction with its own now().
    assert row["updated_at"] > job["updated_at"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_furrsona_name_length(db: psycopg.Connection, user_id: str, name: str) -> None:
    with pytest.raises(errors.CheckViolation, match="ai_training_jobs_furrsona_name_length"):
        insert_job(db, user_id, furrsona_name=name)


def test_furrsona_name_of_100_chars_is_fine(db: psycopg.Connection, user_id: str) -> None:
    assert insert_job(db, user_id, furrsona_name=" " + "x" * 100 + " ")["furrsona_name"]


@pytest.mark.parametrize("value", ["[]", '"text"', "1", "null"])
def test_customization_data_must_be_an_object(
    db: psycopg.Connection, user_id: str, value: str
) -> None:
    with pytest.raises(errors.CheckViolation, match="ai_training_jobs_customization_is_object"):
        insert_job(db, user_id, customization_data=value)


def test_replicate_training_id_is_unique(db: psycopg.Connection, user_id: str) -> None:
    insert_job(db, user_id, replicate_training_id="tr_1")
    with pytest.raises(errors.UniqueViolation):
        insert_job(db, user_id, replicate_training_id="tr_1")


def test_jobs_go_with_their_user(db: psycopg.Connection, user_id: str) -> None:
    job = insert_job(db, user_id)
    db.execute("delete from auth.users where id = %s", [user_id])
    assert (
        db.execute("select 1 from public.ai_training_jobs where id = %s", [job["id"]]).fetchone()
        is None
    )


def test_unknown_user_is_rejected(db: psycopg.Connection) -> None:
    with pytest.raises(errors.ForeignKeyViolation):
        insert_job(db, "00000000-0000-0000-0000-000000000000")


def test_indexes(db: psycopg.Connection) -> None:
    defs = {
        row[0]
        for row in db.execute(
            "select indexdef from pg_indexes"
            " where schemaname = 'public' and tablename = 'ai_training_jobs'"
        )
    }
    assert any("(user_id, created_at DESC)" in d for d in defs), defs
    assert any(
        "(last_checked_at NULLS FIRST)" in d and "'uploading'" in d and "'training'" in d
        for d in defs
    ), defs


def test_table_is_in_the_realtime_publication(db: psycopg.Connection) -> None:
    row = db.execute(
        "select 1 from pg_publication_tables where pubname = 'supabase_realtime'"
        " and schemaname = 'public' and tablename = 'ai_training_jobs'"
    ).fetchone()
    assert row is not None


MIGRATIONS = Path(__file__).resolve().parents[2] / "supabase" / "migrations"
FAILURE_MIGRATION = next(
    p for p in MIGRATIONS.glob("*.sql") if p.name.endswith("_failure_code.sql")
)


@pytest.mark.parametrize(
    ("message", "deleting", "code"),
    [
        ("Canceled by user.", False, "canceled_by_user"),
        ("Deleted by user.", True, "deleted_by_user"),
        (UPLOAD_EXPIRED_MESSAGE, False, "upload_expired"),
        (NOT_STARTED_MESSAGE, False, "not_started"),
        ("The training made no progress for 90 minutes and was canceled.", False, "stalled"),
        ("Replicate has no record of this training any more; start a new one.", False,
         "training_lost"),
        ("The photos were refused.", False, "photos_refused"),
        ("Some of the photos of this job are gone from storage; upload them again.", False,
         "photos_missing"),
        ("CUDA out of memory", False, "training_failed"),
    ],
)  # fmt: skip
def test_jobs_failed_before_the_failure_code_get_the_code_their_message_stands_for(
    db: psycopg.Connection, user_id: str, message: str, deleting: bool, code: str
) -> None:
    """The migration's backfill, run again in a transaction that is rolled back."""
    backfill = re.search(r"^update .*?;$", FAILURE_MIGRATION.read_text(), re.S | re.M)
    assert backfill is not None
    with db.transaction(force_rollback=True):
        job = insert_job(db, user_id)
        update_job(db, job["id"], status="failed", error_message=message)
        if deleting:
            update_job(db, job["id"], deletion_requested_at="2026-12-01T00:00:00Z")
        db.execute("update public.ai_training_jobs set failure_code = null where id = %s",
                   [job["id"]])  # fmt: skip
        db.execute(backfill.group(0))
        assert job_code(db, job["id"]) == code


def job_code(db: psycopg.Connection, job_id: Any) -> str | None:
    row = db.execute(
        "select failure_code from public.ai_training_jobs where id = %s", [job_id]
    ).fetchone()
    assert row is not None
    return row[0]
