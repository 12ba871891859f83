"""The database's side of issue 14.5/14.6 on real Postgres and PostgREST: the account erasure the
trigger writes before the auth.users row goes (and that it ends anonymous), the orphan query over
storage.objects, and the adapter methods over both."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError
from psycopg import errors

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import create_user
from devstack.tokens import anon_key, service_role_key, user_access_token
from shared.adapters.postgrest_jobs import PostgrestJobStore
from shared.domain.erasure import anonymised
from shared.errors import AppError
from tests.sql.test_rls import insert_job

pytestmark = pytest.mark.stack

BUCKET = "training-photos"


def store(rest: LocalPostgrest, jwt_secret: str) -> PostgrestJobStore:
    key = service_role_key(jwt_secret)
    client = SyncPostgrestClient(
        rest.url, headers={"apikey": key, "Authorization": f"Bearer {key}"}, retry_enabled=False
    )
    return PostgrestJobStore(lambda: client)


def test_deleting_a_user_records_what_the_cascade_takes(
    db: psycopg.Connection, pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str
) -> None:
    user = create_user(pg.dsn())
    trained = insert_job(
        db,
        user,
        status="pending",
        progress=20,
        replicate_file_id="file-1",
        replicate_file_url="https://api.replicate.test/v1/files/file-1",
        upload_expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    gone = insert_job(db, user, status="pending", progress=20, replicate_file_id="file-2")
    db.execute(
        "update ai_training_jobs set replicate_file_deleted_at = now() where id = %s", [gone]
    )
    db.execute("delete from auth.users where id = %s", [user])
    assert db.execute(
        "select count(*) from ai_training_jobs where user_id = %s", [user]
    ).fetchone() == (0,)

    jobs = store(rest, jwt_secret)
    (erasure,) = [e for e in jobs.list_erasures_due(1000) if str(e.user_id) == user]
    assert erasure.storage_prefix == f"{user}/"
    entries = {str(e.job_id): e for e in erasure.jobs}
    assert set(entries) == {trained, gone}
    assert entries[trained].file_id == "file-1" and entries[trained].file_url
    assert entries[gone].file_id is None  # deleted already: nothing to do
    assert erasure.uploads_open_until is not None and erasure.finished_at is None

    # It may only be finished anonymous.
    with pytest.raises(AppError):  # the check constraint, through the adapter's translation
        jobs.update_erasure(erasure.id, {"finished_at": datetime.now(UTC).isoformat()})
    jobs.update_erasure(erasure.id, anonymised({"jobs": 2}, datetime.now(UTC)))
    assert erasure.id not in {e.id for e in jobs.list_erasures_due(1000)}
    row = db.execute(
        "select user_id, storage_prefix, jobs, twin_ids, summary from account_erasures where id = %s",
        [erasure.id],
    ).fetchone()
    assert row == (None, None, [], [], {"jobs": 2})


def test_only_the_backend_sees_erasures_and_the_orphan_query(
    db: psycopg.Connection, pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str
) -> None:
    user = create_user(pg.dsn())
    db.execute("delete from auth.users where id = %s", [user])
    token = user_access_token(jwt_secret, "http://127.0.0.1", create_user(pg.dsn()))
    for auth in (anon_key(jwt_secret), token):
        client = SyncPostgrestClient(
            rest.url,
            headers={"apikey": anon_key(jwt_secret), "Authorization": f"Bearer {auth}"},
            retry_enabled=False,
        )
        with pytest.raises(APIError):  # no grant at all: not even an empty answer
            client.table("account_erasures").select("*").execute()
        with pytest.raises(APIError):
            params = {"p_older_than": datetime.now(UTC).isoformat(), "p_limit": "5"}
            client.rpc("orphan_photo_objects", params).execute()


def test_orphan_objects_are_those_no_live_job_row_knows(
    db: psycopg.Connection, pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str
) -> None:
    user = create_user(pg.dsn())
    live = insert_job(db, user, status="pending", progress=20)
    removed = insert_job(db, user, status="pending", progress=20)
    db.execute("update ai_training_jobs set photos_deleted_at = now() where id = %s", [removed])
    names = {
        "live": f"{user}/{live}/01.jpg",
        "after_removal": f"{user}/{removed}/upload/02",
        "no_row": f"{user}/{uuid.uuid4()}/upload/01",
        "outside": f"{user}/stray.jpg",
        "young": f"{user}/{uuid.uuid4()}/01.jpg",
    }
    for key, name in names.items():
        age = "now()" if key == "young" else "now() - interval '1 hour'"
        db.execute(
            "insert into storage.objects (bucket_id, name, metadata, created_at)"
            f" values (%s, %s, '{{}}', {age})",
            [BUCKET, name],
        )
    found = set(
        store(rest, jwt_secret).orphan_photo_objects(
            datetime.now(UTC) - timedelta(minutes=15), 10_000
        )
    )
    mine = {n for n in found if n.startswith(f"{user}/")}
    assert mine == {names["after_removal"], names["no_row"], names["outside"]}
    db.execute("delete from storage.objects where name like %s", [f"{user}/%"])


def test_a_finished_record_cannot_name_anyone(db: psycopg.Connection) -> None:
    with pytest.raises(errors.CheckViolation):
        db.execute(
            "insert into account_erasures (user_id, finished_at) values (%s, now())",
            [str(uuid.uuid4())],
        )
