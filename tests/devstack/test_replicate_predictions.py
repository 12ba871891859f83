"""Predictions on trained versions, driven by the real `replicate` client (raw httpx where the
1.0.7 client has no call, e.g. `Cancel-After`).

Sources: the SPEC (`predictions.create/get/list/cancel`, `models.versions.delete`,
`parameters_prefer_header`, `parameters_cancel_after_header`) and the team reference (next
capabilities 4.1: the HotswapPredictor inputs and the safety checker's messages).
"""

from __future__ import annotations

import io
import json
import re
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ReplicateError

from devstack.replicate_emulator import TRAINER_MODEL, TRAINER_VERSION, ReplicateEmulator
from tests.devstack.replicate_fixtures import (
    TOKEN,
    FakeClock,
    Receiver,
    client,
    clock,
    emu,
    raw,
    trained_version,
)

__all__ = ["client", "clock", "emu", "raw"]  # fixtures

NSFW = "All generated images contained NSFW content. Try running it again with a different prompt."
PREDICT = "/v1/predictions"


@pytest.fixture
def twin(emu: ReplicateEmulator, client: replicate.Client) -> str:
    """A trained version; predictions then spend 2 s starting and 8 s processing."""
    emu.predict_boot_seconds, emu.predict_seconds = 2, 8
    return trained_version(emu, client)


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def finished(clock: FakeClock, prediction: Any) -> Any:
    clock.advance(10)
    prediction.reload()
    return prediction


# --- the lifecycle -------------------------------------------------------------------------


def test_a_prediction_runs_on_the_clock_and_returns_real_images(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock, twin: str
) -> None:
    model, version_id = twin.split(":")
    prediction = client.predictions.create(
        version=twin,
        input={"prompt": "TOK as a fox", "num_outputs": 2, "aspect_ratio": "16:9", "seed": 7},
    )
    assert prediction.status == "starting" and prediction.output is None
    assert (prediction.model, prediction.version) == (model, version_id)
    assert prediction.urls == {
        "get": f"{emu.base_url}/v1/predictions/{prediction.id}",
        "cancel": f"{emu.base_url}/v1/predictions/{prediction.id}/cancel",
        "web": f"{emu.base_url}/p/{prediction.id}",
    }
    clock.advance(3)
    prediction.reload()
    assert prediction.status == "processing" and prediction.started_at
    lines = (prediction.logs or "").splitlines()
    assert lines[:3] == ["Using seed: 7", "Prompt: TOK as a fox", "[!] txt2img mode"]
    assert re.fullmatch(r" +\d+%\|.{10}\| \d+/28 \[.*it/s\]", lines[-1])
    clock.advance(7)
    prediction.reload()
    assert prediction.status == "succeeded"
    assert prediction.metrics == {"predict_time": 8.0, "total_time": 10.0}
    assert when(prediction.started_at) - when(prediction.created_at) == pytest.approx(2)
    assert when(prediction.completed_at) - when(prediction.started_at) == pytest.approx(8)
    assert (prediction.logs or "").splitlines()[-1] == "Total safe images: 2 out of 2"
    assert [url.rsplit("/", 1)[1] for url in prediction.output] == ["out-0.webp", "out-1.webp"]
    for url in prediction.output:
        assert url.startswith(f"{emu.base_url}/delivery/")
        image = httpx.get(url)
        assert image.headers["content-type"] == "image/webp"
        assert Image.open(io.BytesIO(image.content)).size == (1344, 768)
    # The bare 64-hex id names the same version (SPEC `version` formats).
    again = client.predictions.create(version=version_id, input={"prompt": "x"})
    assert again.model == model


