"""The webhook route believes only Replicate: Standard Webhooks signatures over the raw body, a
5-minute window, each delivery applied once, and only for the training stored on the named job."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from devstack.stack import LocalStack
from tests.security.attacks import (
    all_jobs,
    deliver,
    error_of,
    insert_job,
    job_row,
    trainer_log,
    training_body,
    webhook_headers,
)
from tests.stack_fixtures import User


@dataclass
class Training:
    owner: str
    job: str
    training_id: str


@pytest.fixture
def training(db: psycopg.Connection, user: User) -> Training:
    """A job in training, as the start leaves it; nothing else moves it (no emulator training)."""
    training_id = f"tr_{uuid.uuid4().hex[:20]}"
    return Training(user.id, insert_job(db, user.id, training_id=training_id), training_id)


def _progress_body(training: Training, done: int) -> bytes:
    return training_body(training.training_id, "processing", logs=trainer_log(done))


def test_a_genuine_webhook_moves_the_job(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, training: Training
):
    # The control for every refusal below.
    body = _progress_body(training, 400)
    response = deliver(http, stack, training.job, body, webhook_headers(stack.webhook_secret, body))
    assert response.status_code == 200 and response.json()["progress"] == 56
    assert job_row(db, training.job)["progress"] == 56


def test_a_forged_signature_is_401(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, training: Training
):
    forger_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    body = training_body(training.training_id, "succeeded", output={"version": "evil:1"})
    before = all_jobs(db, [training.owner])
    response = deliver(http, stack, training.job, body, webhook_headers(forger_secret, body))
    assert error_of(response) == (401, "bad_signature")
    assert all_jobs(db, [training.owner]) == before


def test_a_tampered_body_under_a_genuine_signature_is_401(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, training: Training
):
    genuine = _progress_body(training, 100)
    headers = webhook_headers(stack.webhook_secret, genuine)
    tampered = training_body(training.training_id, "succeeded", output={"version": "evil:1"})
    before = all_jobs(db, [training.owner])
    response = deliver(http, stack, training.job, tampered, headers)
    assert error_of(response) == (401, "bad_signature")
    assert all_jobs(db, [training.owner]) == before


def test_an_unsigned_webhook_is_400(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, training: Training
):
    body = _progress_body(training, 900)
    before = all_jobs(db, [training.owner])
    response = deliver(http, stack, training.job, body, {"content-type": "application/json"})
    assert error_of(response) == (400, "bad_webhook")
    assert all_jobs(db, [training.owner]) == before


@pytest.mark.parametrize(
    "skew", [-301, -3600, 301, 86400], ids=["5m1s-old", "1h-old", "future", "1d-future"]
)
def test_a_replayed_or_post_dated_webhook_is_401(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, training: Training, skew: int
):
    # A delivery captured earlier (or minted for later) is refused even with its valid signature.
    body = _progress_body(training, 700)
    headers = webhook_headers(stack.webhook_secret, body, timestamp=int(time.time()) + skew)
    before = all_jobs(db, [training.owner])
    response = deliver(http, stack, training.job, body, headers)
    assert error_of(response) == (401, "stale_webhook")
    assert all_jobs(db, [training.owner]) == before


def test_a_redelivered_webhook_is_applied_once(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, training: Training
):
    body = _progress_body(training, 400)
    headers = webhook_headers(stack.webhook_secret, body)
    assert deliver(http, stack, training.job, body, headers).status_code == 200
    applied = job_row(db, training.job)
    assert applied["last_webhook_id"] == headers["webhook-id"]
    # The same webhook-id again (Replicate retries on timeouts), freshly timestamped and signed.
    again = webhook_headers(stack.webhook_secret, body, webhook_id=headers["webhook-id"])
    for _ in range(2):
        response = deliver(http, stack, training.job, body, again)
        assert response.status_code == 200 and response.json()["progress"] == 56
    assert job_row(db, training.job) == applied  # not even updated_at moved


def test_a_late_redelivery_cannot_touch_a_finished_job(
    stack: LocalStack, http: httpx.Client, db: psycopg.Connection, training: Training
):
    start = training_body(training.training_id, "starting")
    start_headers = webhook_headers(stack.webhook_secret, start)
    assert deliver(http, stack, training.job, start, start_headers).status_code == 200
    done = training_body(
        training.training_id, "succeeded", output={"version": "flurrty/twins:abc"}, logs=""
    )
    response = deliver(http, stack, training.job, done, webhook_headers(stack.webhook_secret, done))
    assert response.json()["status"] == "completed"
    finished = job_row(db, training.job)
    # The `start` event redelivered after `completed` (its first delivery timed out).
    late = webhook_headers(stack.webhook_secret, start, webhook_id=start_headers["webhook-id"])
    response = deliver(http, stack, training.job, start, late)
    assert response.status_code == 200 and response.json()["status"] == "completed"
    assert job_row(db, training.job) == finished


def test_a_genuine_webhook_for_another_jobs_training_is_refused(
    stack: LocalStack,
    http: httpx.Client,
    db: psycopg.Connection,
    training: Training,
    make_user,
):
    other_owner, other_id = make_user().id, f"tr_{uuid.uuid4().hex[:20]}"
    other = Training(other_owner, insert_job(db, other_owner, training_id=other_id), other_id)
    # Validly signed (a real delivery for the other job), replayed at this job's URL.
    body = training_body(other.training_id, "failed", error="boom")
    before = all_jobs(db, [training.owner, other.owner])
    response = deliver(http, stack, training.job, body, webhook_headers(stack.webhook_secret, body))
    assert error_of(response) == (409, "training_mismatch")
    assert all_jobs(db, [training.owner, other.owner]) == before


def test_a_webhook_signature_is_checked_before_the_job_is_looked_up(
    stack: LocalStack, http: httpx.Client, training: Training
):
    # Unsigned callers learn nothing about which job ids exist: the same 401 for both.
    body = _progress_body(training, 10)
    forged = webhook_headers("whsec_" + base64.b64encode(b"x" * 24).decode(), body)
    known = deliver(http, stack, training.job, body, forged)
    unknown = deliver(http, stack, str(uuid.uuid4()), body, forged)
    assert error_of(known) == error_of(unknown) == (401, "bad_signature")
    assert known.json() == unknown.json()


def test_one_valid_signature_among_several_is_enough(
    stack: LocalStack, http: httpx.Client, training: Training
):
    # Standard Webhooks sends one signature per active secret (key rotation), space-separated.
    body = _progress_body(training, 200)
    headers = webhook_headers(stack.webhook_secret, body)
    bogus = "v1," + base64.b64encode(secrets.token_bytes(32)).decode()
    headers["webhook-signature"] = f"{bogus} {headers['webhook-signature']} v2,abc"
    response = deliver(http, stack, training.job, body, headers)
    assert response.status_code == 200 and response.json()["progress"] == 43
