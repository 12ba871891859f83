"""Live status against in-memory fakes: one Replicate read per interval however many callers,
one notice whoever sees the end, the raw failure detail in the logs, and the EMF metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.sample_photos import make_photo
from shared.domain.job import FailureCode, Job, JobStatus
from shared.domain.notice import CompletionNotice
from shared.errors import AppError
from shared.plumbing import webhooks
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import metrics
from shared.services.deps import Deps
from shared.services.start import start_training
from shared.services.status import apply_webhook, get_status, refresh
from shared.services.sweep import sweep
from tests.fakes import FakeTrainer, InMemoryJobStore
from tests.unit import helpers

VERSION = "flurrty/flurrty-twins:" + "e" * 64
VALIDATION_ERROR = (
    'Prediction input failed validation: {"detail":[{"loc":["body","input","steps"],'
    '"msg":"ensure this value is less than or equal to 6000","type":"value_error.number.not_le",'
    '"ctx":{"limit_value":6000}}]}'
)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[CompletionNotice] = []
        self.lock = threading.Lock()

    def send(self, notice: CompletionNotice) -> None:
        time.sleep(0.01)  # widen the window in which a second sender could slip in
        with self.lock:
            self.sent.append(notice)


class CountingTrainer(FakeTrainer):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_training(self, training_id: str) -> Any:
        with self.lock:
            self.reads += 1
        time.sleep(0.01)  # a Replicate round trip, so concurrent callers overlap
        return super().get_training(training_id)


def make_deps(**settings: Any) -> Deps:
    return helpers.make_deps(trainer=CountingTrainer(), notifier=Recorder(), **settings)


def trainer_of(deps: Deps) -> CountingTrainer:
    assert isinstance(deps.trainer, CountingTrainer)
    return deps.trainer


def sent(deps: Deps) -> list[CompletionNotice]:
    assert isinstance(deps.notifier, Recorder)
    return deps.notifier.sent


def started_job(deps: Deps) -> Job:
    user_id, job_id = uuid.uuid4(), uuid.uuid4()
    path = f"{user_id}/{job_id}/01.jpg"
    deps.photos.put(path, make_photo(64, 64), "image/jpeg")
    deps.jobs.insert(
        {
            "id": job_id,
            "user_id": user_id,
            "furrsona_name": "Ember",
            "status": "pending",
            "progress": 20,
            "photo_urls": [path],
        }
    )
    job = start_training(user_id, job_id, deps)
    assert job.replicate_training_id is not None
    return job


def succeed(deps: Deps, job: Job, predict_time: float = 500.0) -> Any:
    assert job.replicate_training_id is not None
    trainer_of(deps).set(
        job.replicate_training_id,
        status="succeeded",
        output={"version": VERSION},
        metrics={"predict_time": predict_time},
        completed_at=datetime.now(UTC),
    )
    return trainer_of(deps).trainings[job.replicate_training_id]


def signed(deps: Deps, training: Any, webhook_id: str) -> tuple[dict[str, str], bytes]:
    secret = deps.settings.replicate_webhook_secret
    assert secret is not None
    body = training.model_dump_json().encode()
    stamp = str(int(time.time()))
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": webhooks.sign(secret.get_secret_value(), webhook_id, stamp, body),
    }, body


def test_webhook_duplicate_and_sweep_all_seeing_the_end_send_one_notice():
    deps = make_deps()
    job = started_job(deps)
    training = succeed(deps, job)
    headers, body = signed(deps, training, "msg_completed")
    barrier = threading.Barrier(3)

    def deliver() -> None:
        barrier.wait()
        apply_webhook(job.id, headers, body, deps)

    def sweep_now() -> None:
        barrier.wait()
        sweep(deps, Deadline(30))

    threads = [threading.Thread(target=f) for f in (deliver, deliver, sweep_now)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = deps.jobs.get(job.id)
    assert row is not None and row.status is JobStatus.COMPLETED and row.notified_at is not None
    assert [n.job_id for n in sent(deps)] == [job.id]
    assert row.cost_usd == pytest.approx(500 * 0.001528, abs=1e-4)
    assert row.predict_time_seconds == 500.0


def test_many_status_calls_in_one_interval_read_replicate_once():
    deps = make_deps(status_refresh_seconds=5)
    job = started_job(deps)
    assert job.last_checked_at is not None
    for _ in range(5):  # the start just read it: within the interval nobody reads again
        get_status(job.user_id, job.id, deps)
    assert trainer_of(deps).reads == 0

    stale = datetime.now(UTC) - timedelta(seconds=6)
    assert isinstance(deps.jobs, InMemoryJobStore)
    deps.jobs.rows[job.id]["last_checked_at"] = stale
    barrier = threading.Barrier(20)

    def tab() -> None:
        barrier.wait()
        get_status(job.user_id, job.id, deps)

    threads = [threading.Thread(target=tab) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert trainer_of(deps).reads == 1


def test_a_failure_reads_well_and_the_raw_detail_stays_in_the_logs(caplog):
    deps = make_deps(status_refresh_seconds=0)
    job = started_job(deps)
    assert job.replicate_training_id is not None
    trainer_of(deps).set(
        job.replicate_training_id,
        status="failed",
        error=VALIDATION_ERROR,
        logs="Extracted 3 files from zip to input_images\n" + VALIDATION_ERROR,
        metrics={"predict_time": 2.0},
    )
    caplog.set_level(logging.INFO)
    failed = refresh(job, deps)
    assert failed.status is JobStatus.FAILED
    assert failed.error_message is not None and "{" not in failed.error_message
    assert "steps: ensure this value is less than or equal to 6000" in failed.error_message
    logged = [r for r in caplog.records if r.getMessage() == "training failed"]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING
    assert getattr(logged[0], "error", None) == VALIDATION_ERROR
    assert "Extracted 3 files" in getattr(logged[0], "logs_tail", "")
    assert [n.error_message for n in sent(deps)] == [failed.error_message]


def emf_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def test_metrics_are_emitted_as_emf_where_the_events_happen(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()  # values recorded by earlier tests while metrics were disabled
    deps = make_deps(status_refresh_seconds=0, training_price_per_second=0.002)
    done, broken = started_job(deps), started_job(deps)
    succeed(deps, done, predict_time=400.0)
    assert broken.replicate_training_id is not None
    trainer_of(deps).set(broken.replicate_training_id, status="canceled")
    sweep(deps, Deadline(30))
    capsys.readouterr()
    metrics.flush_metrics()

    [emf] = emf_lines(capsys.readouterr().out)
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {
        "JobsStarted": "Count",
        "JobsCompleted": "Count",
        "JobsFailed": "Count",
        "TrainingSeconds": "Seconds",
        "TrainingCostUSD": "None",
        "QueueWaitSeconds": "Seconds",
    }
    assert emf["JobsStarted"] == [1.0, 1.0] and len(emf["QueueWaitSeconds"]) == 2
    assert emf["JobsCompleted"] == [1.0] and emf["JobsFailed"] == [1.0]
    assert emf["TrainingSeconds"] == [400.0] and emf["TrainingCostUSD"] == [0.8]


def test_a_start_whose_photos_are_gone_fails_the_job_and_counts_it(monkeypatch, capsys, caplog):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()
    deps = make_deps()
    user_id, job_id = uuid.uuid4(), uuid.uuid4()
    deps.jobs.insert(
        {
            "id": job_id,
            "user_id": user_id,
            "furrsona_name": "Ember",
            "status": "pending",
            "progress": 20,
            "photo_urls": [f"{user_id}/{job_id}/01.jpg"],  # never stored
        }
    )
    caplog.set_level(logging.WARNING)
    with pytest.raises(AppError) as refused:
        start_training(user_id, job_id, deps)
    assert (refused.value.status, refused.value.code) == (409, "job_failed")
    failed = deps.jobs.get(job_id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.failure_code is FailureCode.PHOTOS_MISSING and not failed.replicate_training_id
    assert failed.error_message is not None and failed.error_message in refused.value.message
    assert failed.error_message is not None and "upload them again" in failed.error_message
    assert trainer_of(deps).trainings == {}  # nothing was charged
    logged = [r for r in caplog.records if r.getMessage() == "training could not start"]
    assert len(logged) == 1 and getattr(logged[0], "job_id", None) == str(job_id)
    capsys.readouterr()
    metrics.flush_metrics()
    [emf] = emf_lines(capsys.readouterr().out)
    assert emf["JobsFailed"] == [1.0] and "JobsStarted" not in emf
