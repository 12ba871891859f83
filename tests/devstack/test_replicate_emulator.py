"""The Replicate emulator, driven by the real `replicate` client over HTTP.

Every assertion on a copied fact names its source in the team reference's Replicate notes
(the "ref" section numbers below).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time
from datetime import datetime, timedelta

import httpx
import pytest
import replicate
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction
from replicate.webhook import InvalidSignatureError, WebhookSigningSecret

from devstack.replicate_emulator import (
    TRAINER_MODEL,
    TRAINER_VERSION,
    ReplicateEmulator,
    sign_webhook,
)
from tests.devstack.replicate_fixtures import (
    BARE_BAR,
    CREATE_ROUTE,
    TOKEN,
    TRAINER_BAR,
    FakeClock,
    Receiver,
    client,
    clock,
    emu,
    photos_zip,
    raw,
    start_training,
    upload_zip,
)

__all__ = ["client", "clock", "emu", "raw"]  # fixtures

# --- webhook signing (ref 5) ---------------------------------------------------------------


def test_signature_matches_the_recorded_test_vector_and_the_client_validator() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", '{"test": 2432232314}'
    signature = sign_webhook(secret, msg_id, ts, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": signature}
    key = WebhookSigningSecret(key=secret)
    replicate.webhooks.validate(headers=headers, body=body, secret=key)
    with pytest.raises(InvalidSignatureError):
        replicate.webhooks.validate(headers=headers, body=body + " ", secret=key)


# --- shared API behaviour (ref 1, 9.1, 9.8) -----------------------------------------------


def test_missing_or_wrong_token_is_the_recorded_401_problem(
    emu: ReplicateEmulator, raw: httpx.Client
) -> None:
    for headers in ({}, {"Authorization": "Bearer r8_wrong"}):
        resp = httpx.get(f"{emu.base_url}/v1/trainings", headers=headers)
        assert resp.status_code == 401
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json() == {
            "title": "Unauthenticated",
            "detail": "You did not pass a valid authentication token",
            "status": 401,
        }
    with pytest.raises(ReplicateError) as err:
        replicate.Client(api_token="r8_wrong", base_url=emu.base_url).trainings.list()
    assert err.value.status == 401
    assert err.value.title == "Unauthenticated"
    # The docs' curl examples use `Token` (ref 1 Auth).
    token = httpx.get(f"{emu.base_url}/v1/trainings", headers={"Authorization": f"Token {TOKEN}"})
    assert token.status_code == 200
    assert int(token.headers["ratelimit-remaining"]) > 0
    assert int(token.headers["ratelimit-reset"]) >= 1


# --- files (ref 4, 9.6) -------------------------------------------------------------------


def test_file_object_download_and_delete(emu: ReplicateEmulator, client: replicate.Client) -> None:
    data = photos_zip()
    created = client.files.create(
        io.BytesIO(data), filename="photos.zip", metadata={"job_id": "j-1"}
    )
    md5 = hashlib.md5(data).hexdigest()
    assert created.name == "photos.zip"
    assert created.content_type == "application/zip"
    assert created.size == len(data)
    assert created.etag == md5
    assert created.checksums == {"sha256": hashlib.sha256(data).hexdigest(), "md5": md5}
    assert created.metadata == {"job_id": "j-1"}
    assert created.urls["get"] == f"{emu.base_url}/v1/files/{created.id}"
    made = datetime.fromisoformat(created.created_at.replace("Z", "+00:00"))
    expires = datetime.fromisoformat(str(created.expires_at).replace("Z", "+00:00"))
    assert expires - made == timedelta(hours=24)  # recorded 24 h expiry
    assert re.fullmatch(r"[\d-]+T[\d:]+\.\d{3}Z", created.created_at)

    download = f"{emu.base_url}/v1/files/{created.id}/download"
    assert httpx.get(download).status_code == 401
    assert httpx.get(download, headers={"Authorization": f"Bearer {TOKEN}"}).content == data
    assert [f.id for f in client.files.list()] == [created.id]
    assert client.files.get(created.id).etag == md5

    assert client.files.delete(created.id) is True  # True iff 204
    with pytest.raises(ReplicateError) as err:
        client.files.get(created.id)
    assert (err.value.status, err.value.detail) == (404, "File not found")
    with pytest.raises(ReplicateError) as err:
        client.files.delete(created.id)
    assert err.value.status == 404


def test_file_over_the_limit_is_413_with_the_recorded_body() -> None:
    with ReplicateEmulator(api_token=TOKEN, max_file_bytes=1000) as emu:
        client = replicate.Client(api_token=TOKEN, base_url=emu.base_url)
        with pytest.raises(ReplicateError) as err:
            client.files.create(io.BytesIO(b"x" * 5000), filename="big.zip")
        assert err.value.status == 413
        assert err.value.detail == "Files must be less than 100MB in size"


# --- models (ref 3, 9.9) ------------------------------------------------------------------


def test_models_create_201_duplicate_409_and_reused_name_409(
    emu: ReplicateEmulator, client: replicate.Client, raw: httpx.Client
) -> None:
    body = {"owner": "flurrty", "name": "dest", "visibility": "private", "hardware": "cpu"}
    resp = raw.post("/v1/models", json=body)
    assert resp.status_code == 201
    assert set(resp.json()) == {
        "url",
        "owner",
        "name",
        "description",
        "visibility",
        "github_url",
        "paper_url",
        "license_url",
        "run_count",
        "cover_image_url",
        "default_example",
        "latest_version",
    }
    with pytest.raises(ReplicateError) as err:
        client.models.create("flurrty", "dest", visibility="private", hardware="cpu")
    assert err.value.status == 409
    assert client.models.delete("flurrty", "dest") is True
    # A deleted model's name stays taken (ref 1, replicate-python#323).
    with pytest.raises(ReplicateError) as err:
        client.models.create("flurrty", "dest", visibility="private", hardware="cpu")
    assert err.value.status == 409
    missing = raw.get("/v1/models/flurrty/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    with pytest.raises(ReplicateError) as err:
        client.models.create("someone-else", "x", visibility="private", hardware="cpu")
    assert err.value.status == 403


def test_trainer_model_and_version_shape(client: replicate.Client) -> None:
    trainer = client.models.get(TRAINER_MODEL)
    assert trainer.latest_version is not None
    assert trainer.latest_version.id == TRAINER_VERSION
    assert trainer.latest_version.cog_version == "0.9.20"
    schema = trainer.latest_version.openapi_schema["components"]["schemas"]["TrainingInput"]
    assert schema["properties"]["steps"]["maximum"] == 6000
    assert TRAINER_VERSION in [v.id for v in trainer.versions.list()]


# --- trainings (ref 2, 9.2-9.5) -----------------------------------------------------------


def test_training_create_is_201_with_the_recorded_shape(
    emu: ReplicateEmulator, client: replicate.Client, raw: httpx.Client
) -> None:
    body = {"destination": "flurrty/twins", "input": {"input_images": upload_zip(client)}}
    resp = raw.post(f"/v1/models/{TRAINER_MODEL}/versions/{TRAINER_VERSION}/trainings", json=body)
    assert resp.status_code == 201
    created = resp.json()
    tid = created["id"]
    assert re.fullmatch(r"[a-z2-7]{26}", tid)
    assert created["status"] == "starting"
    assert created["logs"] == "" and created["error"] is None
    assert created["model"] == TRAINER_MODEL and created["version"] == TRAINER_VERSION
    assert created["created_at"].endswith("Z")
    # Create answers point at /v1/predictions and lack the later fields (ref 2.1).
    assert created["urls"] == {
        "get": f"{emu.base_url}/v1/predictions/{tid}",
        "cancel": f"{emu.base_url}/v1/predictions/{tid}/cancel",
    }
    assert not {"started_at", "completed_at", "output", "metrics"} & set(created)
    got = raw.get(f"/v1/trainings/{tid}").json()
    assert got == raw.get(f"/v1/predictions/{tid}").json()
    assert got["urls"]["get"] == f"{emu.base_url}/v1/trainings/{tid}"
    assert got["metrics"] == {} and got["started_at"] is None
    assert emu.count("POST", CREATE_ROUTE) == 1


def test_missing_destination_is_the_recorded_404(
    client: replicate.Client, raw: httpx.Client
) -> None:
    with pytest.raises(ReplicateError) as err:
        client.trainings.create(
            model=TRAINER_MODEL,
            version=TRAINER_VERSION,
            input={"input_images": "https://example.invalid/x.zip"},
            destination="flurrty/not-there",
        )
    assert err.value.status == 404
    assert err.value.detail == "The specified training destination does not exist"
    resp = raw.post(
        f"/v1/models/{TRAINER_MODEL}/versions/{TRAINER_VERSION}/trainings",
        json={"destination": "flurrty/not-there", "input": {}},
    )
    assert resp.json() == {
        "detail": "The specified training destination does not exist",
        "status": 404,
    }
    assert resp.headers["content-type"] == "application/problem+json"


def test_unknown_trainer_version_is_422(client: replicate.Client) -> None:
    with pytest.raises(ReplicateError) as err:
        client.trainings.create(
            model=TRAINER_MODEL,
            version="0" * 64,
            input={"input_images": "https://example.invalid/x.zip"},
            destination="flurrty/twins",
        )
    assert err.value.status == 422
    assert err.value.title == "Invalid version or not permitted"


def test_lifecycle_on_the_clock_ends_with_a_destination_version(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock, raw: httpx.Client
) -> None:
    training = start_training(client, upload_zip(client))
    assert training.status == "starting"
    clock.advance(11)  # past boot_seconds=10
    training.reload()
    assert training.status == "processing" and training.started_at
    clock.advance(50)
    training.reload()
    assert training.status == "processing"
    assert training.logs and TRAINER_BAR.search(training.logs)
    clock.advance(60)
    training.reload()
    assert training.status == "succeeded"
    # output.version is owner/name:id and the client derives the destination (ref 2.5, 7).
    assert re.fullmatch(r"flurrty/twins:[0-9a-f]{64}", training.output["version"])
    assert training.destination == "flurrty/twins"
    assert training.output["weights"].startswith(emu.base_url)
    assert training.output["weights"].endswith("/trained_model.tar")
    assert training.completed_at and training.completed_at.endswith("Z")
    new_version = training.output["version"].split(":")[1]
    latest = client.models.get("flurrty/twins").latest_version
    assert latest is not None and latest.id == new_version
    body = raw.get(f"/v1/trainings/{training.id}").json()
    assert body["metrics"]["predict_time"] == pytest.approx(100, abs=0.01)
    assert body["metrics"]["total_time"] == pytest.approx(110, abs=0.01)
    weights = httpx.get(training.output["weights"])
    assert weights.status_code == 200 and weights.content[257:262] == b"ustar"


def test_logs_put_bare_bars_before_the_trainer_bar(
    client: replicate.Client, clock: FakeClock
) -> None:
    training = start_training(client, upload_zip(client), input={"steps": 200})
    clock.advance(10 + 55)  # halfway through processing
    training.reload()
    lines = (training.logs or "").splitlines()
    assert "Extracted 3 files from zip to input_images" in lines
    assert any(line.startswith("Downloaded base weights in ") for line in lines)
    trainer_idx = [i for i, line in enumerate(lines) if TRAINER_BAR.search(line)]
    bare_idx = [i for i, line in enumerate(lines) if BARE_BAR.match(line)]
    caching_idx = [i for i, line in enumerate(lines) if line.startswith("Caching latents:")]
    assert bare_idx and caching_idx and trainer_idx
    assert max(bare_idx + caching_idx) < min(trainer_idx)
    assert "100%|██████████| 3/3 [" in lines[max(bare_idx)]
    last = TRAINER_BAR.findall(training.logs or "")[-1]
    assert last[2] == "200" and 0 < int(last[1]) < 200
    assert int(last[0]) == round(100 * int(last[1]) / 200)
    for i in trainer_idx:  # percent padded to 3 characters (ref 6.3)
        assert re.match(r"flux_train_replicate: [ \d]{2}\d%\|.{10}\| \d+/200 \[", lines[i])
    assert re.search(r"it/s, lr: 4\.0e-04 loss: \d\.\d{3}e-\d\d\]$", lines[trainer_idx[-1]])
    # The client's own parser (predictions only) picks up a bare bar, not training progress.
    progress = Prediction.Progress.parse("\n".join(lines[: min(trainer_idx)]))
    assert progress is not None and progress.total == 3


def test_bad_inputs_fail_the_training_not_the_create(
    emu: ReplicateEmulator, client: replicate.Client
) -> None:
    not_url = start_training(client, "photos.zip")
    bad_steps = start_training(client, upload_zip(client), input={"steps": 2})
    not_zip = start_training(client, upload_zip(client, b"plain text, not a zip"))
    no_images = start_training(client, upload_zip(client, photos_zip(("a.JPG", "b.heic"))))
    for training in (not_url, bad_steps, not_zip, no_images):
        assert training.status == "starting"
        emu.settle(training.id)
        training.reload()
        assert training.status == "failed"
    assert not_url.error and not_url.error.startswith("Prediction input failed validation: ")
    detail = json.loads(not_url.error.split(": ", 1)[1])["detail"][0]
    assert detail["loc"] == ["body", "input", "input_images"]
    assert "is not a valid URL scheme" in detail["msg"]
    assert bad_steps.error and '"type":"value_error.number.not_ge"' in bad_steps.error
    assert not_zip.error == "input_images must be a zip file"
    assert no_images.error and no_images.error.startswith("input_images must be a zip file")


def test_data_uri_zip_trains(emu: ReplicateEmulator, client: replicate.Client) -> None:
    uri = "data:application/zip;base64," + base64.b64encode(photos_zip()).decode()
    training = start_training(client, uri)
    done = emu.settle(training.id)
    assert done["status"] == "succeeded"
    assert "Extracted 3 files from zip to input_images" in done["logs"]


def test_cancel_running_and_terminal(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock, raw: httpx.Client
) -> None:
    training = start_training(client, upload_zip(client))
    clock.advance(20)
    canceled = client.trainings.cancel(training.id)
    assert canceled.status == "canceled" and canceled.completed_at
    body = raw.get(f"/v1/trainings/{training.id}").json()
    assert body["metrics"]["predict_time"] == pytest.approx(10, abs=0.01)
    clock.advance(500)
    again = raw.post(f"/v1/trainings/{training.id}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "canceled"
    assert again.json()["completed_at"] == body["completed_at"]
    # Cancel before start, as recorded: completed_at set, a tiny predict_time, null logs.
    early = start_training(client, upload_zip(client))
    body = raw.post(f"/v1/predictions/{early.id}/cancel").json()
    assert body["status"] == "canceled" and body["logs"] is None
    assert body["completed_at"] and body["metrics"]["predict_time"] < 0.001


def test_list_is_newest_first_with_absolute_next_urls(
    emu: ReplicateEmulator, client: replicate.Client
) -> None:
    url = upload_zip(client)
    ids = [start_training(client, url).id for _ in range(101)]
    assert emu.count("POST", CREATE_ROUTE) == 101
    first = client.trainings.list()
    assert len(first.results) == 100 and first.previous is None
    assert [t.id for t in first.results] == ids[::-1][:100]
    assert first.next and first.next.startswith(f"{emu.base_url}/v1/trainings?cursor=")
    second = client.trainings.list(first.next)  # the client GETs the URL as given
    assert [t.id for t in second.results] == [ids[0]]
    assert second.next is None and second.previous
    assert len(client.trainings.list(second.previous).results) == 100
    assert sum(len(page.results) for page in replicate.paginate(client.trainings.list)) == 101


def test_aborted_status_and_injected_failure(
    emu: ReplicateEmulator, client: replicate.Client, raw: httpx.Client
) -> None:
    emu.next_training_outcome("aborted")
    emu.next_training_outcome("failed", "CUDA out of memory")
    aborted = start_training(client, upload_zip(client))
    failed = start_training(client, upload_zip(client))
    emu.settle(aborted.id)
    body = raw.get(f"/v1/trainings/{aborted.id}").json()
    assert body["status"] == "aborted" and body["started_at"] is None
    # The 1.0.7 client's status Literal lacks "aborted" (ref 7): parsing fails.
    with pytest.raises(ValueError):
        client.trainings.get(aborted.id)
    emu.settle(failed.id)
    failed.reload()
    assert failed.status == "failed" and failed.error == "CUDA out of memory"
    assert (failed.logs or "").rstrip().endswith("CUDA out of memory")
    late = start_training(client, upload_zip(client))
    assert emu.finish_now(late.id, "aborted")["status"] == "aborted"
    assert emu.finish_now(late.id, "succeeded")["status"] == "aborted"  # terminal stays


# --- webhooks (ref 5, 9.7) ----------------------------------------------------------------


def test_delivered_webhooks_verify_with_the_client_validator(
    emu: ReplicateEmulator, client: replicate.Client
) -> None:
    secret = client.webhooks.default.secret()
    assert secret.key == emu.webhook_secret and secret.key.startswith("whsec_")
    with Receiver() as receiver:
        training = start_training(
            client,
            upload_zip(client),
            webhook=receiver.url,
            webhook_events_filter=["start", "completed"],
        )
        emu.settle(training.id)
        assert emu.wait_for_webhooks(5)
    assert [status for status, _ in receiver.events()] == ["processing", "succeeded"]
    for headers, body in receiver.requests:
        replicate.webhooks.validate(headers=headers, body=body, secret=secret, tolerance=60)
        assert headers["Content-Type"] == "application/json"
    final = json.loads(receiver.requests[-1][1])
    assert final["id"] == training.id and final["output"]["version"].startswith("flurrty/twins:")


def test_only_completed_is_retried_with_a_stable_webhook_id(
    emu: ReplicateEmulator, client: replicate.Client
) -> None:
    with Receiver(statuses=[500, 503, 502]) as receiver:
        training = start_training(
            client,
            upload_zip(client),
            webhook=receiver.url,
            webhook_events_filter=["start", "completed"],
        )
        emu.settle(training.id)
        assert emu.wait_for_webhooks(5)
    events = receiver.events()
    assert [status for status, _ in events] == ["processing", "succeeded", "succeeded", "succeeded"]
    completed_ids = {wid for status, wid in events if status == "succeeded"}
    assert len(completed_ids) == 1 and events[0][1] not in completed_ids
    attempts = [d["attempt"] for d in emu.webhook_deliveries if d["event"] == "completed"]
    assert attempts == [1, 2, 3]


def test_webhook_switches_lose_duplicate_reorder(
    emu: ReplicateEmulator, client: replicate.Client
) -> None:
    events = ["start", "completed"]
    with Receiver() as receiver:
        emu.webhook_faults.add("lose", event="completed")
        lost = start_training(
            client, upload_zip(client), webhook=receiver.url, webhook_events_filter=events
        )
        emu.settle(lost.id)
        assert emu.wait_for_webhooks(5)
        assert [s for s, _ in receiver.events()] == ["processing"]
        assert any(d["lost"] for d in emu.webhook_deliveries)

        receiver.requests.clear()
        emu.webhook_faults.add("duplicate", event="completed")
        twice = start_training(
            client, upload_zip(client), webhook=receiver.url, webhook_events_filter=events
        )
        emu.settle(twice.id)
        assert emu.wait_for_webhooks(5)
        got = receiver.events()
        assert [s for s, _ in got] == ["processing", "succeeded", "succeeded"]
        assert got[1][1] == got[2][1]

        receiver.requests.clear()
        emu.webhook_faults.add("reorder")
        shuffled = start_training(
            client, upload_zip(client), webhook=receiver.url, webhook_events_filter=events
        )
        emu.settle(shuffled.id)
        assert emu.wait_for_webhooks(5)
        assert [s for s, _ in receiver.events()] == ["succeeded", "processing"]

        receiver.requests.clear()
        emu.webhooks_enabled = False
        silent = start_training(
            client, upload_zip(client), webhook=receiver.url, webhook_events_filter=events
        )
        emu.settle(silent.id)
        assert emu.wait_for_webhooks(5)
        assert receiver.requests == []
        dropped = [d for d in emu.webhook_deliveries if d["training_id"] == silent.id]
        assert [d["error"] for d in dropped] == ["webhooks disabled"] * 2


def test_wall_clock_run_sends_default_events_without_any_read() -> None:
    # No filter means "new outputs or finished" (ref 5): output, then completed.
    with (
        ReplicateEmulator(api_token=TOKEN, boot_seconds=0.05, train_seconds=0.2) as emu,
        Receiver() as receiver,
    ):
        emu.add_model("twins")
        client = replicate.Client(api_token=TOKEN, base_url=emu.base_url)
        training = start_training(client, upload_zip(client), webhook=receiver.url)
        deadline = time.monotonic() + 5
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert emu.wait_for_webhooks(5)  # the last attempt is logged after its answer
        assert emu.count("GET", "/v1/trainings/{id}") == 0
        assert [s for s, _ in receiver.events()] == ["succeeded", "succeeded"]
        assert [d["event"] for d in emu.webhook_deliveries] == ["output", "completed"]
        assert client.trainings.get(training.id).status == "succeeded"


# --- faults and counters -------------------------------------------------------------------


def test_429_with_retry_after_and_the_recorded_body(
    emu: ReplicateEmulator, client: replicate.Client, raw: httpx.Client
) -> None:
    emu.faults.add("POST", r"/trainings$", "status", status=429, retry_after=7)
    with pytest.raises(ReplicateError) as err:  # POSTs are never retried (ref 7)
        start_training(client, "https://example.invalid/x.zip")
    assert err.value.status == 429
    assert emu.count("POST", CREATE_ROUTE) == 1
    emu.faults.add(None, r"^/v1/trainings$", "status", status=429, retry_after=7)
    resp = raw.get("/v1/trainings")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert resp.json() == {"detail": "Request was throttled. Your rate limit resets in ~7s."}
    # GETs are retried on 429 after Retry-After seconds: 0 keeps the test fast.
    emu.faults.add("GET", r"^/v1/trainings$", "status", times=2, status=429, retry_after=0)
    emu.reset_calls()
    assert client.trainings.list().results == []
    assert emu.count("GET", "/v1/trainings") == 3


def test_drop_slow_5xx_and_random_faults(emu: ReplicateEmulator, client: replicate.Client) -> None:
    emu.faults.add("GET", r"^/v1/trainings", "drop")
    with pytest.raises(httpx.TransportError):
        client.trainings.list()
    assert client.trainings.list().results == []  # used up after one time

    emu.faults.add("GET", r"^/v1/trainings", "slow", seconds=1.0)
    impatient = replicate.Client(api_token=TOKEN, base_url=emu.base_url, timeout=httpx.Timeout(0.2))
    with pytest.raises(httpx.ReadTimeout):
        impatient.trainings.list()

    emu.faults.add("GET", r"^/v1/trainings", "status", status=503)
    emu.reset_calls()
    client.trainings.list()  # 503 is retried by the client
    assert emu.count("GET", "/v1/trainings") == 2
    emu.faults.add("GET", r"^/v1/trainings", "status", status=500)
    with pytest.raises(ReplicateError) as err:  # 500 is not
        client.trainings.list()
    assert err.value.status == 500

    emu.faults.probability(1.0, ["502"], seed=3)
    with pytest.raises(ReplicateError):
        client.trainings.list()
    emu.faults.clear()
    client.trainings.list()


def test_latency_setting_slows_every_call(emu: ReplicateEmulator, raw: httpx.Client) -> None:
    emu.latency_seconds = 0.1
    started = time.monotonic()
    assert raw.get("/v1/hardware").status_code == 200
    assert time.monotonic() - started >= 0.1


def test_control_api_over_http(emu: ReplicateEmulator, client: replicate.Client) -> None:
    control = f"{emu.base_url}/_emulator"
    assert httpx.get(f"{control}/health").json()["ok"] is True
    fault = {"method": "GET", "path_regex": "^/v1/trainings$", "kind": "status", "status": 500}
    assert httpx.post(f"{control}/faults", json=fault).status_code == 201
    with pytest.raises(ReplicateError):
        client.trainings.list()
    assert httpx.post(f"{control}/models", json={"name": "other"}).status_code == 201
    assert httpx.post(f"{control}/next-training-outcome", json={"outcome": "failed"}).is_success
    training = start_training(client, upload_zip(client))
    ended = httpx.post(f"{control}/trainings/{training.id}/settle").json()
    assert ended["status"] == "failed"
    calls = httpx.get(f"{control}/calls").json()["calls"]
    assert {"method": "POST", "route": CREATE_ROUTE, "count": 1} in calls
    assert httpx.delete(f"{control}/faults").is_success
    assert httpx.post(f"{control}/faults", json={"kind": "nope"}).status_code == 400


def test_stop_closes_the_port() -> None:
    emulator = ReplicateEmulator(api_token=TOKEN).start()
    with httpx.Client(base_url=emulator.base_url) as http:  # a kept-alive connection
        assert http.get("/_emulator/health").status_code == 200
        emulator.stop()
        with pytest.raises(httpx.TransportError):
            http.get("/_emulator/health")
