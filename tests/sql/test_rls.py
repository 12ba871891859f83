"""Row-level security and grants: jobs through the real PostgREST, storage policies in SQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError
from psycopg import errors

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import create_user
from devstack.tokens import anon_key, service_role_key, user_access_token

pytestmark = pytest.mark.stack

BUCKET = "training-photos"
TABLE = "ai_training_jobs"


def client(rest: LocalPostgrest, apikey: str, token: str) -> SyncPostgrestClient:
    # Headers as supabase-py sends them: the project API key plus the caller's bearer token.
    return SyncPostgrestClient(
        base_url=rest.url,
        headers={"apikey": apikey, "Authorization": f"Bearer {token}"},
        retry_enabled=False,
    )


def insert_job(db: psycopg.Connection, user_id: str, **values: Any) -> str:
    values = {"user_id": user_id, "furrsona_name": "Biscuit", **values}
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = db.execute(
        f"insert into public.ai_training_jobs ({cols}) values ({marks}) returning id::text",
        list(values.values()),
    ).fetchone()
    assert row is not None
    return str(row[0])


def job_row(db: psycopg.Connection, job_id: str) -> tuple[Any, ...]:
    row = db.execute(
        "select status, progress, replicate_model_version, furrsona_name"
        " from public.ai_training_jobs where id = %s",
        [job_id],
    ).fetchone()
    assert row is not None, "job is gone"
    return tuple(row)


class Scene:
    """Two users, each with one job; clients for anon, each user and the service role."""

    def __init__(self, pg: LocalPostgres, rest: LocalPostgrest, secret: str) -> None:
        self.user_a = create_user(pg.dsn())
        self.user_b = create_user(pg.dsn())
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            self.job_a = insert_job(conn, self.user_a)
            self.job_b = insert_job(conn, self.user_b)
        anon = anon_key(secret)
        self.anon = client(rest, anon, anon)
        self.a = client(rest, anon, user_access_token(secret, rest.url, self.user_a))
        self.b = client(rest, anon, user_access_token(secret, rest.url, self.user_b))
        service = service_role_key(secret)
        self.service = client(rest, service, service)


@pytest.fixture
def scene(pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str) -> Scene:
    return Scene(pg, rest, jwt_secret)


def ids(rows: Any) -> set[str]:
    return {row["id"] for row in rows}


# --- jobs as anon -------------------------------------------------------------------------------


def test_anon_cannot_read_jobs(scene: Scene) -> None:
    with pytest.raises(APIError) as exc_info:
        scene.anon.from_(TABLE).select("id").execute()
    assert exc_info.value.code == "42501"


def test_anon_cannot_insert(scene: Scene, db: psycopg.Connection) -> None:
    with pytest.raises(APIError) as exc_info:
        scene.anon.from_(TABLE).insert({"user_id": scene.user_a, "furrsona_name": "X"}).execute()
    assert exc_info.value.code == "42501"
    count = db.execute(
        "select count(*) from public.ai_training_jobs where user_id = %s", [scene.user_a]
    ).fetchone()
    assert count == (1,)


# --- jobs as an authenticated user ---------------------------------------------------------------


def test_user_reads_only_own_jobs(scene: Scene) -> None:
    assert ids(scene.a.from_(TABLE).select("id").execute().data) == {scene.job_a}
    assert ids(scene.b.from_(TABLE).select("id").execute().data) == {scene.job_b}


def test_user_cannot_read_anothers_job_by_id(scene: Scene) -> None:
    assert scene.a.from_(TABLE).select("id").eq("id", scene.job_b).execute().data == []
    # Same query for their own job does find it: the filter itself is not the reason.
    assert ids(scene.a.from_(TABLE).select("id").eq("id", scene.job_a).execute().data) == {
        scene.job_a
    }


def test_user_cannot_insert(scene: Scene, db: psycopg.Connection) -> None:
    with pytest.raises(APIError) as exc_info:
        scene.a.from_(TABLE).insert({"user_id": scene.user_a, "furrsona_name": "Mine"}).execute()
    assert exc_info.value.code == "42501"
    count = db.execute(
        "select count(*) from public.ai_training_jobs where user_id = %s", [scene.user_a]
    ).fetchone()
    assert count == (1,)


@pytest.mark.parametrize(
    "change",
    [
        {"status": "training"},
        {"progress": 90},
        {"replicate_model_version": "evil/model:1"},
        {"furrsona_name": "Renamed"},
    ],
    ids=["status", "progress", "model_version", "name"],
)
def test_user_cannot_update_own_job(
    scene: Scene, db: psycopg.Connection, change: dict[str, Any]
) -> None:
    before = job_row(db, scene.job_a)
    with pytest.raises(APIError) as exc_info:
        scene.a.from_(TABLE).update(change).eq("id", scene.job_a).execute()
    assert exc_info.value.code == "42501"
    assert job_row(db, scene.job_a) == before


def test_user_cannot_delete_own_job(scene: Scene, db: psycopg.Connection) -> None:
    with pytest.raises(APIError) as exc_info:
        scene.a.from_(TABLE).delete().eq("id", scene.job_a).execute()
    assert exc_info.value.code == "42501"
    job_row(db, scene.job_a)  # still there


# --- jobs as the service role --------------------------------------------------------------------


def test_service_role_reads_all(scene: Scene) -> None:
    rows = (
        scene.service.from_(TABLE)
        .select("id")
        .in_("user_id", [scene.user_a, scene.user_b])
        .execute()
        .data
    )
    assert ids(rows) == {scene.job_a, scene.job_b}


def test_service_role_updates(scene: Scene, db: psycopg.Connection) -> None:
    rows: Any = (
        scene.service.from_(TABLE)
        .update({"status": "queued", "queued_at": "2026-12-07T10:00:00Z", "progress": 30})
        .eq("id", scene.job_a)
        .execute()
        .data
    )
    assert [(r["status"], r["progress"]) for r in rows] == [("queued", 30)]
    assert job_row(db, scene.job_a)[:2] == ("queued", 30)


def test_service_role_is_still_bound_by_the_state_machine(scene: Scene) -> None:
    with pytest.raises(APIError) as exc_info:
        scene.service.from_(TABLE).update({"status": "completed"}).eq("id", scene.job_a).execute()
    assert exc_info.value.code == "23514"
    assert (
        exc_info.value.message
        == "ai_training_jobs: status move pending -> completed is not allowed"
    )


# --- storage policies (SQL, as the Storage API runs them) ----------------------------------------


@contextmanager
def as_user(db: psycopg.Connection, user_id: str) -> Iterator[psycopg.Connection]:
    """One transaction as `authenticated` with the user's claims, like the Storage API does."""
    claims = json.dumps({"sub": user_id, "role": "authenticated"})
    with db.transaction():
        db.execute("set local role authenticated")
        db.execute("select set_config('request.jwt.claims', %s, true)", [claims])
        yield db