@pytest.mark.parametrize(
    ("extra", "size", "fmt", "content_type"),
    [
        ({"megapixels": "0.25", "output_format": "png"}, (512, 512), "PNG", "image/png"),
        ({"aspect_ratio": "9:21", "output_format": "jpg"}, (640, 1536), "JPEG", "image/jpeg"),
        (
            {"aspect_ratio": "custom", "width": 300, "height": 260, "output_format": "webp"},
            (304, 272),  # cog-flux rounds a custom size up to a multiple of 16
            "WEBP",
            "image/webp",
        ),
    ],
)
def test_outputs_follow_size_and_format(
    client: replicate.Client,
    clock: FakeClock,
    twin: str,
    extra: dict[str, Any],
    size: tuple[int, int],
    fmt: str,
    content_type: str,
) -> None:
    prediction = finished(clock, client.predictions.create(twin, {"prompt": "a", **extra}))
    resp = httpx.get(prediction.output[0])
    assert resp.headers["content-type"] == content_type
    image = Image.open(io.BytesIO(resp.content))
    assert (image.format, image.size) == (fmt, size)


def test_pixels_follow_prompt_and_seed_and_repeat_exactly(
    client: replicate.Client, clock: FakeClock, twin: str
) -> None:
    def pixels(prompt: str, seed: int) -> bytes:
        body = {"prompt": prompt, "seed": seed, "megapixels": "0.25", "output_format": "png"}
        prediction = finished(clock, client.predictions.create(twin, body))
        png = httpx.get(prediction.output[0]).content
        return Image.open(io.BytesIO(png)).convert("RGB").tobytes()

    first = pixels("TOK as a fox", 1)
    assert pixels("TOK as a fox", 1) == first
    assert pixels("TOK as a fox", 2) != first
    assert pixels("TOK as an otter", 1) != first


def test_no_seed_means_a_16_bit_seed_printed_first(
    client: replicate.Client, clock: FakeClock, twin: str
) -> None:
    prediction = finished(clock, client.predictions.create(twin, {"prompt": "a", "seed": -1}))
    match = re.match(r"Using seed: (\d+)\n", prediction.logs or "")
    assert match and 0 <= int(match.group(1)) < 65536


# --- Prefer: wait and Cancel-After (SPEC headers) ------------------------------------------


def test_prefer_wait_returns_the_final_prediction_with_201() -> None:
    with ReplicateEmulator(
        api_token=TOKEN, boot_seconds=0, train_seconds=0, predict_boot_seconds=0.05
    ) as emu:
        emu.predict_seconds = 0.3
        emu.add_model("twins")
        client = replicate.Client(api_token=TOKEN, base_url=emu.base_url)
        twin = trained_version(emu, client)
        prediction = client.predictions.create(twin, {"prompt": "a"}, wait=10)
        assert prediction.status == "succeeded" and len(prediction.output or []) == 1
        body = {"version": twin, "input": {"prompt": "b"}}
        headers = {"Authorization": f"Bearer {TOKEN}", "Prefer": "wait=10"}
        resp = httpx.post(f"{emu.base_url}{PREDICT}", json=body, headers=headers, timeout=15)
        assert resp.status_code == 201 and resp.json()["status"] == "succeeded"
        # The client's own `run` takes a blocking answer as final (SPEC sync mode).
        output = client.run(twin, input={"prompt": "c"})
        assert isinstance(output, list) and len(output) == 1


def test_prefer_wait_that_runs_out_answers_202_in_a_starting_state(
    emu: ReplicateEmulator, raw: httpx.Client, twin: str
) -> None:
    emu.next_prediction_hangs()
    body = {"version": twin, "input": {"prompt": "a"}}
    resp = raw.post(PREDICT, json=body, headers={"Prefer": "wait=1"})
    assert resp.status_code == 202
    assert resp.json()["status"] == "starting" and resp.json()["output"] is None
    assert raw.post(PREDICT, json=body).status_code == 201  # no Prefer: created at once
    for bad in ("wait=0", "wait=61", "hurry"):
        refused = raw.post(PREDICT, json=body, headers={"Prefer": bad})
        assert refused.status_code == 422 and "Prefer" in refused.json()["detail"]


