"""Phases, the estimate and the history on logs in their recorded shape (team reference:
Replicate 6.3, next capabilities 3.1): literal lines for the edge cases, whole runs from the
emulator's trainer replayed on a simulated clock (tests/replay.py)."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from shared.contract.status import StatusResponse
from shared.domain.eta import Expected, FinishedTimeline, expected_from, observed_pace
from shared.domain.history import MAX_POINTS, ProgressPoint
from shared.domain.job import Job
from shared.domain.phases import TRAINING_PHASES, Phase
from shared.domain.progress import plan_update, trainer_steps
from shared.domain.trainer_logs import read_logs
from shared.domain.training import TrainingInfo
from tests.replay import REALISTIC, T0, Timeline, replay
from tests.unit.helpers import make_settings

SETTINGS = make_settings(expected_training_seconds=900)
RUN = REALISTIC

BEFORE_TRAINING = [
    "Turning gradient checkpointing on and quantizing base model, GPU has less than 100 GB of memory",
    "Downloaded base weights in 27.63 seconds",
    "Extracted 4 files from zip to input_images",
    "downloading to:  liuhaotian/llava-v1.5-13b",
    "Caption for input_images/b.jpg: A portrait photo of a smiling person, plain background.",
    "Starting train job",
    "Dataset: input_images",
    # ai-toolkit's bars before the trainer's: file lists and latent caching, no label of ours.
    "  0%|          | 0/4 [00:00<?, ?it/s]",
    "100%|██████████| 4/4 [00:00<00:00, 1912.59it/s]",
    "Caching latents:  50%|█████     | 2/4 [00:00<00:00,  6.14it/s]",
    "Caching latents: 100%|██████████| 4/4 [00:00<00:00,  6.02it/s]",
    "Generating baseline samples before training",
]
TRAINER_BARS = [
    "flux_train_replicate:   0%|          | 0/1000 [00:00<?, ?it/s]",
    "flux_train_replicate:   0%|          | 1/1000 [00:01<16:39,  1.00s/it]",
    "flux_train_replicate:   0%|          | 1/1000 [00:01<16:39,  1.00s/it, lr: 4.0e-04 loss: 4.012e-01]",
    "flux_train_replicate:   0%|          | 2/1000 [00:02<12:54,  1.29it/s, lr: 4.0e-04 loss: 3.987e-01]",
]
DONE_BAR = "flux_train_replicate: 100%|██████████| 1000/1000 [11:40<00:00,  1.43it/s, lr: 4.0e-04 loss: 2.61e-01]"
TAR_LISTING = [
    "Saved to output/flux_train_replicate/flux_train_replicate.safetensors",
    "output/flux_train_replicate/",
    "output/flux_train_replicate/lora.safetensors",
]


def logs(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


@pytest.mark.parametrize(
    ("shown", "phase", "step"),
    [
        ([], None, None),
        (BEFORE_TRAINING[:2], Phase.PREPARING_GPU, None),
        (BEFORE_TRAINING[:3], Phase.READING_PHOTOS, None),
        (BEFORE_TRAINING, Phase.READING_PHOTOS, None),  # the unlabelled bars are not training
        (BEFORE_TRAINING + TRAINER_BARS[:1], Phase.TRAINING, 0),
        (BEFORE_TRAINING + TRAINER_BARS, Phase.TRAINING, 2),
        (BEFORE_TRAINING + TRAINER_BARS + [DONE_BAR], Phase.SAVING, 1000),
        (BEFORE_TRAINING + TRAINER_BARS + [DONE_BAR] + TAR_LISTING, Phase.SAVING, 1000),
    ],
)
def test_the_logs_say_which_phase_the_trainer_is_in(
    shown: list[str], phase: Phase | None, step: int | None
) -> None:
    reading = read_logs(logs(*shown))
    assert reading.phase is phase
    assert (reading.last.step if reading.last else None) == step


def test_a_bar_is_read_whole_with_its_pace_and_loss() -> None:
    reading = read_logs(logs(*BEFORE_TRAINING, *TRAINER_BARS))
    assert reading.download_seconds == 27.63
    assert reading.last is not None
    assert (reading.last.elapsed, reading.last.rate, reading.last.loss) == (2, 1.29, 0.3987)
    # The step's second redraw (with its postfix) is the one kept.
    assert [bar.loss for bar in reading.bars_since(1)] == [0.4012, 0.3987]
    slow = read_logs(
        "flux_train_replicate:  83%|████████▎ | 2482/3000 [1:03:27<09:04,  1.05s/it, lr: 4.0e-04 loss: 2.472e-01]"
    ).last
    assert slow is not None and slow.elapsed == 3807 and slow.rate == pytest.approx(1 / 1.05)


@pytest.mark.parametrize(
    "cut",
    [
        "flux_train_replicate:  45%|████▌     | 450/10",  # the total itself cut short
        "flux_train_replicate:  45%|████▌     | 450/1000 [05:1",
        "flux_train_replicate:  45%|████▌     | 450/1000 [05:12<06:21,  1.44it/s, lr: 4.0e-04 los",
        "flux_train_replica",
    ],
)
def test_a_line_cut_off_mid_way_is_left_for_the_next_read(cut: str) -> None:
    whole = "flux_train_replicate:  45%|████▌     | 449/1000 [05:11<06:22,  1.44it/s, lr: 4.0e-04 loss: 3.1e-01]"
    reading = read_logs(logs(*BEFORE_TRAINING, whole) + cut)
    assert reading.last is not None and (reading.last.step, reading.last.total) == (449, 1000)
    assert reading.phase is Phase.TRAINING  # a cut `450/10` is not "10 of 10, saving"
    assert trainer_steps(logs(*BEFORE_TRAINING, whole) + cut) == (449, 1000)


def test_phases_come_in_order_never_back_and_at_the_trainers_own_times() -> None:
    seconds = RUN.phase_seconds()
    for every in (5.0, 60.0):  # watched, or only swept once a minute
        reads = replay(RUN, SETTINGS, RUN.exactly_expected(), every=every)
        phases = [read.job.phase for read in reads]
        order = list(dict.fromkeys(phases))
        assert order[-1] is Phase.DONE
        assert [p for p in order if p in TRAINING_PHASES] == sorted(
            [p for p in order if p in TRAINING_PHASES], key=TRAINING_PHASES.index
        )
        steps = [read.job.step or 0 for read in reads]
        assert steps == sorted(steps) and steps[-1] == 1000
        times = reads[-1].job.phase_times
        began = T0
        for phase in TRAINING_PHASES:
            # Placed by Replicate's timestamps and the trainer's clocks, not by when we looked
            # (tqdm's whole seconds: within a second).
            if every == 5.0 or phase is not Phase.SAVING:
                assert abs((times[phase] - began).total_seconds()) <= 1.0, (every, phase)
            began += timedelta(seconds=seconds[phase])
        assert times[Phase.DONE] == T0 + timedelta(seconds=RUN.total)


def test_a_late_view_of_the_training_never_moves_the_phase_back() -> None:
    reads = replay(RUN, SETTINGS, RUN.exactly_expected())
    training = next(
        read.job for read in reads if read.job.phase is Phase.TRAINING and read.job.step
    )
    late_start = RUN.training_at(T0, RUN.boot + 1)  # the `start` webhook, delivered late
    changes = plan_update(training, late_start, T0 + timedelta(seconds=300), SETTINGS)
    assert "phase" not in changes and "step" not in changes and "phase_times" not in changes


def estimates(
    timeline: Timeline, expected: Expected, every: float = 5.0
) -> list[tuple[float, float]]:
    """(read time, the estimate's error against the true end in seconds) while it trains."""
    end = T0 + timedelta(seconds=timeline.total)
    return [
        (read.t, (read.job.estimated_completion - end).total_seconds())
        for read in replay(timeline, SETTINGS, expected, every=every)
        if read.job.estimated_completion is not None
    ]


def test_a_job_that_goes_as_expected_counts_down_steadily() -> None:
    errors = [error for _, error in estimates(RUN, RUN.exactly_expected())]
    assert len(errors) > 150
    assert max(abs(error) for error in errors) <= 3.0  # tqdm's whole seconds, no more


def test_a_late_phase_moves_the_estimate_by_its_lateness_and_never_faster_than_the_clock() -> None:
    late = Timeline(boot=RUN.boot, phases={**RUN.phases, "caption": 150})  # 90 s longer
    seen = estimates(late, RUN.exactly_expected())
    moves = [(b - a, later - earlier) for (a, earlier), (b, later) in itertools.pairwise(seen)]
    assert all(move <= elapsed + 1.0 for elapsed, move in moves)
    assert seen[0][1] == pytest.approx(-90, abs=1)  # expected as the others were
    assert abs(seen[-1][1]) <= 3.0  # and moved by exactly the lateness


def test_an_early_phase_moves_the_estimate_earlier_by_the_time_saved_at_once() -> None:
    early = Timeline(boot=20, phases=RUN.phases)  # the GPU was ready 40 s sooner
    seen = estimates(early, RUN.exactly_expected())
    assert seen[0][1] == pytest.approx(40, abs=1)
    jumps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(seen)]
    assert min(jumps) == pytest.approx(-40, abs=1.5)  # the read that saw reading_photos begin
    assert sorted(jumps)[1] > -3.5  # and no other move beyond tqdm's rounding
    assert abs(seen[-1][1]) <= 3.0


