"""Twins end to end, over HTTP through the local Function URLs with the real clients behind
them: train v1, retrain v2 (active), roll back, forward, delete v1, the active v2 refused, delete
the twin (nothing left but anonymous tombstones); twenty concurrent activations agree."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import psycopg
import pytest
import replicate
from replicate.exceptions import ReplicateError

from devstack.function_urls import FunctionUrls
from devstack.replicate_emulator import ReplicateEmulator
from devstack.stack import LocalStack
from supabase import ClientOptions, create_client
from tests.e2e.conftest import User, photo_files, wait_for

STATUS = "check_training_status"


def upload(stack: LocalStack, http: httpx.Client, user: User, **fields: str) -> dict[str, Any]:
    data = fields or {"fursonaName": "Ember", "customizationData": json.dumps({"type": "fox"})}
    response = http.post(
        stack.url("upload_training_photos"), headers=user.headers, data=data, files=photo_files(3)
    )
    assert response.status_code == 201, response.text
    return response.json()


def trained(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator, **fields: str
) -> dict[str, Any]:
    job = upload(stack, http, user, **fields)
    started = http.post(
        stack.url("start_ai_training"), headers=user.headers, json={"jobId": job["jobId"]}
    )
    assert started.status_code == 202, started.text
    emulator.finish_now(started.json()["trainingId"], outcome="succeeded")

    def completed() -> dict[str, Any] | None:
        answer = status(stack, http, user, job["jobId"])
        return answer if answer["status"] == "completed" else None

    return wait_for(completed, timeout=30, interval=0.2)


def status(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> dict[str, Any]:
    response = http.get(stack.url(STATUS), headers=user.headers, params={"jobId": job_id})
    assert response.status_code == 200, response.text
    return response.json()


def twin(stack: LocalStack, http: httpx.Client, user: User, twin_id: str) -> httpx.Response:
    return http.get(stack.url(STATUS) + f"twins/{twin_id}", headers=user.headers)


def activate(
    stack: LocalStack, http: httpx.Client, user: User, twin_id: str, job_id: str
) -> httpx.Response:
    return http.put(
        stack.url(STATUS) + f"twins/{twin_id}/active", headers=user.headers, json={"jobId": job_id}
    )


def test_a_twin_lives_on_through_versions_and_goes_away_whole(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    functions: FunctionUrls,
    db: psycopg.Connection,
):
    v1 = trained(stack, http, user, emulator)
    twin_id = v1["twinId"]
    assert (v1["version"], v1["active"]) == (1, True)

    v2 = trained(stack, http, user, emulator, twinId=twin_id)
    assert (v2["twinId"], v2["version"], v2["active"]) == (twin_id, 2, True)
    assert status(stack, http, user, v1["jobId"])["active"] is False
    listed = http.get(stack.url(STATUS) + "twins", headers=user.headers).json()["twins"]
    assert [(t["twinId"], t["activeVersion"]) for t in listed] == [(twin_id, 2)]
    assert [v["version"] for v in listed[0]["versions"]] == [1, 2]
    assert listed[0]["name"] == "Ember" and listed[0]["customizationData"] == {"type": "fox"}

    # Roll back to v1, forward to v2 again.
    back = activate(stack, http, user, twin_id, v1["jobId"])
    assert back.status_code == 200 and back.json()["activeVersion"] == 1, back.text
    assert status(stack, http, user, v1["jobId"])["active"] is True
    forward = activate(stack, http, user, twin_id, v2["jobId"])
    assert forward.json()["activeJobId"] == v2["jobId"]

    # Rename without retraining.
    renamed = http.patch(
        stack.url(STATUS) + f"twins/{twin_id}", headers=user.headers, json={"name": "Blaze"}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Blaze", renamed.text

    # Delete v1 (not active); the active v2 is refused on its own.
    gone = http.delete(stack.url(STATUS), headers=user.headers, params={"jobId": v1["jobId"]})
    assert gone.status_code == 200 and gone.json()["deleted"] is True, gone.text
    refused = http.delete(stack.url(STATUS), headers=user.headers, params={"jobId": v2["jobId"]})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "version_active"
    assert [v["version"] for v in twin(stack, http, user, twin_id).json()["versions"]] == [2]

    # Delete the twin: every version, their photos, zips and model versions.
    whole = http.delete(stack.url(STATUS) + f"twins/{twin_id}", headers=user.headers)
    assert whole.status_code in (200, 202), whole.text
    if whole.status_code == 202:
        functions.fire_schedule()
    assert twin(stack, http, user, twin_id).json()["error"]["code"] == "twin_not_found"
    again = http.delete(stack.url(STATUS) + f"twins/{twin_id}", headers=user.headers)
    assert again.status_code == 200 and again.json()["deleted"] is True, again.text

    # Nothing of the person is left: no object, no model version, only anonymous tombstones.
    sb = create_client(
        stack.supabase_url,
        stack.service_role_key,
        options=ClientOptions(httpx_client=httpx.Client(http2=False)),
    )
    for job in (v1, v2):
        assert sb.storage.from_("training-photos").list(f"{user.id}/{job['jobId']}") == []
    client = replicate.Client(api_token=stack.replicate_token, base_url=emulator.base_url)
    for job in (v1, v2):
        model, version_id = job["modelVersion"].split(":")
        with pytest.raises(ReplicateError) as missing:
            client._request("GET", f"/v1/models/{model}/versions/{version_id}")
        assert missing.value.status == 404
    rows = db.execute(
        "select furrsona_name, customization_data, photo_urls, deleted_at is not null"
        " from ai_training_jobs where twin_id = %s",
        [twin_id],
    ).fetchall()
    assert rows == [("(deleted)", {}, [], True)] * 2
    assert db.execute(
        "select name, customization_data, active_job_id, deleted_at is not null from twins"
        " where id = %s",
        [twin_id],
    ).fetchone() == ("(deleted)", {}, None, True)


def test_a_retrain_while_one_is_on_its_way_is_409_and_stores_nothing(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
):
    v1 = trained(stack, http, user, emulator)
    upload(stack, http, user, twinId=v1["twinId"])  # v2 pending
    before = emulator.calls.copy()
    response = http.post(
        stack.url("upload_training_photos"),
        headers=user.headers,
        data={"twinId": v1["twinId"]},
        files=photo_files(3),
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "twin_busy"
    assert emulator.calls == before
    versions = twin(stack, http, user, v1["twinId"]).json()["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [(1, "completed"), (2, "pending")]


def test_twenty_concurrent_activations_leave_one_answer_every_reader_agrees_on(
    stack: LocalStack, http: httpx.Client, user: User, emulator: ReplicateEmulator
):
    first = trained(stack, http, user, emulator)
    twin_id = first["twinId"]
    jobs = [first] + [trained(stack, http, user, emulator, twinId=twin_id) for _ in range(3)]
    barrier = threading.Barrier(20)
    answers: list[int] = []

    def go(job: dict[str, Any]) -> None:
        with httpx.Client(timeout=30) as own:
            barrier.wait()
            answers.append(activate(stack, own, user, twin_id, job["jobId"]).status_code)

    threads = [threading.Thread(target=go, args=(jobs[i % 4],)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 20
    active = twin(stack, http, user, twin_id).json()["activeJobId"]
    assert active in {j["jobId"] for j in jobs}
    assert [status(stack, http, user, j["jobId"])["active"] for j in jobs].count(True) == 1
    assert status(stack, http, user, active)["active"] is True
    listed = http.get(stack.url(STATUS) + "twins", headers=user.headers).json()["twins"]
    assert [t["activeJobId"] for t in listed if t["twinId"] == twin_id] == [active]
