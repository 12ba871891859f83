"""Previews on the fakes: one set per version whoever sees the completion, exactly one
prediction per picture under duplicates, concurrency and crashes, private copies and signed
URLs, failures that leave the job completed, the notice, pictures on demand, deletion."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.sample_photos import make_photo
from shared.contract.previews import PreviewRequest
from shared.domain.caller import Caller
from shared.domain.job import Job, JobStatus
from shared.domain.previews import (
    DEFAULT_TEMPLATES,
    PreviewFailure,
    PreviewKind,
    PreviewStatus,
    SetStatus,
    completion_set_id,
    prompts,
    template_problem,
)
from shared.errors import ConfigError
from shared.plumbing import webhooks
from shared.plumbing.deadline import Deadline
from shared.services.deps import Deps
from shared.services.intake import normalise_all
from shared.services.preview_requests import request_previews
from shared.services.previews import apply_preview_webhook, sweep_previews
from shared.services.privacy import delete_job
from shared.services.start import start_training
from shared.services.status import get_status, status_answer
from shared.services.sweep import sweep_all
from shared.services.twins import delete_twin, get_twin
from shared.services.upload import create_job_with_photos
from shared.services.versions import VersionPlan
from tests.crash import Boundaries, Crash
from tests.fakes import (
    FakePredictor,
    FakeTrainer,
    InMemoryPhotoStore,
    InMemoryPreviewStore,
    RecordingNotifier,
)
from tests.unit.helpers import SETTINGS_ENV, make_deps, make_settings, raises_status

PHOTOS = [(f"p{i}.jpg", make_photo(640, 640, seed=400 + i)) for i in range(3)]
VERSION = "flurrty/flurrty-twins:" + "e" * 64
CUSTOM = {"type": "red panda", "furType": "fluffy", "colors": ["rust", "cream"]}


def predictor(deps: Deps) -> FakePredictor:
    assert isinstance(deps.predictor, FakePredictor)
    return deps.predictor


def store(deps: Deps) -> InMemoryPreviewStore:
    assert isinstance(deps.previews, InMemoryPreviewStore)
    return deps.previews


def photos(deps: Deps) -> InMemoryPhotoStore:
    assert isinstance(deps.photos, InMemoryPhotoStore)
    return deps.photos


def notices(deps: Deps) -> RecordingNotifier:
    notifier = deps.notifier
    assert isinstance(notifier, RecordingNotifier)
    return notifier


def training_job(deps: Deps, owner: uuid.UUID | None = None) -> Job:
    caller = Caller(user_id=owner or uuid.uuid4(), claims={})
    jpegs = normalise_all(PHOTOS, deps.settings)
    job = create_job_with_photos(caller, VersionPlan("Ember", CUSTOM, None), jpegs, deps)
    started = start_training(caller.user_id, job.id, deps)
    assert started.replicate_training_id
    return started


def succeed(deps: Deps, job: Job) -> None:
    assert isinstance(deps.trainer, FakeTrainer) and job.replicate_training_id
    deps.trainer.set(job.replicate_training_id, status="succeeded", output={"version": VERSION})


def completed(deps: Deps, owner: uuid.UUID | None = None) -> Job:
    job = training_job(deps, owner)
    succeed(deps, job)
    done = get_status(job.user_id, job.id, deps)
    assert done.status is JobStatus.COMPLETED
    return done


def pictures(deps: Deps, job: Job) -> list[Any]:
    return deps.previews.for_jobs([job.id])


def test_a_completed_version_gets_its_previews_stored_privately_with_signed_urls():
    deps = make_deps(status_refresh_seconds=0)
    job = completed(deps)
    made = pictures(deps, job)
    assert len(made) == deps.settings.preview_count == 4
    assert all(p.status is PreviewStatus.READY for p in made)
    assert predictor(deps).created == 4
    for p in made:
        assert p.storage_path == f"{job.user_id}/previews/{job.id}/{p.id}.webp"
        assert photos(deps).objects[p.storage_path][8:12] == b"WEBP"
        assert p.cost_usd == pytest.approx(8.0 * deps.settings.preview_price_per_second)
    # The prompts carry the trigger word and the twin's customisation, each its own seed.
    assert all("TOK" in p.prompt and "red panda" in p.prompt for p in made)
    assert "fluffy rust and cream fur" in made[0].prompt
    assert len({p.seed for p in made}) == 4
    answer = status_answer(deps.jobs.get(job.id), deps)  # type: ignore[arg-type]
    assert answer.previews is not None and answer.previews.status is SetStatus.READY
    urls = [pic.url for pic in answer.previews.pictures]
    assert all(u and u.startswith("memory://training-photos/") for u in urls)
    assert all(pic.url_expires_at for pic in answer.previews.pictures)
    assert "replicate.delivery" not in answer.model_dump_json()
    # The notice waited for them and links them.
    (notice,) = notices(deps).sent
    assert len(notice.preview_urls) == 4 and notice.preview_urls[0] in notice.text


def test_previews_off_makes_none_and_the_notice_goes_at_once():
    deps = make_deps(status_refresh_seconds=0, preview_count=0)
    job = completed(deps)
    assert pictures(deps, job) == [] and predictor(deps).created == 0
    assert len(notices(deps).sent) == 1 and notices(deps).sent[0].preview_urls == ()
    assert status_answer(job, deps).previews is None


def test_twenty_concurrent_observers_of_the_completion_make_one_set():
    deps = make_deps(status_refresh_seconds=0)
    job = training_job(deps)
    succeed(deps, job)
    barrier = threading.Barrier(20)

    def observe() -> None:
        barrier.wait()
        # Every observer reads the row before anyone moved it: the webhook, tabs, the sweep.
        from shared.services.status import refresh

        refresh(job, deps)

    threads = [threading.Thread(target=observe) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert predictor(deps).created == 4
    assert len(pictures(deps, job)) == 4
    assert len(notices(deps).sent) == 1


def _completing_job() -> tuple[Deps, Job]:
    deps = make_deps(status_refresh_seconds=0)
    job = training_job(deps)
    succeed(deps, job)
    return deps, job


def boundaries_of_a_completion() -> Iterator[int]:
    deps, job = _completing_job()
    counter = Boundaries(None)
    get_status(job.user_id, job.id, counter.deps(deps))
    return iter(range(counter.passed))


@pytest.mark.parametrize("boundary", list(boundaries_of_a_completion()))
def test_a_crash_at_any_step_of_the_completion_ends_with_exactly_one_set(boundary):
    deps, job = _completing_job()
    died: list[str] = []
    with contextlib.suppress(Crash):
        get_status(job.user_id, job.id, Boundaries(boundary, died.append).deps(deps))
    # Within the claim timeout nobody takes a claimed picture over; then the sweep does.
    sweep_all(deps, Deadline(30))
    assert predictor(deps).created <= 4
    later = datetime.now(UTC) - timedelta(seconds=deps.settings.claim_timeout_seconds + 1)
    for row in store(deps).rows.values():
        if row["claimed_at"] is not None:
            row["claimed_at"] = later
    if deps.jobs.get(job.id).status is JobStatus.TRAINING:  # type: ignore[union-attr]
        get_status(job.user_id, job.id, deps)  # died before the completion was written
    report = sweep_all(deps, Deadline(30))
    assert not any(task.get("errors") or task.get("error") for task in report.values()), report
    made = pictures(deps, job)
    assert len(made) == 4 and all(p.status is PreviewStatus.READY for p in made)
    assert predictor(deps).created == 4  # none twice: a dead create was adopted by its seed
    assert {p.prediction_id for p in made} == set(predictor(deps).predictions)
    assert all(p.storage_path in photos(deps).objects for p in made)
    # One notice, unless the function died between claiming the notice and sending it (notices
    # are at most once: a retry could mail twice).
    sent = len(notices(deps).sent)
    claimed = deps.jobs.get(job.id).notified_at is not None  # type: ignore[union-attr]
    assert sent == 1 or (sent == 0 and claimed and died == ["after compare_and_set"])


def test_an_unsafe_picture_fails_alone_with_a_readable_reason_and_the_job_stays_completed():
    deps = make_deps(status_refresh_seconds=0)
    predictor(deps).mode = "nsfw"
    job = completed(deps)
    made = pictures(deps, job)
    assert all(p.status is PreviewStatus.FAILED for p in made)
    assert made[0].failure_code is PreviewFailure.UNSAFE
    assert made[0].error_message == "The picture was flagged as unsafe, so it was not kept."
    current = deps.jobs.get(job.id)
    assert current is not None and current.status is JobStatus.COMPLETED
    answer = status_answer(current, deps)
    assert answer.status is JobStatus.COMPLETED and answer.previews is not None
    assert answer.previews.status is SetStatus.FAILED
    assert notices(deps).sent and notices(deps).sent[0].preview_urls == ()


def test_a_hung_prediction_is_canceled_after_its_bound_and_the_set_is_partly_ready():
    deps = make_deps(status_refresh_seconds=0)
    predictor(deps).mode = "running"
    job = completed(deps)
    made = pictures(deps, job)
    assert all(p.status is PreviewStatus.PENDING and p.prediction_id for p in made)
    assert notices(deps).sent == []  # the notice waits for them (within its bound)
    # Three finish (one webhook each would do the same); one hangs.
    for p in made[:3]:
        predictor(deps).finish(p.prediction_id)
    sweep_previews(deps, Deadline(30))
    assert notices(deps).sent == []
    bound = timedelta(seconds=deps.settings.preview_timeout_seconds + 1)
    store(deps).rows[made[3].id]["prediction_created_at"] = datetime.now(UTC) - bound
    sweep_previews(deps, Deadline(30))
    hung = deps.previews.get(made[3].id)
    assert hung is not None and hung.status is PreviewStatus.FAILED
    assert hung.failure_code is PreviewFailure.TIMED_OUT and hung.error_message
    assert predictor(deps).canceled == [made[3].prediction_id]
    answer = status_answer(deps.jobs.get(job.id), deps)  # type: ignore[arg-type]
    assert answer.status is JobStatus.COMPLETED
    assert answer.previews is not None and answer.previews.status is SetStatus.PARTLY_READY
    assert answer.previews.ready == 3 and answer.previews.total == 4
    # The last picture settled: the notice went with the three.
    (notice,) = notices(deps).sent
    assert len(notice.preview_urls) == 3


def test_the_notice_goes_without_the_previews_once_its_bound_has_passed():
    deps = make_deps(status_refresh_seconds=0)
    predictor(deps).mode = "running"
    job = completed(deps)
    assert notices(deps).sent == []
    waited = timedelta(seconds=deps.settings.preview_notice_wait_seconds + 1)
    deps.jobs.rows[job.id]["completed_at"] = datetime.now(UTC) - waited  # type: ignore[attr-defined]
    sweep_all(deps, Deadline(30))
    (notice,) = notices(deps).sent
    assert notice.preview_urls == ()


def _webhook(deps: Deps, prediction: Any, webhook_id: str = "msg_1") -> tuple[dict, bytes]:
    body = json.dumps(prediction.model_dump(mode="json")).encode()
    secret = deps.settings.replicate_webhook_secret
    assert secret is not None
    ts = str(int(datetime.now(UTC).timestamp()))
    signature = webhooks.sign(secret.get_secret_value(), webhook_id, ts, body)
    headers = {"webhook-id": webhook_id, "webhook-timestamp": ts, "webhook-signature": signature}
    return headers, body


def test_duplicate_prediction_webhooks_store_each_picture_once():
    deps = make_deps(status_refresh_seconds=0)
    predictor(deps).mode = "running"
    job = completed(deps)
    p = pictures(deps, job)[0]
    predictor(deps).finish(p.prediction_id)
    headers, body = _webhook(deps, predictor(deps).predictions[p.prediction_id])
    puts = photos(deps).puts
    first = apply_preview_webhook(p.id, headers, body, deps)
    again = apply_preview_webhook(p.id, headers, body, deps)
    assert first.status is again.status is PreviewStatus.READY
    assert photos(deps).puts == puts + 1 and predictor(deps).created == 4


def test_a_webhook_for_another_prediction_is_refused():
    deps = make_deps(status_refresh_seconds=0)
    predictor(deps).mode = "running"
    job = completed(deps)
    first, second = pictures(deps, job)[:2]
    headers, body = _webhook(deps, predictor(deps).predictions[second.prediction_id])
    with raises_status(409):
        apply_preview_webhook(first.id, headers, body, deps)
    with raises_status(404):
        apply_preview_webhook(uuid.uuid4(), headers, body, deps)


def test_deleting_the_version_removes_its_previews_and_cancels_what_runs():
    deps = make_deps(status_refresh_seconds=0)
    owner = uuid.uuid4()
    first = completed(deps, owner)
    # A second version so the first is no longer active and may be deleted on its own.
    twin = deps.twins.get(first.twin_id)  # type: ignore[arg-type]
    assert twin is not None
    predictor(deps).mode = "running"
    caller = Caller(user_id=owner, claims={})
    jpegs = normalise_all(PHOTOS, deps.settings)
    second = create_job_with_photos(caller, VersionPlan("Ember", CUSTOM, twin), jpegs, deps)
    second = start_training(owner, second.id, deps)
    succeed(deps, second)
    get_status(owner, second.id, deps)
    running = pictures(deps, second)
    assert all(p.status is PreviewStatus.PENDING for p in running)
    folder = f"{owner}/previews/{first.id}/"
    assert sum(path.startswith(folder) for path in photos(deps).objects) == 4
    deleted = delete_job(owner, first.id, deps)
    assert deleted.deleted_at is not None
    assert not any(path.startswith(folder) for path in photos(deps).objects)
    assert pictures(deps, first) == []
    assert all(r["prompt"] == "" for r in store(deps).rows.values() if r["job_id"] == first.id)
    # The running ones go with theirs.

    delete_twin(owner, twin.id, deps)
    assert set(predictor(deps).canceled) == {p.prediction_id for p in running}
    assert not any(path.startswith(f"{owner}/previews/") for path in photos(deps).objects)


def test_pictures_on_demand_respect_the_daily_limit_and_a_repeated_request_counts_once():
    deps = make_deps(status_refresh_seconds=0, previews_per_day=6)
    job = completed(deps)
    assert job.twin_id is not None
    rid = uuid.uuid4()
    made = request_previews(
        job.user_id, job.twin_id, PreviewRequest(style="watercolor", count=4, request_id=rid), deps
    )
    assert made.kind is PreviewKind.ON_DEMAND and made.status is SetStatus.READY
    assert all("watercolor painting" in p.prompt for p in made.pictures)
    again = request_previews(
        job.user_id, job.twin_id, PreviewRequest(style="watercolor", count=4, request_id=rid), deps
    )
    assert again.set_id == made.set_id and predictor(deps).created == 8
    with raises_status(429) as refused:
        request_previews(job.user_id, job.twin_id, PreviewRequest(count=3), deps)
    assert "2 left" in refused.value.message
    request_previews(job.user_id, job.twin_id, PreviewRequest(count=2), deps)
    with raises_status(429):
        request_previews(job.user_id, job.twin_id, PreviewRequest(count=1), deps)
    # The completion set is not counted; the twin's answer shows every set, newest first.
    view = get_twin(job.user_id, job.twin_id, deps)
    assert view.previews is not None
    sets = view.previews.of(job.id)
    assert len(sets) == 3 and sets[-1].set_id == completion_set_id(job.id)
    assert sets[1].set_id == made.set_id


def test_concurrent_requests_never_pass_the_daily_limit_together():
    deps = make_deps(status_refresh_seconds=0, previews_per_day=8)
    job = completed(deps)
    assert job.twin_id is not None
    barrier = threading.Barrier(10)
    outcomes: list[int] = []

    def ask() -> None:
        barrier.wait()
        try:
            request_previews(job.user_id, job.twin_id, PreviewRequest(count=2), deps)  # type: ignore[arg-type]
            outcomes.append(200)
        except Exception as exc:
            outcomes.append(getattr(exc, "status", 500))

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [200] * 4 + [429] * 6
    assert predictor(deps).created == 4 + 8


def test_on_demand_needs_a_completed_active_version_and_a_known_style():
    deps = make_deps(status_refresh_seconds=0)
    job = training_job(deps)
    assert job.twin_id is not None
    with raises_status(409):
        request_previews(job.user_id, job.twin_id, PreviewRequest(), deps)
    with raises_status(404):
        request_previews(uuid.uuid4(), job.twin_id, PreviewRequest(), deps)
    done = completed(deps)
    assert done.twin_id is not None
    with raises_status(422):
        request_previews(done.user_id, done.twin_id, PreviewRequest(style="x{trigger}"), deps)
    off = make_deps(status_refresh_seconds=0, previews_per_day=0)
    job_off = completed(off)
    with raises_status(409):
        request_previews(job_off.user_id, job_off.twin_id, PreviewRequest(), off)  # type: ignore[arg-type]


def test_prompt_templates_are_configuration_and_customisation_cannot_break_them():
    assert all(template_problem(t) is None for t in DEFAULT_TEMPLATES)
    assert template_problem("a picture of a fox") is not None  # no {trigger}
    assert template_problem("{trigger} {owner}") is not None  # unknown placeholder
    custom = json.dumps(["{trigger} as a {species} astronaut, {style}"])
    settings = make_settings(preview_prompts=custom, preview_lora_scale=0.8)
    assert settings.preview_templates == ("{trigger} as a {species} astronaut, {style}",)
    with pytest.raises(ConfigError, match="PREVIEW_PROMPTS"):
        make_settings(preview_prompts='["no trigger here"]')
    hostile = {"type": "{trigger}{0}" + "x" * 500, "colors": ["}{"]}
    (text,) = prompts(DEFAULT_TEMPLATES[:1], hostile, "TOK", 1)
    assert "{" not in text and "}" not in text and len(text) < 600
    assert SETTINGS_ENV  # the defaults above are the unit environment's


def test_a_refused_create_is_retried_by_the_sweep_and_never_doubles():
    deps = make_deps(status_refresh_seconds=0)
    from shared.errors import UpstreamError

    predictor(deps).fail_create_with = UpstreamError("Replicate failed")
    job = completed(deps)
    assert all(p.status is PreviewStatus.PENDING for p in pictures(deps, job))
    predictor(deps).fail_create_with = None
    # The claims of the failed attempts hold until they time out.
    sweep_previews(deps, Deadline(30))
    assert predictor(deps).created == 0
    later = datetime.now(UTC) - timedelta(seconds=deps.settings.claim_timeout_seconds + 1)
    for row in store(deps).rows.values():
        row["claimed_at"] = later
    sweep_previews(deps, Deadline(30))
    assert predictor(deps).created == 4
    assert all(p.status is PreviewStatus.READY for p in pictures(deps, job))


def test_the_orphan_sweep_keeps_previews_and_removes_a_copy_no_row_names():
    from shared.services.orphans import sweep_orphans

    deps = make_deps(status_refresh_seconds=0)
    job = completed(deps)
    kept = {p.storage_path for p in pictures(deps, job)}
    stray = f"{job.user_id}/previews/{job.id}/{uuid.uuid4()}.webp"  # a copy whose row went
    photos(deps).objects[stray] = b"RIFF....WEBP"
    sweep_orphans(deps, Deadline(30))
    assert kept <= set(photos(deps).objects) and stray not in photos(deps).objects


def test_an_account_deleted_takes_its_previews_rows_and_pictures():
    from shared.services.erasure import sweep_account_erasures

    deps = make_deps(status_refresh_seconds=0)
    job = completed(deps)
    assert len(pictures(deps, job)) == 4
    deps.jobs.delete_account(job.user_id)  # type: ignore[attr-defined]
    assert store(deps).rows == {}
    sweep_account_erasures(deps, Deadline(30))
    assert not any(p.startswith(f"{job.user_id}/") for p in photos(deps).objects)
