"""Secrets never reach a log line or an error body: everything the process writes during a full
successful flow and during failing ones (bad tokens, upstream faults, misconfiguration) is
captured and searched for the service role key, the Replicate token, the JWT secret, the webhook
secret and every bearer token used."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from storage3 import SyncStorageClient

from devstack.replicate_emulator import ReplicateEmulator
from devstack.stack import LocalStack
from devstack.tokens import anon_key, mint_token, service_role_key, user_access_token
from shared.plumbing.observability import logger as app_logger
from tests.security.attacks import (
    ROUTES,
    START,
    STATUS,
    UPLOAD,
    SigningKey,
    bearer,
    call_all,
    deliver,
    hmac_token,
    insert_job,
    training_body,
    unsigned_token,
    user_claims,
    webhook_headers,
)
from tests.stack_fixtures import User, photo_files, wait_for


@dataclass
class Capture:
    """All output of this process while a test runs, every response it got, and the secrets to
    look for (the project's, plus each bearer token or wrong key the test uses)."""

    fds: pytest.CaptureFixture[str]
    logs: io.StringIO = field(default_factory=io.StringIO)
    bodies: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    # Credentials handed to their owner in a response (signed upload tokens): never in a log.
    log_only: dict[str, str] = field(default_factory=dict)
    libraries: logging.StreamHandler[Any] = field(default_factory=logging.StreamHandler)

    @contextmanager
    def browser_side(self) -> Iterator[None]:
        """Requests the test makes as the browser would, straight to Storage: the test's own
        HTTP client logs their URLs (with the signed token), which is not the backend's log."""
        self.libraries.setLevel(logging.CRITICAL + 1)
        try:
            yield
        finally:
            self.libraries.setLevel(logging.NOTSET)

    def keep(self, response: httpx.Response) -> httpx.Response:
        self.bodies.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def secret(self, name: str, value: str) -> str:
        self.secrets[name] = value
        return value

    def json_lines(self) -> list[dict[str, Any]]:
        """The Powertools lines: the JSON that CloudWatch gets."""
        lines = self.logs.getvalue().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def assert_no_secret(self) -> None:
        fds = self.fds.readouterr()
        logs = "\n".join([self.logs.getvalue(), fds.out, fds.err])
        everything = "\n".join([logs, *self.bodies])
        leaked = [name for name, value in self.secrets.items() if _found(value, everything)]
        leaked += [name for name, value in self.log_only.items() if _found(value, logs)]
        assert not leaked, f"secrets found in logs or error bodies: {sorted(leaked)}"


def _found(secret: str, text: str) -> bool:
    return any(form in text for form in _forms(secret))


def _forms(secret: str) -> set[str]:
    """The secret as written, URL-encoded, a JWT's signature alone, a whsec_ key's bytes."""
    forms = {secret, quote(secret, safe="")}
    if secret.count(".") == 2 and len(secret.rsplit(".", 1)[1]) >= 16:
        forms.add(secret.rsplit(".", 1)[1])
    if secret.startswith("whsec_"):
        forms.add(secret.removeprefix("whsec_"))
    return forms


@pytest.fixture
def capture(capfd: pytest.CaptureFixture[str], stack: LocalStack) -> Iterator[Capture]:
    """Every log record at DEBUG and up, from our loggers and every library's, plus raw fd 1/2.

    The Powertools handler keeps the stdout it saw at import (pytest's), which fd capture does not
    see, so its stream is swapped for the capture; a root handler catches every other logger.
    """
    found = Capture(capfd)
    for name, value in (
        ("service role key", stack.service_role_key),
        ("Replicate token", stack.replicate_token),
        ("JWT secret", stack.jwt_secret),
        ("webhook secret", stack.webhook_secret),
        ("anon key", anon_key(stack.jwt_secret)),
    ):
        found.secret(name, value)
    powertools: logging.StreamHandler[Any] = app_logger.logger_handler  # type: ignore[assignment]
    stdout = powertools.setStream(found.logs)
    everything = found.libraries
    everything.setStream(found.logs)
    everything.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    service = app_logger._logger.name
    loggers = [root, app_logger._logger] + [
        logging.getLogger(name)
        for name in list(logging.Logger.manager.loggerDict)
        if name.startswith(service + ".")
    ]
    levels = {lg: lg.level for lg in loggers}
    root.addHandler(everything)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)  # what an operator turning on debug logs would see
    try:
        yield found
    finally:
        root.removeHandler(everything)
        for lg, level in levels.items():
            lg.setLevel(level)
        powertools.setStream(stdout)


