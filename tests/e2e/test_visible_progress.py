"""Progress you can see (issue 18) end to end, over HTTP against the local stack: the phase in
every status answer, the history on request (compact, under 8 KB), the same points the owner
reads through Supabase (where Realtime takes them from), and nothing left after a delete."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from postgrest import SyncPostgrestClient

from devstack.replicate_emulator import ReplicateEmulator
from devstack.stack import LocalStack
from devstack.tokens import anon_key
from tests.e2e.conftest import User, photo_files, wait_for

ORDER = ["uploading", "preparing_gpu", "reading_photos", "training", "saving", "done"]


@pytest.fixture
def train_for(emulator: ReplicateEmulator) -> Iterator[Callable[[float], None]]:
    before = emulator.train_seconds

    def set_seconds(seconds: float) -> None:
        emulator.train_seconds = seconds

    yield set_seconds
    emulator.train_seconds = before


def started_job(stack: LocalStack, http: httpx.Client, user: User) -> str:
    response = http.post(
        stack.url("upload_training_photos"),
        headers=user.headers,
        data={"fursonaName": "Ember"},
        files=photo_files(3),
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    job_id: str = response.json()["jobId"]
    response = http.post(
        stack.url("start_ai_training"), headers=user.headers, json={"jobId": job_id}
    )
    assert response.status_code == 202, response.text
    return job_id


def status(
    stack: LocalStack, http: httpx.Client, user: User, job_id: str, **params: str
) -> httpx.Response:
    response = http.get(
        stack.url("check_training_status"), headers=user.headers, params={"jobId": job_id, **params}
    )
    assert response.status_code == 200, response.text
    return response


def test_every_answer_has_its_phase_and_the_history_comes_on_request(
    stack: LocalStack, http: httpx.Client, user: User, train_for: Callable[[float], None]
) -> None:
    train_for(6.0)
    job_id = started_job(stack, http, user)
    seen: list[httpx.Response] = []

    def done() -> bool:
        seen.append(status(stack, http, user, job_id, history="1"))
        return seen[-1].json()["status"] in ("completed", "failed")

    wait_for(done, timeout=60, interval=0.2)
    answers = [response.json() for response in seen]
    final = answers[-1]
    assert (final["status"], final["phase"], final["phaseText"]) == ("completed", "done", "Done")
    phases = [a["phase"] for a in answers]
    assert phases == sorted(phases, key=ORDER.index)  # never back
    assert {"preparing_gpu", "training"} <= set(phases)
    texts = [a["phaseText"] for a in answers if a["phase"] == "training"]
    assert any(t.startswith("Training, step ") and t.endswith(" of 1000") for t in texts), texts

    history = final["history"]
    steps = history["steps"]
    assert 100 <= len(steps) <= 200 and steps == sorted(steps) and steps[-1] == 1000
    assert len(history["seconds"]) == len(history["loss"]) == len(history["stepsPerSecond"])
    assert history["seconds"] == sorted(history["seconds"])
    assert all(loss is not None and 0 < loss < 1 for loss in history["loss"])
    assert max(len(response.content) for response in seen) < 8 * 1024
    assert (final["step"], final["totalSteps"]) == (1000, 1000)

    # Without the flag no history; POST asks for it with `history: true`.
    assert status(stack, http, user, job_id).json()["history"] is None
    posted = http.post(
        stack.url("check_training_status"),
        headers=user.headers,
        json={"jobId": job_id, "history": True},
    )
    assert posted.status_code == 200 and posted.json()["history"] == history

    # The owner reads the same points (and the public columns) through Supabase, as Realtime.
    owner = SyncPostgrestClient(
        f"{stack.supabase_url}/rest/v1",
        headers={"apikey": anon_key(stack.jwt_secret), "Authorization": f"Bearer {user.token}"},
        retry_enabled=False,
    )
    points: Any = (
        owner.from_("training_progress_points")
        .select("step")
        .eq("job_id", job_id)
        .order("bucket")
        .execute()
        .data
    )
    assert [p["step"] for p in points] == steps
    row: Any = owner.from_("ai_training_jobs").select("phase,step").eq("id", job_id).execute().data
    assert row == [{"phase": "done", "step": 1000}]


@pytest.mark.parametrize("value", ["yes", "2", "[true]"])
def test_a_history_flag_that_is_not_one_is_refused(
    stack: LocalStack, http: httpx.Client, user: User, value: str
) -> None:
    job_id = started_job(stack, http, user)
    response = http.get(
        stack.url("check_training_status"),
        headers=user.headers,
        params={"jobId": job_id, "history": value},
    )
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_field",
        "message": "history must be 1 or 0 (or true or false).",
    }
    posted = http.post(
        stack.url("check_training_status"),
        headers=user.headers,
        content=json.dumps({"jobId": job_id, "history": value}),
    )
    assert posted.status_code == 422 and posted.json()["error"]["code"] == "invalid_field"


def test_a_deleted_job_leaves_no_history(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    db: psycopg.Connection,
    train_for: Callable[[float], None],
) -> None:
    # Long enough to be read while it trains: a finished training read for the first time (a
    # loaded machine's first refresh) cannot place its history on the clock, so it has none.
    train_for(4.0)
    job_id = started_job(stack, http, user)
    wait_for(lambda: status(stack, http, user, job_id, history="true").json()["history"]["steps"])
    wait_for(lambda: status(stack, http, user, job_id).json()["status"] == "completed", timeout=30)
    answer = status(stack, http, user, job_id, history="true").json()
    assert answer["history"]["steps"]
    # The only version is the active one: it goes with its twin.
    response = http.delete(
        stack.url("check_training_status") + f"twins/{answer['twinId']}", headers=user.headers
    )
    assert response.status_code in (200, 202), response.text
    left = db.execute(
        "select count(*) from training_progress_points where job_id = %s", (job_id,)
    ).fetchone()
    assert left == (0,)