def test_cancel_after_cancels_a_running_prediction_at_its_deadline(
    emu: ReplicateEmulator, raw: httpx.Client, clock: FakeClock, twin: str
) -> None:
    emu.next_prediction_hangs()
    body = {"version": twin, "input": {"prompt": "a"}}
    created = raw.post(PREDICT, json=body, headers={"Cancel-After": "1m30s"}).json()
    assert when(created["deadline"]) - when(created["created_at"]) == pytest.approx(90)
    clock.advance(89)
    assert raw.get(f"{PREDICT}/{created['id']}").json()["status"] == "processing"
    clock.advance(2)
    ended = raw.get(f"{PREDICT}/{created['id']}").json()
    assert ended["status"] == "canceled" and ended["completed_at"] == ended["deadline"]
    assert ended["metrics"]["predict_time"] == pytest.approx(88)  # started 2 s after create


def test_cancel_after_aborts_a_prediction_that_never_started(
    emu: ReplicateEmulator, raw: httpx.Client, clock: FakeClock, twin: str
) -> None:
    emu.predict_boot_seconds = 60  # a cold boot longer than the deadline
    body = {"version": twin, "input": {"prompt": "a"}}
    created = raw.post(PREDICT, json=body, headers={"Cancel-After": "30"}).json()
    clock.advance(31)
    ended = raw.get(f"{PREDICT}/{created['id']}").json()
    assert ended["status"] == "aborted" and ended["started_at"] is None
    for bad in ("4s", "5 minutes", "", "1x"):
        refused = raw.post(PREDICT, json=body, headers={"Cancel-After": bad})
        assert refused.status_code == 422 and "Cancel-After" in refused.json()["detail"]


# --- failures --------------------------------------------------------------------------------


def test_nsfw_switch_fails_the_prediction_with_the_predictor_text(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock, twin: str
) -> None:
    emu.next_prediction_nsfw()
    failed = finished(clock, client.predictions.create(twin, {"prompt": "a", "num_outputs": 2}))
    assert failed.status == "failed" and failed.error == NSFW
    assert failed.output is None
    lines = (failed.logs or "").splitlines()
    assert lines[-3:] == [
        "NSFW content detected in image 0",
        "NSFW content detected in image 1",
        NSFW,
    ]
    # Only the first output flagged: it is dropped and the numbering keeps the gap.
    emu.next_prediction_nsfw(flagged=1)
    some = finished(clock, client.predictions.create(twin, {"prompt": "a", "num_outputs": 3}))
    assert some.status == "succeeded"
    assert [u.rsplit("/", 1)[1] for u in some.output] == ["out-1.webp", "out-2.webp"]
    assert "Total safe images: 2 out of 3" in (some.logs or "")
    # With the checker off nothing is flagged; the switch was still used up.
    emu.next_prediction_nsfw()
    off = {"prompt": "a", "disable_safety_checker": True}
    assert finished(clock, client.predictions.create(twin, off)).status == "succeeded"
    assert finished(clock, client.predictions.create(twin, {"prompt": "a"})).status == "succeeded"


def test_bad_inputs_fail_the_prediction_like_cog(
    client: replicate.Client, clock: FakeClock, twin: str
) -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "num_outputs": ({"prompt": "a", "num_outputs": 5}, "value_error.number.not_le"),
        "aspect_ratio": ({"prompt": "a", "aspect_ratio": "7:3"}, "type_error.enum"),
        "output_format": ({"prompt": "a", "output_format": "gif"}, "type_error.enum"),
        "lora_scale": ({"prompt": "a", "lora_scale": "strong"}, "type_error.float"),
        "prompt": ({"num_outputs": 1}, "value_error.missing"),
    }
    created = {name: client.predictions.create(twin, body) for name, (body, _) in cases.items()}
    clock.advance(1)
    for name, prediction in created.items():
        assert prediction.status == "starting"  # the create itself succeeded
        prediction.reload()
        assert prediction.status == "failed" and prediction.started_at is None
        prefix = "Prediction input failed validation: "
        assert prediction.error and prediction.error.startswith(prefix)
        detail = json.loads(prediction.error[len(prefix) :])["detail"][0]
        assert detail["loc"] == ["body", "input", name]
        assert detail["type"] == cases[name][1]
    enum = json.loads(str(created["aspect_ratio"].error).split(": ", 1)[1])["detail"][0]
    assert "16:9" in enum["ctx"]["enum_values"] and "custom" in enum["ctx"]["enum_values"]
    # A custom size without width/height passes validation and fails inside predict().
    no_size = client.predictions.create(twin, {"prompt": "a", "aspect_ratio": "custom"})
    no_size = finished(clock, no_size)
    assert no_size.status == "failed" and "NoneType" in (no_size.error or "")


