"""The preview webhook believes only Replicate: a Standard Webhooks signature over the raw body,
a preview that exists, and only the prediction recorded on it (or one matching its version, seed
and prompt). A forged or foreign delivery changes no picture and stores nothing."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid

import httpx
import psycopg
import pytest

from devstack.stack import LocalStack
from shared.domain.previews import preview_id, seed_of
from tests.security.attacks import STATUS, all_previews, error_of, insert_job, webhook_headers
from tests.stack_fixtures import User

VERSION = "flurrty/flurrty-twins:" + "b" * 64


@pytest.fixture
def picture(db: psycopg.Connection, user: User) -> tuple[str, str]:
    """A pending preview of a job, its prediction recorded; nothing else moves it."""
    job = insert_job(db, user.id, training_id=f"tr_{uuid.uuid4().hex[:20]}")
    set_id = uuid.uuid4()
    pid = preview_id(set_id, 0)
    db.execute(
        "insert into public.twin_previews (id, job_id, user_id, set_id, kind, slot, prompt, seed,"
        " lora_scale, model_version, prediction_id) values (%s, %s, %s, %s, 'completion', 0,"
        " 'portrait of TOK', %s, 1, %s, 'pred_genuine')",
        [pid, job, user.id, set_id, seed_of(pid), VERSION],
    )
    return str(pid), user.id


def body(prediction_id: str, url: str = "https://replicate.delivery/x/out-0.webp") -> bytes:
    return json.dumps(
        {
            "id": prediction_id,
            "status": "succeeded",
            "version": "b" * 64,
            "input": {"prompt": "portrait of TOK"},
            "output": [url],
        }
    ).encode()


def deliver(
    http: httpx.Client, stack: LocalStack, params: dict[str, str], content: bytes, headers: dict
) -> httpx.Response:
    return http.post(
        stack.url(STATUS) + "webhooks/replicate/previews",
        params=params,
        headers=headers,
        content=content,
    )


def test_a_forged_signature_is_401_and_stores_nothing(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, picture: tuple[str, str]
):
    pid, owner = picture
    forger = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    content = body("pred_genuine", "http://127.0.0.1:9/evil.webp")
    before = all_previews(db, [owner])
    response = deliver(http, stack, {"previewId": pid}, content, webhook_headers(forger, content))
    assert error_of(response) == (401, "bad_signature")
    assert all_previews(db, [owner]) == before


def test_another_prediction_is_409_and_an_unknown_preview_404(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, picture: tuple[str, str]
):
    pid, owner = picture
    content = body("pred_someone_elses")
    headers = webhook_headers(stack.webhook_secret, content)
    before = all_previews(db, [owner])
    assert error_of(deliver(http, stack, {"previewId": pid}, content, headers)) == (
        409,
        "prediction_mismatch",
    )
    missing = deliver(http, stack, {"previewId": str(uuid.uuid4())}, content, headers)
    assert error_of(missing) == (404, "preview_not_found")
    assert all_previews(db, [owner]) == before


def test_a_replayed_delivery_is_401(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, picture: tuple[str, str]
):
    pid, owner = picture
    content = body("pred_genuine")
    old = webhook_headers(stack.webhook_secret, content, timestamp=int(time.time()) - 3600)
    before = all_previews(db, [owner])
    assert error_of(deliver(http, stack, {"previewId": pid}, content, old)) == (
        401,
        "stale_webhook",
    )
    assert all_previews(db, [owner]) == before


def test_a_missing_or_malformed_preview_id_is_refused(stack: LocalStack, http: httpx.Client):
    content = body("pred_genuine")
    headers = webhook_headers(stack.webhook_secret, content)
    assert error_of(deliver(http, stack, {}, content, headers)) == (400, "missing_field")
    bad = deliver(http, stack, {"previewId": "../../etc"}, content, headers)
    assert error_of(bad) == (422, "invalid_field")
    garbage = b"not json"
    refused = deliver(
        http,
        stack,
        {"previewId": str(uuid.uuid4())},
        garbage,
        webhook_headers(stack.webhook_secret, garbage),
    )
    assert error_of(refused) == (400, "bad_webhook")


def test_a_signed_deeply_nested_body_is_400_and_stores_nothing(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, picture: tuple[str, str]
):
    """Signed by Replicate's secret, yet bounded all the same, like the training webhook."""
    pid, owner = picture
    content = ('{"id": "pred_x", "input": ' + "[" * 5000 + "]" * 5000 + "}").encode()
    before = all_previews(db, [owner])
    response = deliver(
        http, stack, {"previewId": pid}, content, webhook_headers(stack.webhook_secret, content)
    )
    assert error_of(response) == (400, "bad_webhook")
    assert all_previews(db, [owner]) == before
