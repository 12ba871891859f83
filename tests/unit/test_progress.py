from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from shared.domain.job import Job, JobStatus
from shared.domain.progress import plan_update, readable_failure, trainer_steps, training_progress
from shared.domain.training import TrainingInfo
from tests.unit.helpers import make_settings

LOGS = "\n".join(
    [
        "Extracted 4 files from zip to input_images",
        "100%|██████████| 12/12 [00:00<00:00, 400.00it/s]",
        "Caching latents: 100%|██████████| 4/4 [00:02<00:00,  1.90it/s]",
        "flux_train_replicate:  10%|█         | 100/1000 [01:10<10:30,  1.43it/s, lr: 4.0e-04 loss: 3.4e-01]",
        "flux_train_replicate:  45%|████▌     | 450/1000 [05:12<06:21,  1.44it/s, lr: 4.0e-04 loss: 3.456e-01]",
    ]
)


def test_last_trainer_bar_wins_and_unlabelled_bars_are_ignored():
    assert trainer_steps(LOGS) == (450, 1000)
    assert trainer_steps("100%|██████████| 12/12 [00:00<00:00]") is None
    assert trainer_steps(None) is None


def test_carriage_return_redraws_are_read():
    logs = (
        "flux_train_replicate:   1%|          | 10/1000 [00:07<11:33,  1.43it/s]\r"
        "flux_train_replicate:   2%|▏         | 20/1000 [00:14<11:26,  1.43it/s]"
    )
    assert trainer_steps(logs) == (20, 1000)


@pytest.mark.parametrize(
    ("done", "total", "expected"), [(0, 1000, 30), (500, 1000, 62), (1000, 1000, 95)]
)
def test_progress_maps_steps_into_30_to_95(done, total, expected):
    assert training_progress(done, total) == expected


def _job(**fields) -> Job:
    now = datetime.now(UTC)
    base = dict(
        id=uuid4(),
        user_id=uuid4(),
        furrsona_name="Ember",
        status="training",
        progress=30,
        created_at=now,
        updated_at=now,
        replicate_training_id="t1",
    )
    base.update(fields)
    return Job.model_validate(base)


def _training(**fields) -> TrainingInfo:
    base = dict(id="t1", status="processing", created_at=datetime.now(UTC) - timedelta(minutes=2))
    base.update(fields)
    return TrainingInfo.model_validate(base)


def test_processing_raises_progress_and_estimates_from_step_rate():
    now = datetime.now(UTC)
    # Six minutes of setup before the first step: not part of the pace.
    started = now - timedelta(seconds=312 + 360)
    settings = make_settings(expected_training_seconds=600)
    changes = plan_update(_job(), _training(logs=LOGS, started_at=started), now, settings)
    assert changes["progress"] == training_progress(450, 1000)
    assert (changes["step"], changes["total_steps"]) == (450, 1000)
    eta = changes["estimated_completion"]
    # 450 steps in the bar's 312 s, 550 remain: 381 s, then the expected 30 s of saving.
    assert timedelta(seconds=409) < eta - now < timedelta(seconds=413)


def test_progress_never_goes_down():
    changes = plan_update(
        _job(progress=80), _training(logs=LOGS), datetime.now(UTC), make_settings()
    )
    assert "progress" not in changes


def test_success_completes_with_version_cost_and_time():
    settings = make_settings(training_price_per_second=0.002)
    output = {
        "version": "flurrty/flurrty-twins:" + "b" * 64,
        "weights": "https://x/trained_model.tar",
    }
    changes = plan_update(
        _job(),
        _training(status="succeeded", output=output, metrics={"predict_time": 500.0}),
        datetime.now(UTC),
        settings,
    )
    assert changes["status"] is JobStatus.COMPLETED
    assert changes["progress"] == 100
    assert changes["replicate_model_version"] == output["version"]
    assert changes["cost_usd"] == 1.0


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (
            "failed",
            "input_images must be a zip file",
            "The training failed on Replicate: input_images must be a zip file",
        ),
        ("canceled", None, "The training was canceled on Replicate before it finished"),
        ("aborted", None, "Replicate stopped the training before it began"),
        (
            "failed",
            'Prediction input failed validation: {"detail":[{"loc":["body","input","input_images"],'
            '"msg":"\'\' is not a valid URL scheme.","type":"value_error"}]}',
            "The trainer refused our training settings (input_images: '' is not a valid URL "
            "scheme), so nothing was trained.",
        ),
    ],
)
def test_failures_become_readable_messages(status, error, expected):
    training = _training(status=status, error=error)
    assert readable_failure(training).startswith(expected)
    changes = plan_update(_job(), training, datetime.now(UTC), make_settings())
    assert changes["status"] is JobStatus.FAILED


def test_final_jobs_are_not_moved_again():
    job = _job(status="completed", progress=100, replicate_model_version="a/b:c")
    changes = plan_update(
        job, _training(status="failed", error="late"), datetime.now(UTC), make_settings()
    )
    assert "status" not in changes


def test_a_failed_training_still_records_its_billed_time_and_cost():
    changes = plan_update(
        _job(),
        _training(status="canceled", metrics={"predict_time": 100.0}),
        datetime.now(UTC),
        make_settings(training_price_per_second=0.002),
    )
    assert changes["status"] is JobStatus.FAILED
    assert changes["predict_time_seconds"] == 100.0 and changes["cost_usd"] == 0.2


def test_a_step_based_estimate_survives_an_update_without_steps():
    now = datetime.now(UTC)
    estimate = now + timedelta(seconds=90)
    training_row = dict(phase="training", step=450, total_steps=1000)
    late_start = _training(logs="", started_at=now - timedelta(seconds=30))
    job = _job(estimated_completion=estimate, **training_row)
    changes = plan_update(job, late_start, now, make_settings())
    assert "estimated_completion" not in changes
    assert "phase" not in changes and "step" not in changes  # and nothing went back
    # A passed estimate is replaced, so the person never sees a time in the past.
    job = _job(estimated_completion=now - timedelta(seconds=5), **training_row)
    stale = plan_update(job, late_start, now, make_settings())
    assert stale["estimated_completion"] > now


def test_the_estimate_converges_as_steps_progress():
    # A run whose first step comes after 60 s of setup, then 1 step/s for 1000 steps, 30 s of
    # saving; the defaults expect 0.45 s per step.
    started = datetime.now(UTC)
    finish = started + timedelta(seconds=1090)
    settings = make_settings(expected_training_seconds=600)
    job, errors = _job(), []
    for done in (10, 30, 400, 950):
        now = started + timedelta(seconds=60 + done)
        logs = (
            f"flux_train_replicate:  {done // 10}%|#| {done}/1000 "
            f"[{done // 60:02d}:{done % 60:02d}<00:00,  1.00it/s, lr: 4.0e-04 loss: 3.1e-01]"
        )
        changes = plan_update(job, _training(logs=logs, started_at=started), now, settings)
        job = job.model_copy(update=changes)
        errors.append(abs((changes["estimated_completion"] - finish).total_seconds()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1 < errors[0] / 10
