"""Previews end to end, over HTTP through the local Function URLs with the real clients behind
them (postgrest, storage3, replicate) against PostgREST, the Storage emulator and the Replicate
emulator's predictions: PREVIEW_COUNT private pictures when a training completes, signed URLs
that work and expire, no Replicate URL in any answer, one set under duplicate webhooks and
concurrent status calls, NSFW and hung predictions ending readable with the job completed,
pictures on demand within the daily limit, and a deleted version taking its pictures along."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
from PIL import Image

from devstack.function_urls import FunctionUrls
from devstack.replicate_emulator import ReplicateEmulator
from devstack.stack import LocalStack
from tests.e2e.conftest import User, photo_files, wait_for

STATUS = "check_training_status"
CUSTOM = {"type": "red panda", "furType": "fluffy", "colors": ["rust", "cream"]}


def upload(stack: LocalStack, http: httpx.Client, user: User, **fields: str) -> dict[str, Any]:
    data = fields or {"fursonaName": "Ember", "customizationData": json.dumps(CUSTOM)}
    response = http.post(
        stack.url("upload_training_photos"), headers=user.headers, data=data, files=photo_files(3)
    )
    assert response.status_code == 201, response.text
    return response.json()


def status(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> dict[str, Any]:
    response = http.get(stack.url(STATUS), headers=user.headers, params={"jobId": job_id})
    assert response.status_code == 200, response.text
    return response.json()


def start(stack: LocalStack, http: httpx.Client, user: User, **fields: str) -> tuple[str, str]:
    job = upload(stack, http, user, **fields)
    started = http.post(
        stack.url("start_ai_training"), headers=user.headers, json={"jobId": job["jobId"]}
    )
    assert started.status_code == 202, started.text
    return job["jobId"], started.json()["trainingId"]


def settled_previews(
    stack: LocalStack, http: httpx.Client, user: User, job_id: str, timeout: float = 40
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        answer = status(stack, http, user, job_id)
        previews = answer.get("previews")
        return answer if previews and previews["status"] != "pending" else None

    return wait_for(done, timeout=timeout, interval=0.3)


def trained(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator, **fields: str
) -> dict[str, Any]:
    job_id, training_id = start(stack, http, user, **fields)
    emulator.finish_now(training_id, outcome="succeeded")
    return settled_previews(stack, http, user, job_id)


def created(emulator: ReplicateEmulator) -> int:
    """Predictions ever created (what a bill would count)."""
    return sum(emulator.stats()["predictions_created"].values())


def no_replicate_url(text: str, emulator: ReplicateEmulator) -> None:
    assert "/delivery/" not in text and emulator.base_url not in text
    assert "replicate.delivery" not in text


def test_a_completed_training_yields_private_previews_with_signed_urls_that_work_and_expire(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
):
    created_before = created(emulator)
    answer = trained(stack, http, user, emulator)
    assert answer["status"] == "completed"
    previews = answer["previews"]
    assert previews["status"] == "ready" and previews["ready"] == previews["total"] == 4
    assert created(emulator) - created_before == 4
    bodies = []
    for picture in previews["pictures"]:
        assert picture["url"].startswith(stack.supabase_url) and "token=" in picture["url"]
        got = httpx.get(picture["url"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/webp"
        image = Image.open(io.BytesIO(got.content))
        assert image.format == "WEBP" and image.size == (1024, 1024)
        bodies.append(got.content)
        assert "TOK" in picture["prompt"] and "red panda" in picture["prompt"]
    assert len(set(bodies)) == 4  # each picture its own prompt and seed
    no_replicate_url(json.dumps(answer), emulator)
    twin = http.get(stack.url(STATUS) + f"twins/{answer['twinId']}", headers=user.headers)
    assert twin.status_code == 200
    (version,) = twin.json()["versions"]
    assert version["previews"][0]["setId"] == previews["setId"]
    assert all(p["url"] for p in version["previews"][0]["pictures"])
    no_replicate_url(twin.text, emulator)
    # In the private bucket under the owner's folder; the URLs stop working once expired.
    stored = stack.gateway.storage  # type: ignore[union-attr]
    url = previews["pictures"][0]["url"]
    seconds = 900  # PREVIEW_URL_SECONDS' default
    stored.clock = lambda: time.time() + seconds + 5
    try:
        assert httpx.get(url).status_code in (400, 401, 403)
    finally:
        stored.clock = time.time
    assert httpx.get(url).status_code == 200


def test_duplicate_webhooks_and_concurrent_status_calls_make_one_set(
    stack: LocalStack,
    http: httpx.Client,
    make_user: Callable[[], User],
    emulator: ReplicateEmulator,
    refresh_every: Callable[[float], None],
):
    refresh_every(0)
    user = make_user()
    # The training's start and completed events, and each prediction's completed one.
    emulator.webhook_faults.add("duplicate", times=6)
    job_id, training_id = start(stack, http, user)
    before = created(emulator)
    emulator.finish_now(training_id, outcome="succeeded")
    barrier = threading.Barrier(10)

    def read() -> None:
        barrier.wait()
        status(stack, http, user, job_id)

    threads = [threading.Thread(target=read) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answer = settled_previews(stack, http, user, job_id)
    emulator.wait_for_webhooks(10)
    emulator.webhook_faults.clear()  # none left over for the next test
    assert answer["previews"]["status"] == "ready"
    assert created(emulator) - before == 4


def test_an_unsafe_picture_and_a_hung_one_end_readable_with_the_job_completed(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    function_settings: Callable[..., None],
):
    function_settings(PREVIEW_TIMEOUT_SECONDS="5", PREVIEW_WAIT_SECONDS="2")
    # The switches take the next predictions in order: the first hangs (its NSFW switch unused
    # while it never finishes), the second is flagged.
    emulator.next_prediction_hangs(times=1)
    emulator.next_prediction_nsfw(times=2)
    answer = trained(stack, http, user, emulator)
    assert answer["status"] == "completed" and answer["errorMessage"] is None
    previews = answer["previews"]
    assert previews["status"] == "partly_ready" and previews["ready"] == 2
    failures = sorted(
        (p["errorCode"], p["errorMessage"]) for p in previews["pictures"] if p["status"] == "failed"
    )
    assert failures == [
        ("timed_out", "The picture took too long to make and was canceled."),
        ("unsafe", "The picture was flagged as unsafe, so it was not kept."),
    ]
    assert all(p["url"] is None for p in previews["pictures"] if p["status"] == "failed")


def test_pictures_on_demand_respect_the_daily_limit(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    function_settings: Callable[..., None],
):
    function_settings(PREVIEWS_PER_DAY="3")
    answer = trained(stack, http, user, emulator)
    path = stack.url(STATUS) + f"twins/{answer['twinId']}/previews"
    made = http.post(path, headers=user.headers, json={"style": "watercolor", "count": 2})
    assert made.status_code in (200, 202), made.text
    picked = made.json()
    assert picked["kind"] == "on_demand" and picked["total"] == 2
    no_replicate_url(made.text, emulator)
    refused = http.post(path, headers=user.headers, json={"count": 2})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "preview_limit_reached"
    bad = http.post(path, headers=user.headers, json={"style": "nope"})
    assert bad.status_code == 422
    last = http.post(path, headers=user.headers, json={"count": 1})
    assert last.status_code in (200, 202)


def test_deleting_a_version_removes_its_previews(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    functions: FunctionUrls,
    db: psycopg.Connection,
):
    v1 = trained(stack, http, user, emulator)
    v2 = trained(stack, http, user, emulator, twinId=v1["twinId"])
    assert v2["active"] is True
    storage = stack.gateway.storage  # type: ignore[union-attr]
    folder = f"{user.id}/previews/{v1['jobId']}"

    def objects(prefix: str) -> int:
        row = db.execute(
            "select count(*) from storage.objects where bucket_id = 'training-photos'"
            " and name like %s",
            [prefix + "/%"],
        ).fetchone()
        assert row is not None
        return int(row[0])

    assert objects(folder) == 4 and storage is not None
    url = v1["previews"]["pictures"][0]["url"]
    deleted = http.delete(stack.url(STATUS), headers=user.headers, params={"jobId": v1["jobId"]})
    assert deleted.status_code in (200, 202), deleted.text
    functions.fire_schedule()
    wait_for(lambda: objects(folder) == 0, timeout=20)
    assert httpx.get(url).status_code in (400, 404)
    assert objects(f"{user.id}/previews/{v2['jobId']}") == 4


def test_previews_refused_before_a_version_is_ready_when_off_or_without_webhooks(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    function_settings: Callable[..., None],
):
    job_id, _ = start(stack, http, user)
    twin_id = status(stack, http, user, job_id)["twinId"]
    path = stack.url(STATUS) + f"twins/{twin_id}/previews"
    early = http.post(path, headers=user.headers, json={})
    assert early.status_code == 409 and early.json()["error"]["code"] == "no_active_version"
    function_settings(PREVIEWS_PER_DAY="0")
    off = http.post(path, headers=user.headers, json={})
    assert off.status_code == 409 and off.json()["error"]["code"] == "previews_off"
    function_settings(REPLICATE_WEBHOOK_SECRET="")
    hook = http.post(
        stack.url(STATUS) + "webhooks/replicate/previews",
        params={"previewId": "5e1d2c3b-4a59-4687-9c8b-7a6f5e4d3c2b"},
        content=b"{}",
    )
    assert hook.status_code == 503 and hook.json()["error"]["code"] == "webhooks_disabled"