def _upload(http: httpx.Client, stack: LocalStack, user: User) -> httpx.Response:
    return http.post(
        stack.url(UPLOAD),
        headers=user.headers,
        data={"fursonaName": "Ember", "customizationData": json.dumps({"type": "fox"})},
        files=photo_files(3),
    )


def _signed_upload(http: httpx.Client, stack: LocalStack, user: User, capture: Capture) -> None:
    """The signed-upload path: create, put each photo with its token, complete."""
    photos = [content for _, (_, content, _) in photo_files(3)]
    declared = [
        {"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": len(photo)}
        for i, photo in enumerate(photos)
    ]
    created = capture.keep(
        http.post(
            stack.url(UPLOAD) + "uploads",
            headers=user.headers,
            json={"fursonaName": "Ember", "photos": declared},
        )
    )
    assert created.status_code == 201, created.text
    bucket = SyncStorageClient(
        f"{stack.supabase_url}/storage/v1/",
        headers={"apikey": anon_key(stack.jwt_secret), "Authorization": f"Bearer {user.token}"},
        http_client=http,
    ).from_("training-photos")
    for target, photo in zip(created.json()["uploads"], photos, strict=True):
        capture.log_only[f"upload token {target['photo']}"] = target["token"]
        with capture.browser_side():
            bucket.upload_to_signed_url(
                target["path"], target["token"], photo, {"content-type": "image/jpeg"}
            )
    job_id = created.json()["jobId"]
    completed = capture.keep(
        http.post(f"{stack.url(UPLOAD)}uploads/{job_id}/complete", headers=user.headers)
    )
    assert completed.status_code == 200 and completed.json()["status"] == "pending", completed.text


def test_a_full_successful_flow_logs_no_secret(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    capture: Capture,
):
    capture.secret("user token", user.token)
    upload = capture.keep(_upload(http, stack, user))
    assert upload.status_code == 201
    job_id = upload.json()["jobId"]
    started = capture.keep(
        http.post(stack.url(START), headers=user.headers, json={"jobId": job_id})
    )
    assert started.status_code == 202

    def completed() -> bool:
        response = capture.keep(
            http.get(stack.url(STATUS), headers=user.headers, params={"jobId": job_id})
        )
        return response.json()["status"] == "completed"

    wait_for(completed, timeout=30, interval=0.3)
    assert stack.functions is not None
    stack.functions.fire_schedule()
    _signed_upload(http, stack, user, capture)

    # The capture really sees the handlers' logs: their JSON lines are there, with our keys.
    lines = capture.json_lines()
    messages = {line["message"] for line in lines}
    assert {"job created", "sweep finished", "signed upload completed"} <= messages, messages
    assert any(line.get("job_id") == job_id for line in lines)
    assert any(line.get("user_id") == user.id for line in lines)
    capture.assert_no_secret()


def test_refused_tokens_and_webhooks_log_no_secret(
    stack: LocalStack,
    http: httpx.Client,
    db: psycopg.Connection,
    user: User,
    capture: Capture,
):
    job_id = insert_job(db, user.id)
    other_secret = "another-project-secret-0123456789abcdef"
    key = SigningKey.new("ES256")
    tokens = {
        "expired token": user_access_token(
            stack.jwt_secret, stack.supabase_url, user.id, ttl_seconds=-300
        ),
        "token of another project": user_access_token(other_secret, stack.supabase_url, user.id),
        "alg none token": unsigned_token(user_claims(stack, user.id)),
        "key confusion token": hmac_token(key.public_pem, user_claims(stack, user.id)),
        "unknown kid token": key.sign(user_claims(stack, user.id)),
        "service role claims": mint_token(
            stack.jwt_secret, role="service_role", sub=user.id, audience="authenticated"
        ),
        "wrong audience": mint_token(
            stack.jwt_secret, role="authenticated", sub=user.id, audience="anon"
        ),
    }
    attempts = [bearer(capture.secret(name, token)) for name, token in tokens.items()]
    # Secrets pasted where a token goes: refused without being echoed.
    for name in ("service role key", "anon key", "JWT secret", "Replicate token"):
        attempts.append(bearer(capture.secrets[name]))
    attempts.append({"Authorization": f"Token {stack.replicate_token}"})
    for headers in attempts:
        for response in call_all(http, stack, ROUTES, headers, job_id).values():
            assert capture.keep(response).status_code == 401

    training_id = f"tr_{uuid.uuid4().hex[:20]}"
    training_job = insert_job(db, user.id, training_id=training_id)
    body = training_body(training_id)
    forged_secret = capture.secret("forged webhook secret", "whsec_" + "QUJD" * 8)
    refused = [
        deliver(http, stack, training_job, body, webhook_headers(forged_secret, body)),
        deliver(
            http,
            stack,
            training_job,
            body,
            webhook_headers(stack.webhook_secret, body, timestamp=int(time.time()) - 3600),
        ),
        deliver(
            http,
            stack,
            training_job,
            training_body("tr_other"),
            webhook_headers(stack.webhook_secret, training_body("tr_other")),
        ),
    ]
    assert [capture.keep(r).status_code for r in refused] == [401, 401, 409]

    assert "request refused" in {line["message"] for line in capture.json_lines()}
    capture.assert_no_secret()