def test_bad_bodies_and_versions_are_422_at_create(
    emu: ReplicateEmulator, client: replicate.Client, raw: httpx.Client, twin: str
) -> None:
    missing = raw.post(PREDICT, json={"version": twin})
    assert missing.status_code == 422
    assert missing.json()["invalid_fields"] == [
        {"type": "required", "field": "", "description": "input is required"}
    ]
    extra = raw.post(PREDICT, json={"version": twin, "input": {}, "inptu": {}})
    assert extra.json()["invalid_fields"][0]["type"] == "additional_property_not_allowed"
    model, version_id = twin.split(":")
    for version in (
        "0" * 64,
        f"flurrty/other:{version_id}",
        model,
        f"{TRAINER_MODEL}:{TRAINER_VERSION}",
    ):
        with pytest.raises(ReplicateError) as err:
            client.predictions.create(version, {"prompt": "a"})
        assert err.value.status == 422, version
    assert err.value.title == "Unprocessable Entity"  # a trainer version: not runnable here
    with pytest.raises(ReplicateError) as err:
        client.predictions.create("0" * 64, {"prompt": "a"})
    assert err.value.title == "Invalid version or not permitted"
    assert emu.stats()["predictions_created"] == {}


# --- cancel, list, retention, version delete -------------------------------------------------


def test_cancel_running_and_terminal(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock, twin: str
) -> None:
    prediction = client.predictions.create(twin, {"prompt": "a"})
    clock.advance(5)
    canceled = client.predictions.cancel(prediction.id)
    assert canceled.status == "canceled" and canceled.output is None
    assert canceled.metrics and canceled.metrics["predict_time"] == pytest.approx(3)
    clock.advance(100)
    again = client.predictions.cancel(prediction.id)
    assert again.status == "canceled" and again.completed_at == canceled.completed_at
    done = finished(clock, client.predictions.create(twin, {"prompt": "a"}))
    assert client.predictions.cancel(done.id).status == "succeeded"  # terminal stays
    with pytest.raises(ReplicateError) as err:
        client.predictions.get("nope")
    assert err.value.status == 404


def test_list_is_newest_first_with_cursor_pages(client: replicate.Client, twin: str) -> None:
    ids = [client.predictions.create(twin, {"prompt": str(i)}).id for i in range(103)]
    first = client.predictions.list()
    assert [p.id for p in first.results] == ids[::-1][:100]
    assert first.next and "/v1/predictions?cursor=" in first.next
    second = client.predictions.list(first.next)
    assert [p.id for p in second.results] == ids[2::-1]
    assert sum(len(page.results) for page in replicate.paginate(client.predictions.list)) == 103


def test_list_entries_carry_the_version_id_and_the_input_as_the_spec_shows(
    client: replicate.Client, twin: str
) -> None:
    # What a caller that lost a create's answer relies on to recognise its prediction (the
    # backend's previews look it up by version, seed and prompt): SPEC predictions.list example.
    created = client.predictions.create(twin, {"prompt": "TOK as a fox", "seed": 4242})
    (entry,) = [p for p in client.predictions.list().results if p.id == created.id]
    assert entry.version == twin.split(":", 1)[1]
    assert entry.input == {"prompt": "TOK as a fox", "seed": 4242}
    assert entry.urls and entry.urls["get"].endswith(f"/v1/predictions/{created.id}")


def test_output_input_and_logs_go_after_the_retention(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock, twin: str
) -> None:
    prediction = finished(clock, client.predictions.create(twin, {"prompt": "a"}))
    url = prediction.output[0]
    clock.advance(3599)
    assert httpx.get(url).status_code == 200
    clock.advance(1)
    prediction.reload()
    assert prediction.output is None and prediction.input == {} and prediction.logs == ""
    assert prediction.dict()["status"] == "succeeded"
    assert httpx.get(url).status_code == 404
    emu.output_retention_seconds = 30  # new predictions take the new retention
    short = finished(clock, client.predictions.create(twin, {"prompt": "a"}))
    clock.advance(30)
    assert httpx.get(short.output[0]).status_code == 404


