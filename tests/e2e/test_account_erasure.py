"""A person deletes their account (issue 14.5), on real Postgres through the whole stack: one twin
completed (its trained version on Replicate), one mid-training, one signed upload half done.
The auth.users row goes; the cascade takes the rows at once, the trigger's record lets the sweep
remove the rest. At the end the emulators, Storage and the database hold nothing of that person
but an anonymous tombstone."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from devstack.function_urls import FunctionUrls
from devstack.replicate_emulator import ReplicateEmulator
from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from tests.corpus.upload_paths import FIELDS, create_signed, put_photo
from tests.e2e.conftest import User, wait_for
from tests.e2e.test_privacy import (
    completed_job,
    on_replicate,
    replicate_client,
    started_job,
)


def db(stack: LocalStack) -> psycopg.Connection:
    assert stack.pg is not None
    return psycopg.connect(stack.pg.dsn(), autocommit=True)


def mentions(stack: LocalStack, needles: list[str]) -> dict[str, int]:
    """Rows of every table in public, storage and auth whose text holds any of `needles`."""
    found: dict[str, int] = {}
    with db(stack) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('public', 'storage', 'auth') and table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            for needle in needles:
                (count,) = conn.execute(  # type: ignore[misc]
                    f'select count(*) from "{schema}"."{table}" t where t::text like %s',
                    [f"%{needle}%"],
                ).fetchone()
                if count:
                    found[f"{schema}.{table}"] = found.get(f"{schema}.{table}", 0) + count
    return found


def test_deleting_an_account_mid_training_and_after_completion_leaves_nothing(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    functions: FunctionUrls,
) -> None:
    done = completed_job(stack, http, user, emulator)
    model, version_id = done["modelVersion"].split(":")
    version_path = f"/v1/models/{model}/versions/{version_id}"
    before, emulator.train_seconds = emulator.train_seconds, 300
    try:
        running_id, training_id = started_job(stack, http, user)  # a second twin, training
    finally:
        emulator.train_seconds = before
    photos = [make_photo(600, 600, seed=800 + i) for i in range(3)]
    declared = [
        {"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": len(p)}
        for i, p in enumerate(photos)
    ]
    half = create_signed(stack, http, user, {**FIELDS, "photos": declared})
    assert half.status_code == 201, half.text
    assert put_photo(http, half.json()["uploads"][0], photos[0]).status_code == 200
    late_target = half.json()["uploads"][1]

    with db(stack) as conn:
        jobs = [
            str(r[0])
            for r in conn.execute(
                "select id from ai_training_jobs where user_id = %s", [user.id]
            ).fetchall()
        ]
        files = [
            r[0]
            for r in conn.execute(
                "select replicate_file_id from ai_training_jobs where user_id = %s"
                " and replicate_file_id is not null",
                [user.id],
            ).fetchall()
        ]
        assert len(jobs) == 3 and len(files) >= 1
        conn.execute("delete from auth.users where id = %s", [user.id])
        (erasure_id,) = conn.execute(  # type: ignore[misc]
            "select id from account_erasures where user_id = %s", [user.id]
        ).fetchone()
        # The cascade took the rows at once.
        assert conn.execute(
            "select count(*) from ai_training_jobs where user_id = %s", [user.id]
        ).fetchone() == (0,)

    # A signed URL still valid is used after the account went: the upload window keeps the
    # erasure open, and what lands is removed too.
    assert put_photo(http, late_target, photos[1]).status_code == 200
    with db(stack) as conn:
        conn.execute(
            "update account_erasures set uploads_open_until = now() - interval '1 second'"
            " where id = %s",
            [erasure_id],
        )

    def finished() -> dict[str, Any] | None:
        functions.fire_schedule()
        with db(stack) as conn:
            cur = conn.cursor(row_factory=psycopg.rows.dict_row)
            cur.execute("select * from account_erasures where id = %s", [erasure_id])
            row = cur.fetchone()
        return row if row and row["finished_at"] else None

    tombstone = wait_for(finished, timeout=60, interval=0.5)
    # Only an anonymous tombstone: counts and times.
    assert tombstone["user_id"] is None and tombstone["storage_prefix"] is None
    assert tombstone["jobs"] == [] and tombstone["twin_ids"] == []
    assert tombstone["summary"]["jobs"] == 3 and tombstone["summary"]["trainings_canceled"] >= 1

    # Replicate: the training stopped, the zips and the trained version gone.
    assert emulator.training(training_id)["status"] == "canceled"
    client = replicate_client(stack, emulator)
    for file_id in files:
        assert not on_replicate(client, f"/v1/files/{file_id}")
    assert not on_replicate(client, version_path)
    with emulator.state.lock:
        left = [f.id for f in emulator.state.files.values() if f.metadata.get("job_id") in jobs]
    assert left == []
    # Storage and the database: nothing that names the person or their jobs.
    assert mentions(stack, [user.id, *jobs]) == {}, (running_id, done["jobId"])