def put_object(db: psycopg.Connection, name: str, bucket: str = BUCKET) -> None:
    db.execute(
        "insert into storage.objects (bucket_id, name, metadata) values (%s, %s, '{}')",
        [bucket, name],
    )


def visible(db: psycopg.Connection, prefix: str) -> list[str]:
    rows = db.execute(
        "select name from storage.objects where bucket_id = %s and name like %s order by name",
        [BUCKET, prefix + "%"],
    ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def two_users(pg: LocalPostgres) -> tuple[str, str]:
    return create_user(pg.dsn()), create_user(pg.dsn())


def test_auth_uid_reads_the_claims(db: psycopg.Connection, two_users: tuple[str, str]) -> None:
    a, _ = two_users
    with as_user(db, a):
        row = db.execute("select auth.uid()::text, auth.role(), auth.jwt() ->> 'sub'").fetchone()
    assert row == (a, "authenticated", a)


def test_user_cannot_upload_even_into_own_folder(
    db: psycopg.Connection, two_users: tuple[str, str]
) -> None:
    # Photos enter only through the backend or a signed upload URL (issue 14).
    a, _ = two_users
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"), as_user(db, a):
        put_object(db, f"{a}/job-1/photo.jpg")
    assert visible(db, f"{a}/") == []


def test_user_cannot_upload_into_anothers_folder(
    db: psycopg.Connection, two_users: tuple[str, str]
) -> None:
    a, b = two_users
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"), as_user(db, a):
        put_object(db, f"{b}/job-1/photo.jpg")
    assert visible(db, f"{b}/") == []


@pytest.mark.parametrize("name", ["photo.jpg", "{other}/x.jpg", "job/{self}/x.jpg"])
def test_user_cannot_upload_outside_own_top_folder(
    db: psycopg.Connection, two_users: tuple[str, str], name: str
) -> None:
    a, b = two_users
    with pytest.raises(errors.InsufficientPrivilege), as_user(db, a):
        put_object(db, name.format(self=a, other=b))


def test_user_cannot_upload_own_folder_in_another_bucket(
    db: psycopg.Connection, two_users: tuple[str, str]
) -> None:
    a, _ = two_users
    db.execute(
        "insert into storage.buckets (id, name) values ('other', 'other') on conflict do nothing"
    )
    with pytest.raises(errors.InsufficientPrivilege), as_user(db, a):
        put_object(db, f"{a}/x.jpg", bucket="other")


def test_user_cannot_see_anothers_objects(
    db: psycopg.Connection, two_users: tuple[str, str]
) -> None:
    a, b = two_users
    put_object(db, f"{b}/job-1/photo.jpg")  # as postgres, like a service-role upload
    with as_user(db, a):
        assert visible(db, f"{b}/") == []
    with as_user(db, b):
        assert visible(db, f"{b}/") == [f"{b}/job-1/photo.jpg"]


def test_user_cannot_delete_objects_even_own(
    db: psycopg.Connection, two_users: tuple[str, str]
) -> None:
    a, b = two_users
    put_object(db, f"{a}/job-1/a.jpg")
    put_object(db, f"{b}/job-1/b.jpg")
    with as_user(db, a):
        assert (
            db.execute("delete from storage.objects where name like %s", [f"{a}/%"]).rowcount == 0
        )
        # No WHERE clause: no read access needed, so only the DELETE policies filter the rows.
        assert db.execute("delete from storage.objects").rowcount == 0
    assert visible(db, f"{a}/") == [f"{a}/job-1/a.jpg"]
    assert visible(db, f"{b}/") == [f"{b}/job-1/b.jpg"]


def test_user_cannot_update_or_move_objects(
    db: psycopg.Connection, two_users: tuple[str, str]
) -> None:
    a, _ = two_users
    put_object(db, f"{a}/job-1/a.jpg")
    with as_user(db, a):
        for change, values in (
            ("name = %s", [f"{a}/job-1/b.jpg"]),  # a move
            ("metadata = %s", ['{"size": 1}']),  # an update in place
        ):
            updated = db.execute(
                f"update storage.objects set {change} where name = %s",
                [*values, f"{a}/job-1/a.jpg"],
            ).rowcount
            assert updated == 0
    assert visible(db, f"{a}/") == [f"{a}/job-1/a.jpg"]


@pytest.fixture
def a_policy_that_opens_everything(db: psycopg.Connection) -> Iterator[None]:
    """What a dashboard template added later might do: every write, every bucket, every user."""
    db.execute(
        "insert into storage.buckets (id, name) values ('other', 'other') on conflict do nothing"
    )
    db.execute(
        'create policy "test: anything goes" on storage.objects for all to authenticated'
        " using (true) with check (true)"
    )
    try:
        yield
    finally:
        db.execute('drop policy "test: anything goes" on storage.objects')


@pytest.mark.usefixtures("a_policy_that_opens_everything")
def test_no_later_policy_reopens_writes_to_the_bucket(
    db: psycopg.Connection, two_users: tuple[str, str]
) -> None:
    a, _ = two_users
    put_object(db, f"{a}/job-1/a.jpg")
    with pytest.raises(errors.InsufficientPrivilege), as_user(db, a):
        put_object(db, f"{a}/job-1/planted.jpg")
    with pytest.raises(errors.InsufficientPrivilege), as_user(db, a):
        # Into the bucket from another one: the move's new row is checked too.
        put_object(db, f"{a}/x.jpg", bucket="other")
        db.execute(
            "update storage.objects set bucket_id = %s where bucket_id = 'other' and name = %s",
            [BUCKET, f"{a}/x.jpg"],
        )
    with as_user(db, a):
        mine = [f"{a}/job-1/a.jpg"]
        assert (
            db.execute(
                "update storage.objects set name = name || '.x' where name = any(%s)", [mine]
            ).rowcount
            == 0
        )
        assert db.execute("delete from storage.objects where name = any(%s)", [mine]).rowcount == 0
        # The guard is this bucket only: the permissive policy still works elsewhere.
        put_object(db, f"{a}/y.jpg", bucket="other")
        assert db.execute("delete from storage.objects where bucket_id = 'other'").rowcount == 1
    assert visible(db, f"{a}/") == [f"{a}/job-1/a.jpg"]


def test_bucket_is_private_with_limits(db: psycopg.Connection) -> None:
    row = db.execute(
        "select public, file_size_limit, allowed_mime_types from storage.buckets where id = %s",
        [BUCKET],
    ).fetchone()
    assert row is not None
    public, size_limit, mime_types = row
    assert public is False
    assert size_limit == 15 * 1024 * 1024
    assert sorted(mime_types) == sorted(
        ["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"]
    )


def test_storage_helpers(db: psycopg.Connection) -> None:
    row = db.execute(
        "select storage.foldername('a/b/c.tar.gz'), storage.filename('a/b/c.tar.gz'),"
        " storage.extension('a/b/c.tar.gz'), storage.foldername('c.jpg'), storage.extension('a/c')"
    ).fetchone()
    assert row == (["a", "b"], "c.tar.gz", "gz", [], "")