def test_a_slower_trainer_moves_the_estimate_one_way_onto_the_real_end() -> None:
    slow = Timeline(boot=RUN.boot, phases={**RUN.phases, "train": 1400})  # half the pace
    seen = estimates(slow, RUN.exactly_expected())
    in_training = [(t, error) for t, error in seen if t > 252 + 1400 * 0.05]
    assert all(abs(error) <= 3.0 for _, error in in_training)  # past the blend: the real pace
    errors = [error for _, error in seen]
    assert all(b >= a - 3.0 for a, b in itertools.pairwise(errors))  # later only, never back


def test_a_stalled_trainer_moves_the_estimate_with_the_clock() -> None:
    reads = replay(RUN, SETTINGS, RUN.exactly_expected())
    read = next(r for r in reads if (r.job.step or 0) >= 300)
    frozen = RUN.training_at(T0, read.t)  # the logs stop growing from here
    at = T0 + timedelta(seconds=read.t)
    before = plan_update(read.job, frozen, at, SETTINGS)["estimated_completion"]
    stalled = plan_update(read.job, frozen, at + timedelta(seconds=60), SETTINGS)
    # The next step was due one pace (0.7 s) after the last: late by the rest of the minute.
    moved = (stalled["estimated_completion"] - before).total_seconds()
    assert 58 <= moved <= 60