def test_version_delete_removes_its_predictions_and_files(
    emu: ReplicateEmulator, client: replicate.Client, raw: httpx.Client, clock: FakeClock, twin: str
) -> None:
    other = trained_version(emu, client)
    doomed = finished(clock, client.predictions.create(twin, {"prompt": "a"}))
    kept = finished(clock, client.predictions.create(other, {"prompt": "a"}))
    model, version_id = twin.split(":")
    assert raw.delete(f"/v1/models/{model}/versions/{version_id}").status_code == 202
    assert raw.get(f"{PREDICT}/{doomed.id}").status_code == 404
    assert httpx.get(doomed.output[0]).status_code == 404
    assert [p.id for p in client.predictions.list().results] == [kept.id]
    assert httpx.get(kept.output[0]).status_code == 200
    with pytest.raises(ReplicateError) as err:  # a deleted version takes no predictions
        client.predictions.create(twin, {"prompt": "a"})
    assert err.value.status == 422


def test_trained_version_has_the_hotswap_input_schema(client: replicate.Client, twin: str) -> None:
    model, version_id = twin.split(":")
    version = client.models.get(model).versions.get(version_id)
    schemas = version.openapi_schema["components"]["schemas"]
    inputs = schemas["Input"]
    assert inputs["required"] == ["prompt"]
    assert {"prompt", "num_outputs", "aspect_ratio", "megapixels", "output_format"} <= set(
        inputs["properties"]
    )
    assert {"output_quality", "lora_scale", "seed", "go_fast", "guidance_scale"} <= set(
        inputs["properties"]
    )
    assert {"num_inference_steps", "disable_safety_checker", "extra_lora"} <= set(
        inputs["properties"]
    )
    num_outputs = inputs["properties"]["num_outputs"]
    assert (num_outputs["minimum"], num_outputs["maximum"], num_outputs["default"]) == (1, 4, 1)
    assert inputs["properties"]["go_fast"]["default"] is False
    ratio = inputs["properties"]["aspect_ratio"]
    assert ratio["allOf"] == [{"$ref": "#/components/schemas/aspect_ratio"}]
    assert (
        schemas["aspect_ratio"]["enum"][0] == "1:1" and "custom" in schemas["aspect_ratio"]["enum"]
    )
    assert schemas["megapixels"]["enum"] == ["1", "0.25"]
    assert schemas["Output"]["items"] == {"type": "string", "format": "uri"}


# --- webhooks, faults, counters --------------------------------------------------------------


