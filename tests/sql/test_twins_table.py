"""twins on real Postgres: every promise of the twins migration refused when broken, RLS through
the real PostgREST, and the migration giving every earlier job a twin."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError
from psycopg import errors

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import BOOTSTRAP_SQL, create_user
from devstack.tokens import anon_key, service_role_key, user_access_token

pytestmark = pytest.mark.stack

TWINS_MIGRATION = "20261203010000_twins.sql"
MIGRATIONS = Path(__file__).resolve().parents[2] / "supabase" / "migrations"


def new_twin(db: psycopg.Connection, user: str, name: str = "Ember") -> str:
    row = db.execute(
        "insert into twins (user_id, name) values (%s, %s) returning id::text", [user, name]
    ).fetchone()
    assert row is not None
    return str(row[0])


def new_job(db: psycopg.Connection, user: str, twin: str | None, **values: Any) -> dict[str, Any]:
    values = {"user_id": user, "furrsona_name": "Ember", "twin_id": twin, **values}
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = db.execute(
        f"insert into ai_training_jobs ({cols}) values ({marks})"
        " returning id::text, twin_id::text, version",
        list(values.values()),
    ).fetchone()
    assert row is not None
    return {"id": row[0], "twin_id": row[1], "version": row[2]}


def move(db: psycopg.Connection, job: str, *steps: str) -> None:
    for status in steps:
        if status == "training":  # through the queue, as admission moves it
            db.execute(
                "update ai_training_jobs set status = 'queued', queued_at = now() where id = %s",
                [job],
            )
        progress = {"training": 30, "completed": 100, "failed": 30}[status]
        extra = ", replicate_model_version = 'o/m:v'" if status == "completed" else ""
        db.execute(
            f"update ai_training_jobs set status = %s, progress = %s{extra} where id = %s",
            [status, progress, job],
        )


def active_of(db: psycopg.Connection, twin: str) -> str | None:
    row = db.execute("select active_job_id::text from twins where id = %s", [twin]).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def user(pg: LocalPostgres) -> str:
    return create_user(pg.dsn())


# --- the promises -------------------------------------------------------------------------------


def test_versions_are_numbered_per_twin_and_never_reused(db: psycopg.Connection, user: str):
    twin = new_twin(db, user)
    first = new_job(db, user, twin)
    move(db, first["id"], "failed")
    second = new_job(db, user, twin)
    db.execute("delete from ai_training_jobs where id = %s", [second["id"]])
    third = new_job(db, user, twin)
    assert (first["version"], second["version"], third["version"]) == (1, 2, 3)
    other = new_job(db, user, new_twin(db, user))
    assert other["version"] == 1
    with pytest.raises(errors.CheckViolation, match="never reused"):  # the counter only grows
        db.execute("update twins set next_version = 2 where id = %s", [twin])
    with pytest.raises(errors.CheckViolation, match="never change"):  # nor renumbered by hand
        db.execute("update ai_training_jobs set version = 1 where id = %s", [third["id"]])


def test_a_job_without_a_twin_starts_one_of_its_own(db: psycopg.Connection, user: str):
    job = new_job(db, user, None, customization_data='{"type": "fox"}')
    row = db.execute(
        "select name, customization_data, user_id::text from twins where id = %s", [job["twin_id"]]
    ).fetchone()
    assert row == ("Ember", {"type": "fox"}, user) and job["version"] == 1


@pytest.mark.parametrize("status", ["uploading", "pending", "training"])
def test_a_second_version_on_its_way_is_refused(db: psycopg.Connection, user: str, status: str):
    twin = new_twin(db, user)
    first = new_job(db, user, twin, status="pending" if status == "training" else status)
    if status == "training":
        move(db, first["id"], "training")
    with pytest.raises(errors.UniqueViolation, match="one_in_flight_per_twin"):
        new_job(db, user, twin)
    move(db, first["id"], "failed")
    assert new_job(db, user, twin)["version"] == 2  # once it ended, the next may come


def test_a_version_of_another_owners_twin_is_refused(db: psycopg.Connection, pg: LocalPostgres):
    owner, stranger = create_user(pg.dsn()), create_user(pg.dsn())
    twin = new_twin(db, owner)
    with pytest.raises(errors.CheckViolation, match="not this owner"):
        new_job(db, stranger, twin)


def test_a_job_never_changes_twin_number_or_owner(db: psycopg.Connection, user: str):
    job = new_job(db, user, new_twin(db, user))
    other = new_twin(db, user)
    for change in (f"twin_id = '{other}'", "version = 7", f"user_id = '{create_user_like(db)}'"):
        with pytest.raises(errors.CheckViolation):
            db.execute(f"update ai_training_jobs set {change} where id = %s", [job["id"]])


def create_user_like(db: psycopg.Connection) -> str:
    row = db.execute("insert into auth.users (email) values (null) returning id::text").fetchone()
    assert row is not None
    return str(row[0])


def test_a_completed_training_becomes_active_in_the_same_write(db: psycopg.Connection, user: str):
    twin = new_twin(db, user)
    v1 = new_job(db, user, twin)
    move(db, v1["id"], "training", "completed")
    assert active_of(db, twin) == v1["id"]
    v2 = new_job(db, user, twin)
    move(db, v2["id"], "training", "completed")
    assert active_of(db, twin) == v2["id"]


@pytest.mark.parametrize("which", ["training", "failed", "deleted", "other twin", "other owner"])
def test_an_active_version_that_may_not_be_is_refused(
    db: psycopg.Connection, pg: LocalPostgres, user: str, which: str
):
    twin = new_twin(db, user)
    done = new_job(db, user, twin)
    move(db, done["id"], "training", "completed")
    if which == "training":
        target = new_job(db, user, twin)["id"]
        move(db, target, "training")
    elif which == "failed":
        target = new_job(db, user, twin)["id"]
        move(db, target, "failed")
    elif which == "deleted":
        target = new_job(db, user, twin)["id"]
        move(db, target, "training", "completed")  # now the active one ...
        db.execute("update twins set active_job_id = %s where id = %s", [done["id"], twin])
        db.execute(
            "update ai_training_jobs set deletion_requested_at = now() where id = %s", [target]
        )  # ... deleted once it no longer is
    elif which == "other twin":
        target = new_job(db, user, new_twin(db, user))["id"]
        move(db, target, "training", "completed")
    else:
        stranger = create_user(pg.dsn())
        target = new_job(db, stranger, new_twin(db, stranger))["id"]
        move(db, target, "training", "completed")
    with pytest.raises((errors.CheckViolation, errors.ForeignKeyViolation)):
        db.execute("update twins set active_job_id = %s where id = %s", [target, twin])
    assert active_of(db, twin) == done["id"]


def test_the_active_version_cannot_be_deleted(db: psycopg.Connection, user: str):
    twin = new_twin(db, user)
    job = new_job(db, user, twin)
    move(db, job["id"], "training", "completed")
    with pytest.raises(errors.CheckViolation, match="active version"):
        db.execute(
            "update ai_training_jobs set deletion_requested_at = now() where id = %s", [job["id"]]
        )
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute("delete from ai_training_jobs where id = %s", [job["id"]])


def test_a_twin_being_deleted_takes_no_version_and_no_active_one(db: psycopg.Connection, user: str):
    twin = new_twin(db, user)
    job = new_job(db, user, twin)
    move(db, job["id"], "training", "completed")
    with pytest.raises(errors.CheckViolation):  # it still has an active version
        db.execute("update twins set deletion_requested_at = now() where id = %s", [twin])
    db.execute(
        "update twins set deletion_requested_at = now(), active_job_id = null where id = %s",
        [twin],
    )
    with pytest.raises(errors.CheckViolation):
        new_job(db, user, twin)
    with pytest.raises(errors.CheckViolation):
        db.execute("update twins set active_job_id = %s where id = %s", [job["id"], twin])
    with pytest.raises(errors.CheckViolation, match="cannot be withdrawn"):
        db.execute("update twins set deletion_requested_at = null where id = %s", [twin])


def test_a_twin_with_versions_is_not_removed_but_a_person_is_with_all(
    db: psycopg.Connection, user: str
):
    twin = new_twin(db, user)
    job = new_job(db, user, twin)
    move(db, job["id"], "training", "completed")
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute("delete from twins where id = %s", [twin])
    db.execute("delete from auth.users where id = %s", [user])
    assert db.execute("select count(*) from twins where id = %s", [twin]).fetchone() == (0,)
    assert db.execute(
        "select count(*) from ai_training_jobs where id = %s", [job["id"]]
    ).fetchone() == (0,)


# --- RLS through PostgREST ----------------------------------------------------------------------

PUBLIC = {
    "id",
    "user_id",
    "name",
    "customization_data",
    "active_job_id",
    "created_at",
    "updated_at",
}


def client(rest: LocalPostgrest, apikey: str, token: str) -> SyncPostgrestClient:
    return SyncPostgrestClient(
        base_url=rest.url,
        headers={"apikey": apikey, "Authorization": f"Bearer {token}"},
        retry_enabled=False,
    )


@pytest.fixture
def scene(
    pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str, db: psycopg.Connection
) -> Iterator[dict[str, Any]]:
    owner, stranger = create_user(pg.dsn()), create_user(pg.dsn())
    twin, gone = new_twin(db, owner), new_twin(db, owner, "Gone")
    db.execute("update twins set deletion_requested_at = now() where id = %s", [gone])
    anon = anon_key(jwt_secret)
    service = service_role_key(jwt_secret)
    yield {
        "twin": twin,
        "gone": gone,
        "owner": client(rest, anon, user_access_token(jwt_secret, rest.url, owner)),
        "stranger": client(rest, anon, user_access_token(jwt_secret, rest.url, stranger)),
        "anon": client(rest, anon, anon),
        "service": client(rest, service, service),
    }


def test_the_owner_reads_the_public_columns_of_their_own_live_twins(scene: dict[str, Any]):
    rows = scene["owner"].table("twins").select(",".join(sorted(PUBLIC))).execute().data
    assert [r["id"] for r in rows] == [scene["twin"]]  # not the one being deleted
    assert set(rows[0]) == PUBLIC
    for hidden in ("next_version", "deletion_requested_at", "deleted_at", "*"):
        with pytest.raises(APIError) as refused:
            scene["owner"].table("twins").select(hidden).execute()
        assert refused.value.code == "42501", hidden


def test_nobody_else_reads_them_and_only_the_backend_writes(scene: dict[str, Any]):
    cols = ",".join(sorted(PUBLIC))
    assert (
        scene["stranger"].table("twins").select(cols).eq("id", scene["twin"]).execute().data == []
    )
    with pytest.raises(APIError):
        scene["anon"].table("twins").select(cols).execute()
    for who in ("owner", "stranger", "anon"):
        with pytest.raises(APIError) as refused:
            scene[who].table("twins").update({"name": "Mine"}).eq("id", scene["twin"]).execute()
        assert refused.value.code == "42501"
        with pytest.raises(APIError):
            scene[who].table("twins").insert({"name": "X", "user_id": str(uuid.uuid4())}).execute()
        with pytest.raises(APIError):
            scene[who].table("twins").delete().eq("id", scene["twin"]).execute()
    renamed = scene["service"].table("twins").update({"name": "Blaze"}).eq("id", scene["twin"])
    assert renamed.execute().data[0]["name"] == "Blaze"


# --- the migration on a database that has jobs --------------------------------------------------


def test_the_migration_gives_every_earlier_job_a_twin(tmp_path: Path):
    # A Postgres of its own, migrated to just before twins, with jobs of every kind in it.
    server = LocalPostgres(tmp_path / "pg")
    server.start()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as db:
            db.execute(BOOTSTRAP_SQL.read_bytes())
            files = sorted(MIGRATIONS.glob("*.sql"))
            earlier = [p for p in files if p.name < TWINS_MIGRATION]
            for path in earlier:
                db.execute(path.read_bytes())
            user = create_user_like(db)
            jobs = {}
            for status in ("pending", "completed", "failed", "deleted"):
                row = db.execute(
                    "insert into ai_training_jobs (user_id, furrsona_name, customization_data)"
                    ' values (%s, %s, \'{"type": "fox"}\') returning id::text',
                    [user, f"Job {status}"],
                ).fetchone()
                assert row is not None
                jobs[status] = row[0]
            # The moves of that time (no queue yet).
            for change in (
                "status = 'training', progress = 30",
                "status = 'completed', replicate_model_version = 'o/m:v'",
            ):
                db.execute(
                    f"update ai_training_jobs set {change} where id = %s", [jobs["completed"]]
                )
            move(db, jobs["failed"], "failed")
            db.execute(
                "update ai_training_jobs set status = 'failed', deletion_requested_at = now()"
                " where id = %s",
                [jobs["deleted"]],
            )
            db.execute(files[len(earlier)].read_bytes())
            for status, job in jobs.items():
                row = db.execute(
                    "select t.name, t.active_job_id::text, j.version, t.next_version,"
                    " t.deletion_requested_at is not null"
                    " from ai_training_jobs j join twins t on t.id = j.twin_id where j.id = %s",
                    [job],
                ).fetchone()
                active = job if status == "completed" else None
                assert row == (f"Job {status}", active, 1, 2, status == "deleted"), status
    finally:
        server.stop()