def test_the_pace_is_the_slope_of_the_bar_not_setup_time() -> None:
    bars = read_logs(RUN.logs_at(RUN.boot + 600)).sample(100)
    assert observed_pace(bars) == pytest.approx(0.7, rel=0.01)  # 700 s / 1000 steps


def test_expected_durations_are_the_recent_medians_or_the_defaults() -> None:
    def timeline(prep: float, read: float, train: float, save: float | None) -> FinishedTimeline:
        marks = [prep, read, train, save]
        times, at = {}, T0
        for phase, seconds in zip(TRAINING_PHASES, marks, strict=True):
            times[phase] = at
            if seconds is None:
                break
            at += timedelta(seconds=seconds)
        else:
            times[Phase.DONE] = at
        return FinishedTimeline(times, 1000)

    recent = [timeline(100, 60, 700, 30), timeline(140, 80, 900, 50), timeline(120, 70, 800, None)]
    expected = expected_from(recent, SETTINGS)
    assert expected == Expected(120, 70, 0.8, 40)
    defaults = expected_from([], SETTINGS)
    assert defaults == Expected.defaults(SETTINGS) == Expected(90, 90, 0.675, 45)
    assert Expected.of_row(expected.as_row(), SETTINGS) == expected
    assert Expected.of_row(None, SETTINGS) == defaults