def test_prediction_webhooks_are_signed_filtered_and_only_completed_retried() -> None:
    with (
        ReplicateEmulator(api_token=TOKEN, boot_seconds=0, train_seconds=0) as emu,
        Receiver(statuses=[500] * 100) as receiver,  # every delivery fails
    ):
        emu.predict_boot_seconds, emu.predict_seconds = 0.05, 1.2
        emu.add_model("twins")
        client = replicate.Client(api_token=TOKEN, base_url=emu.base_url)
        twin = trained_version(emu, client)
        secret = client.webhooks.default.secret()
        events = ["start", "logs", "completed"]
        prediction = client.predictions.create(
            twin, {"prompt": "a"}, webhook=receiver.url, webhook_events_filter=events
        )
        deadline = time.monotonic() + 10
        while (
            emu.prediction(prediction.id)["status"] != "succeeded" and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert emu.wait_for_webhooks(5)
    deliveries = [d for d in emu.webhook_deliveries if d["prediction_id"] == prediction.id]
    kinds = [d["event"] for d in deliveries]
    assert kinds[0] == "start" and "logs" in kinds and "output" not in kinds
    # Intermediate events go once each; the final one is retried (1 + 3 attempts), one id.
    assert all(d["attempt"] == 1 for d in deliveries if d["event"] != "completed")
    completed = [d for d in deliveries if d["event"] == "completed"]
    assert [d["attempt"] for d in completed] == [1, 2, 3, 4]
    assert len({d["webhook_id"] for d in completed}) == 1
    assert {d["training_id"] for d in deliveries} == {None}
    for headers, body in receiver.requests:
        replicate.webhooks.validate(headers=headers, body=body, secret=secret, tolerance=60)
    bodies = [json.loads(body) for _, body in receiver.requests]
    assert bodies[0]["status"] == "processing" and bodies[0]["id"] == prediction.id
    assert bodies[-1]["status"] == "succeeded" and len(bodies[-1]["output"]) == 1
    logs_lengths = [len(b["logs"]) for b, kind in zip(bodies, kinds, strict=True) if kind == "logs"]
    assert logs_lengths == sorted(logs_lengths)


def test_webhook_faults_and_the_default_filter_apply_to_predictions(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock, twin: str
) -> None:
    with Receiver() as receiver:
        emu.webhook_faults.add("duplicate", event="completed")
        prediction = client.predictions.create(twin, {"prompt": "a"}, webhook=receiver.url)
        finished(clock, prediction)
        assert emu.wait_for_webhooks(5)
    # No filter: "new outputs or finished" (SPEC) -> output, then completed (sent twice).
    assert [d["event"] for d in emu.webhook_deliveries] == ["output", "completed", "completed"]
    assert len({d["webhook_id"] for d in emu.webhook_deliveries}) == 2


def test_faults_counters_and_rate_limit_bucket_cover_predictions(
    emu: ReplicateEmulator, client: replicate.Client, raw: httpx.Client, twin: str
) -> None:
    emu.faults.add("POST", r"^/v1/predictions$", "status", status=503)
    with pytest.raises(ReplicateError) as err:  # POSTs are never retried by the client
        client.predictions.create(twin, {"prompt": "a"})
    assert err.value.status == 503
    created = raw.post(PREDICT, json={"version": twin, "input": {"prompt": "a"}})
    assert int(created.headers["ratelimit-remaining"]) < 600  # its own 600/min bucket
    assert int(raw.get(PREDICT).headers["ratelimit-remaining"]) > 600
    emu.faults.add("GET", r"^/v1/predictions/", "status", times=2, status=429, retry_after=0)
    assert client.predictions.get(created.json()["id"]).status == "starting"  # retried
    emu.faults.add("GET", r"^/delivery/", "drop")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{emu.base_url}/delivery/xezq/{created.json()['id']}/out-0.webp")
    assert emu.count("POST", PREDICT) == 2
    assert emu.count("GET", "/v1/predictions/{id}") == 3
    assert emu.stats()["predictions_created"] == {twin.split(":")[1]: 1}


def test_prediction_controls_over_http(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock, twin: str
) -> None:
    control = f"{emu.base_url}/_emulator"
    config = httpx.post(
        f"{control}/config",
        json={"predict_seconds": 4, "predict_boot_seconds": 1, "output_retention_seconds": 60},
    ).json()
    assert (config["predict_seconds"], config["output_retention_seconds"]) == (4, 60)
    assert httpx.post(f"{control}/next-prediction-nsfw", json={"flagged": 1}).is_success
    flagged = client.predictions.create(twin, {"prompt": "a", "num_outputs": 2})
    assert httpx.post(f"{control}/next-prediction-hang", json={}).is_success
    hanging = client.predictions.create(twin, {"prompt": "a"})
    clock.advance(5)
    flagged.reload()
    hanging.reload()
    assert flagged.status == "succeeded" and len(flagged.output or []) == 1
    assert flagged.metrics and flagged.metrics["predict_time"] == 4
    clock.advance(3600)
    hanging.reload()
    assert hanging.status == "processing"
    assert hanging.logs and hanging.logs.splitlines()[-1].startswith("  0%|")  # stalled
    assert client.predictions.cancel(hanging.id).status == "canceled"
    stats = httpx.get(f"{control}/stats").json()
    assert stats["predictions"] == 2 and stats["predictions_created"] == {twin.split(":")[1]: 2}
    refused = httpx.post(f"{control}/next-prediction-nsfw", json={"flagged": 0})
    assert refused.status_code == 400
