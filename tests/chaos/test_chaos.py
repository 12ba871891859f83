"""Issue 5 on the real stack: writes that survive lost answers, and the chaos run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from devstack.schema import create_user
from devstack.stack import LocalStack
from shared.domain.job import JobStatus
from tests.chaos.harness import ChaosOptions, Components, run_chaos

pytestmark = pytest.mark.stack


@pytest.fixture
def parts(chaos_stack: LocalStack) -> Components:
    return Components(chaos_stack, ChaosOptions(request_timeout_seconds=5.0))


def new_job(chaos_stack: LocalStack, parts: Components) -> uuid.UUID:
    assert chaos_stack.pg is not None
    job = parts.deps().jobs.insert(
        {
            "id": uuid.uuid4(),
            "user_id": create_user(chaos_stack.pg.dsn()),
            "furrsona_name": "Ember",
            "status": JobStatus.PENDING,
            "progress": 20,
        }
    )
    return job.id


def test_a_claim_whose_answer_was_lost_is_still_ours(chaos_stack: LocalStack, parts: Components):
    assert chaos_stack.gateway is not None
    job_id = new_job(chaos_stack, parts)
    token = uuid.uuid4()
    # PostgREST carries the PATCH out; the answer never arrives; the retry's compare-and-set
    # then matches nothing. Only reading the row tells that the claim is ours.
    chaos_stack.gateway.rest_faults.add("PATCH", "/rest/v1/ai_training_jobs", "drop", when="after")
    claimed = parts.deps().jobs.update(
        job_id,
        {"status": JobStatus.QUEUED, "claim_token": token, "queued_at": datetime.now(UTC)},
        expect_status=JobStatus.PENDING,
    )
    assert claimed is not None and claimed.claim_token == token
    assert chaos_stack.gateway.counters.count("PATCH", "/rest/v1/ai_training_jobs") >= 2


def test_someone_elses_claim_is_not_mistaken_for_ours(chaos_stack: LocalStack, parts: Components):
    job_id = new_job(chaos_stack, parts)
    jobs = parts.deps().jobs
    assert jobs.update(job_id, {"claim_token": uuid.uuid4()}, expect_status=JobStatus.PENDING)
    late = jobs.update(job_id, {"claim_token": uuid.uuid4()}, expect_claim=uuid.uuid4())
    assert late is None


def test_a_gateway_error_page_is_retried_by_our_policy_alone(
    chaos_stack: LocalStack, parts: Components
):
    assert chaos_stack.gateway is not None
    job_id = new_job(chaos_stack, parts)
    counters = chaos_stack.gateway.counters
    before = counters.count("GET", "/rest/v1/ai_training_jobs")
    # A 503 whose body is not PostgREST's (no `code`), as a proxy in front of it sends.
    chaos_stack.gateway.rest_faults.add("GET", "/rest/v1/ai_training_jobs", "status", times=2)
    job = parts.deps().jobs.get(job_id)
    assert job is not None and job.id == job_id
    # Three tries in all: the client's own retry (1, 2, 4 s sleeps, deaf to the deadline) is off.
    assert counters.count("GET", "/rest/v1/ai_training_jobs") - before == 3


def test_fifty_jobs_survive_faults_crashes_and_duplicate_starts(chaos_stack: LocalStack):
    options = ChaosOptions()
    report = run_chaos(chaos_stack, options)
    print(report.figures(), report.crash_points)  # with -s; the bigger run: `python -m bench.chaos`
    assert report.problems == [], report.problems
    assert report.jobs == options.jobs and report.lost == 0
    # Every completed twin got exactly one retrain, however many requests asked at once.
    first_wave_completed = options.jobs - options.failing_trainings
    assert report.retrains == first_wave_completed, report.figures()
    assert report.retrain_attempts >= 2 * report.retrains
    everything = options.jobs + report.retrains
    assert report.jobs_started == report.trainings_created == everything
    assert report.duplicates == 0 and report.lost_versions == 0
    assert report.twins_with_overlapping_versions == 0 and report.activations > 0
    assert report.completed == everything - options.failing_trainings
    assert report.failed == options.failing_trainings
    assert report.progress_regressions == 0 and report.observations > options.jobs
    # The run really was hostile.
    assert report.fault_share >= 0.2
    assert report.crashes > 0 and report.duplicate_requests >= options.jobs
    # Every completed version got its previews: none lost, no prediction made twice.
    assert report.previews_expected == report.completed * options.preview_count > 0
    assert report.previews_lost == 0 and report.duplicate_predictions == 0
    assert report.previews_ready + report.previews_failed == report.previews_expected
    assert report.predictions_created >= report.previews_ready