def test_history_is_at_most_200_points_the_same_however_often_it_is_read() -> None:
    long_run = Timeline(boot=RUN.boot, phases={**RUN.phases, "train": 1400}, steps=2000)
    histories = []
    for every in (10.0, 60.0, 3600.0):  # watched; swept; read once, after the end
        points = [p for read in replay(long_run, SETTINGS, RUN.exactly_expected(), every=every)
                  for p in read.points]  # fmt: skip
        histories.append(points)
    dense, sparse, once = histories
    assert len(dense) == MAX_POINTS
    assert [p.bucket for p in dense] == list(range(MAX_POINTS))
    assert [p.step for p in dense] == [10 * (b + 1) for b in range(MAX_POINTS)]
    # The same points, but for where the bar's whole seconds put the training's start.
    assert [replace(p, observed_at=T0) for p in sparse] == [
        replace(p, observed_at=T0) for p in dense
    ]
    assert all(
        abs((a.observed_at - b.observed_at).total_seconds()) <= 1 for a, b in zip(sparse, dense)
    )
    assert once == []  # a training first seen finished cannot be placed on the clock
    began = T0 + timedelta(seconds=252)
    assert all(abs((p.observed_at - began).total_seconds() - p.step * 0.7) <= 1.5 for p in dense)
    losses = [p.loss or 0.0 for p in dense]
    assert all(p.loss is not None for p in dense)
    # Each point is the mean of its 10 noisy steps: the curve falls.
    assert sum(losses[:20]) > sum(losses[-20:])


def test_a_short_training_has_a_point_per_step() -> None:
    tiny = Timeline(boot=RUN.boot, phases={**RUN.phases, "train": 30}, steps=3)
    points = [
        p for read in replay(tiny, SETTINGS, RUN.exactly_expected(), every=1.0) for p in read.points
    ]
    assert [p.step for p in points] == [1, 2, 3]
    assert len({p.bucket for p in points}) == 3


def test_a_status_answer_with_a_full_history_stays_under_8_kb() -> None:
    # The longest numbers each field can hold: six digits of seconds, 6000 steps.
    began = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    points = [
        ProgressPoint(b, 6000 - b, began + timedelta(seconds=359_999.4 - b), 0.123456789, 0.0123456)
        for b in range(MAX_POINTS)
    ]
    job = Job.model_validate(
        {
            "id": uuid4(), "user_id": uuid4(), "furrsona_name": "Ember", "status": "training",
            "progress": 94, "created_at": began, "updated_at": began, "phase": "training",
            "step": 5999, "total_steps": 6000, "phase_times": {"training": began},
            "estimated_completion": began, "error_message": "x" * 500,
        }
    )  # fmt: skip
    body = StatusResponse.of(job, None, None, points).model_dump_json(by_alias=True)
    assert len(body.encode()) < 8 * 1024, len(body)
    history = json.loads(body)["history"]
    assert len(history["seconds"]) == len(history["steps"]) == len(history["loss"]) == MAX_POINTS
    assert history["loss"][0] == 0.1235 and history["stepsPerSecond"][0] == 0.0123


def test_the_first_estimate_before_a_training_reports_anything() -> None:
    created = TrainingInfo.model_validate({"id": "t1", "status": "starting", "created_at": T0})
    job = Job.model_validate(
        {
            "id": uuid4(), "user_id": uuid4(), "furrsona_name": "Ember", "status": "training",
            "progress": 30, "created_at": T0, "updated_at": T0,
            "expected_phase_seconds": RUN.exactly_expected().as_row(),
        }
    )  # fmt: skip
    changes = plan_update(job, created, T0 + timedelta(seconds=5), SETTINGS)
    assert changes["phase"] is Phase.PREPARING_GPU
    assert changes["estimated_completion"] == T0 + timedelta(seconds=RUN.total)