def test_upstream_faults_and_misconfiguration_log_no_secret(
    stack: LocalStack,
    http: httpx.Client,
    emulator: ReplicateEmulator,
    user: User,
    capture: Capture,
    function_env: Callable[..., Any],
):
    capture.secret("user token", user.token)
    assert stack.gateway is not None
    keep = capture.keep
    jobs = [keep(_upload(http, stack, user)).json()["jobId"] for _ in range(3)]
    answers: dict[str, tuple[int, str]] = {}

    def answer(case: str, response: httpx.Response) -> None:
        assert "error" in response.json(), (case, response.status_code, response.text)
        answers[case] = (keep(response).status_code, response.json()["error"]["code"])

    def status(job_id: str) -> httpx.Response:
        return http.get(stack.url(STATUS), headers=user.headers, params={"jobId": job_id})

    def start(job_id: str) -> httpx.Response:
        return http.post(stack.url(START), headers=user.headers, json={"jobId": job_id})

    # Upstream faults: Storage down during an upload, PostgREST failing, Replicate failing.
    stack.gateway.storage_faults.add("POST", "^/storage/v1/object/", "status", None, status=503)
    answer("storage down", _upload(http, stack, user))
    stack.gateway.storage_faults.clear()
    stack.gateway.rest_faults.add("GET", "^/rest/v1/ai_training_jobs", "status", None, status=500)
    answer("database down", status(jobs[0]))
    stack.gateway.rest_faults.clear()
    emulator.faults.add("POST", "^/v1/files", "status", None, status=500)
    answer("replicate down", start(jobs[0]))
    emulator.faults.clear()

    # Misconfigured deployments; each wrong key is a secret too.
    wrong_service_key = capture.secret(
        "wrong service role key", service_role_key("a-secret-of-some-other-project-0123456789")
    )
    with function_env(SUPABASE_SERVICE_ROLE_KEY=wrong_service_key):
        answer("wrong service role key", status(jobs[1]))
    wrong_token = capture.secret("wrong Replicate token", "r8_wrong_" + uuid.uuid4().hex)
    with function_env(REPLICATE_API_TOKEN=wrong_token):
        answer("wrong Replicate token", start(jobs[2]))
    with function_env(REPLICATE_TRAINER_VERSION="not-a-version"):
        answer("invalid setting", status(jobs[1]))
    body = training_body("tr_x")
    with function_env(REPLICATE_WEBHOOK_SECRET=None):
        headers = webhook_headers(stack.webhook_secret, body)
        answer("no webhook secret", deliver(http, stack, jobs[1], body, headers))

    # A wrong key is the operators' problem: some 5xx, never a 4xx that blames the user.
    assert answers.pop("wrong service role key")[0] >= 500
    assert answers.pop("wrong Replicate token")[0] >= 500
    assert answers == {
        "storage down": (503, "upstream_unavailable"),
        "database down": (503, "upstream_unavailable"),
        "replicate down": (503, "upstream_unavailable"),
        "invalid setting": (500, "misconfigured"),
        "no webhook secret": (503, "webhooks_disabled"),
    }
    messages = {line["message"] for line in capture.json_lines()}
    assert {"request refused", "configuration error", "unexpected error"} <= messages, messages
    capture.assert_no_secret()
