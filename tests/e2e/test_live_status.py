"""Live status end to end (issue 6), over HTTP against the local stack: progress rising from the
trainer's logs, the estimate converging, one notice per job whoever sees the end, the cost stored,
status calls answered from the row within the refresh interval, readable failures, and metrics
flushed by the real handlers."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from botocore.exceptions import ClientError
from supabase_auth.errors import AuthApiError

from devstack.function_urls import FunctionUrls
from devstack.replicate_emulator import ReplicateEmulator
from devstack.stack import LocalStack
from shared import bootstrap
from shared.adapters.notifiers import SesEmailNotifier, SupabaseUserDirectory
from shared.plumbing.observability import metrics
from supabase import ClientOptions, create_client
from tests.e2e.conftest import User, photo_files, wait_for

GET_TRAINING = "/v1/trainings/{id}"
PRICE = 0.001528  # TRAINING_PRICE_PER_SECOND's default, which the stack keeps
VALIDATION_ERROR = (
    'Prediction input failed validation: {"detail":[{"loc":["body","input","steps"],'
    '"msg":"ensure this value is less than or equal to 6000","type":"value_error.number.not_le",'
    '"ctx":{"limit_value":6000}}]}'
)


class Mailbox:
    """Stands in for the boto3 SES client: what `send_email` was asked to send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.throttle_next_to: str | None = None  # the next mail to this address is throttled
        self._lock = threading.Lock()

    def send_email(self, **message: Any) -> dict[str, str]:
        with self._lock:
            if message["Destination"]["ToAddresses"] == [self.throttle_next_to]:
                self.throttle_next_to = None
                raise ClientError(
                    {"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}},
                    "SendEmail",
                )
            self.sent.append(message)
        return {"MessageId": uuid.uuid4().hex}

    def to(self, address: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.sent if m["Destination"]["ToAddresses"] == [address]]


@pytest.fixture
def mailbox(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """E-mail notices on: the real SES notifier and Supabase Auth look-up, with SES stubbed."""
    box = Mailbox()
    key = stack.service_role_key
    with httpx.Client(headers={"apikey": key, "Authorization": f"Bearer {key}"}) as auth_http:
        users = SupabaseUserDirectory(auth_http, stack.supabase_url)
        notifier = SesEmailNotifier(box, "twins@flurrty.test", users)
        monkeypatch.setattr(bootstrap, "notifier", lambda: notifier)
        yield box


@pytest.fixture
def train_for(emulator: ReplicateEmulator) -> Iterator[Callable[[float], None]]:
    """How long trainings created from now on run (the stack's default is 1.5 s)."""
    before = emulator.train_seconds

    def set_seconds(seconds: float) -> None:
        emulator.train_seconds = seconds

    yield set_seconds
    emulator.train_seconds = before
    emulator.webhook_faults.clear()


def started_job(stack: LocalStack, http: httpx.Client, user: User) -> tuple[str, str]:
    response = http.post(
        stack.url("upload_training_photos"),
        headers=user.headers,
        data={"fursonaName": "Ember", "customizationData": json.dumps({"type": "fox"})},
        files=photo_files(3),
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["jobId"]
    response = http.post(
        stack.url("start_ai_training"), headers=user.headers, json={"jobId": job_id}
    )
    assert response.status_code == 202, response.text
    return job_id, response.json()["trainingId"]


def status(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> dict[str, Any]:
    response = http.get(
        stack.url("check_training_status"), headers=user.headers, params={"jobId": job_id}
    )
    assert response.status_code == 200, response.text
    return response.json()


def finished(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (s := status(stack, http, user, job_id))["status"] in ("completed", "failed") and s
    )


def row(db: psycopg.Connection, job_id: str) -> dict[str, Any]:
    cursor = db.execute("select * from ai_training_jobs where id = %s", (job_id,))
    names = [c.name for c in cursor.description or []]
    values = cursor.fetchone()
    assert values is not None
    return dict(zip(names, values, strict=True))


def email_of(db: psycopg.Connection, user: User) -> str:
    found = db.execute("select email from auth.users where id = %s", (user.id,)).fetchone()
    assert found is not None
    return str(found[0])


def test_progress_rises_the_estimate_converges_and_the_job_completes_with_its_cost(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    train_for: Callable[[float], None],
    mailbox: Mailbox,
    db: psycopg.Connection,
):
    train_for(6.0)  # webhooks only say start and completed: the steps come from status calls
    job_id, _ = started_job(stack, http, user)
    seen: list[dict[str, Any]] = []

    def done() -> bool:
        seen.append(status(stack, http, user, job_id))
        return seen[-1]["status"] in ("completed", "failed")

    wait_for(done, timeout=60, interval=0.2)
    assert seen[-1]["status"] == "completed" and seen[-1]["progress"] == 100
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress)
    assert len({p for p in progress if 30 < p < 95}) >= 2, progress

    final = row(db, job_id)
    assert final["completed_at"] and final["replicate_model_version"] == seen[-1]["modelVersion"]
    assert final["predict_time_seconds"] > 0
    assert float(final["cost_usd"]) == pytest.approx(
        final["predict_time_seconds"] * PRICE, abs=1e-4
    )

    # Estimates from the step rate, in the order they were made: each error against the real end.
    estimates: list[datetime] = []
    for s in seen:
        if s["status"] == "training" and s["progress"] > 30 and s["estimatedCompletion"]:
            at = datetime.fromisoformat(s["estimatedCompletion"])
            if not estimates or estimates[-1] != at:
                estimates.append(at)
    errors = [abs((at - final["completed_at"]).total_seconds()) for at in estimates]
    # Converged: the last estimate is no worse than the first, or already within a second of the
    # real end (a 6 s training; the first can be near-perfect, and then only scheduling jitter moves).
    assert len(errors) >= 2 and errors[-1] <= max(errors[0], 1.0), errors

    address = email_of(db, user)
    [mail] = wait_for(lambda: mailbox.to(address))
    assert mail["Message"]["Subject"]["Data"] == "Your Flurrty Twin Ember is ready"
    assert mail["Source"] == "twins@flurrty.test"


def test_status_calls_within_the_interval_make_no_replicate_call(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    train_for: Callable[[float], None],
    refresh_every: Callable[[float], None],
    db: psycopg.Connection,
):
    train_for(300)
    refresh_every(30)
    job_id, training_id = started_job(stack, http, user)
    # The `start` webhook also refreshes the row; let it land before counting reads.
    wait_for(
        lambda: any(
            d["training_id"] == training_id and d["event"] == "start" and d["status_code"] == 200
            for d in emulator.webhook_deliveries
        )
    )
    reads = emulator.count("GET", GET_TRAINING)
    for _ in range(10):  # the start has just read Replicate: these answer from the row
        assert status(stack, http, user, job_id)["status"] == "training"
    assert emulator.count("GET", GET_TRAINING) == reads

    # The interval is over: of ten tabs asking at once, one reads Replicate.
    db.execute(
        "update ai_training_jobs set last_checked_at = now() - interval '1 minute' where id = %s",
        (job_id,),
    )
    barrier = threading.Barrier(10)
    answers: list[int] = []

    def tab() -> None:
        barrier.wait()
        with httpx.Client(timeout=60) as own:
            answers.append(
                own.get(
                    stack.url("check_training_status"),
                    headers=user.headers,
                    params={"jobId": job_id},
                ).status_code
            )

    threads = [threading.Thread(target=tab) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 10
    assert emulator.count("GET", GET_TRAINING) == reads + 1
    emulator.finish_now(training_id)


@pytest.fixture
def no_previews() -> Iterator[None]:
    """PREVIEW_COUNT=0 for the handlers during this test (settings only: the mailbox's notifier
    stays as it is)."""
    before = os.environ.get("PREVIEW_COUNT")
    os.environ["PREVIEW_COUNT"] = "0"
    bootstrap.settings.cache_clear()
    yield
    if before is None:
        os.environ.pop("PREVIEW_COUNT", None)
    else:
        os.environ["PREVIEW_COUNT"] = before
    bootstrap.settings.cache_clear()


def test_one_notice_when_a_duplicated_webhook_and_the_sweep_all_see_the_end(
    no_previews: None,
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    functions: FunctionUrls,
    train_for: Callable[[float], None],
    mailbox: Mailbox,
    db: psycopg.Connection,
):
    # Predictions' completed webhooks would compete for the duplicate below: none here (no
    # previews), and none of earlier tests still on their way.
    assert emulator.wait_for_webhooks(timeout=15)
    train_for(300)
    job_id, training_id = started_job(stack, http, user)
    emulator.webhook_faults.add("duplicate", event="completed")
    # The sweep's read of this training is held for a second: it answers after the end.
    held = emulator.faults.add("GET", rf"^/v1/trainings/{training_id}$", "slow", seconds=1.0)
    reports: list[Any] = []
    sweeper = threading.Thread(target=lambda: reports.append(functions.fire_schedule()))
    sweeper.start()
    wait_for(lambda: all(f.get("id") != held for f in emulator.faults.list()))
    emulator.finish_now(training_id)
    assert emulator.wait_for_webhooks(timeout=15)
    sweeper.join(timeout=60)

    completed = [
        d
        for d in emulator.webhook_deliveries
        if d["training_id"] == training_id and d["event"] == "completed"
    ]
    assert [d["status_code"] for d in completed] == [200, 200]
    assert len({d["webhook_id"] for d in completed}) == 1
    assert reports and reports[0]["trainings"]["errors"] == 0
    final = row(db, job_id)
    assert final["status"] == "completed" and final["notified_at"] is not None
    assert len(mailbox.to(email_of(db, user))) == 1


def test_a_notice_that_could_not_be_sent_goes_out_with_the_next_sweep(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    functions: FunctionUrls,
    mailbox: Mailbox,
    db: psycopg.Connection,
):
    address = email_of(db, user)
    mailbox.throttle_next_to = address
    job_id, _ = started_job(stack, http, user)
    assert finished(stack, http, user, job_id)["status"] == "completed"
    # The first attempt (the webhook's, or a status call's) was throttled and gave the notice back.
    wait_for(lambda: mailbox.throttle_next_to is None and row(db, job_id)["notified_at"] is None)
    assert mailbox.to(address) == []
    report = functions.fire_schedule()
    assert report["notices"]["sent"] >= 1
    assert len(mailbox.to(address)) == 1 and row(db, job_id)["notified_at"] is not None


def test_a_trainer_validation_error_reads_well_and_its_detail_is_logged(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    emulator: ReplicateEmulator,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.WARNING)
    emulator.next_training_outcome("failed", error=VALIDATION_ERROR)
    job_id, training_id = started_job(stack, http, user)
    final = finished(stack, http, user, job_id)
    assert final["errorMessage"].startswith("The trainer refused our training settings (steps: ")
    assert "{" not in final["errorMessage"]
    logged = wait_for(
        lambda: [
            r
            for r in caplog.records
            if r.getMessage() == "training failed" and getattr(r, "training_id", "") == training_id
        ]
    )
    assert getattr(logged[0], "error", None) == VALIDATION_ERROR


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_handlers_flush_the_metrics_as_emf(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()  # what other tests recorded while metrics were off
    job_id, _ = started_job(stack, http, user)
    assert finished(stack, http, user, job_id)["status"] == "completed"
    emitted: dict[str, list[float]] = {}

    def flushed() -> bool:
        for line in capsys.readouterr().out.splitlines():
            if line.startswith("{") and '"_aws"' in line:
                emf = json.loads(line)
                for metric in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                    value = emf[metric["Name"]]
                    emitted.setdefault(metric["Name"], []).extend(
                        value if isinstance(value, list) else [value]
                    )
        return "JobsCompleted" in emitted

    wait_for(flushed)  # the webhook's invocation flushes after answering
    assert emitted["JobsStarted"] == [1.0] and emitted["JobsCompleted"] == [1.0]
    assert emitted["TrainingSeconds"][0] > 0 and emitted["TrainingCostUSD"][0] >= 0


def test_the_auth_admin_endpoint_answers_like_supabase_auth(
    stack: LocalStack, user: User, db: psycopg.Connection
):
    def client(key: str):
        options = ClientOptions(httpx_client=httpx.Client(http2=False))
        return create_client(stack.supabase_url, key, options=options)

    admin = client(stack.service_role_key).auth.admin
    assert admin.get_user_by_id(user.id).user.email == email_of(db, user)
    with pytest.raises(AuthApiError) as missing:
        admin.get_user_by_id(str(uuid.uuid4()))
    assert missing.value.status == 404 and missing.value.code == "user_not_found"
    from devstack.tokens import anon_key

    with pytest.raises(AuthApiError) as refused:
        client(anon_key(stack.jwt_secret)).auth.admin.get_user_by_id(user.id)
    assert refused.value.status == 403 and refused.value.code == "not_admin"
