"""A training's timeline replayed through the real progress code, on a simulated clock.

Replicate's view of the training at any moment (status, timestamps, and the logs the emulator's
trainer prints in their recorded shape: team reference, next capabilities 3.1) is handed to
`plan_update` and `history_points` at every read, and the changes go through the in-memory job
store, which keeps the database's rules (the phase never goes back, the step never goes down).
Used by the unit tests and by `bench.eta`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.replicate_emulator import trainer as emulated
from shared.domain.eta import Expected, first_estimate
from shared.domain.history import ProgressPoint
from shared.domain.job import Job, JobStatus
from shared.domain.phases import Phase
from shared.domain.progress import history_points, plan_update
from shared.domain.trainer_logs import read_logs
from shared.domain.training import TrainingInfo
from shared.plumbing.settings import Settings
from tests.fakes import InMemoryJobStore

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
VERSION = "flurrty/flurrty-twins:" + "d" * 64


@dataclass(frozen=True)
class Timeline:
    """How long each part of one training takes, in seconds: `boot` while Replicate says
    `starting`, then the trainer's log phases (download, extract, caption, prepare, train, save)."""

    boot: float
    phases: dict[str, float]
    steps: int = 1000
    seed: int = 1

    @property
    def processing(self) -> float:
        return sum(self.phases.values())

    @property
    def total(self) -> float:
        return self.boot + self.processing

    def phase_seconds(self) -> dict[Phase, float]:
        """What each phase a person sees really took."""
        p = self.phases
        return {
            Phase.PREPARING_GPU: self.boot + p["download"],
            Phase.READING_PHOTOS: p["extract"] + p["caption"] + p["prepare"],
            Phase.TRAINING: p["train"],
            Phase.SAVING: p["save"],
        }

    def exactly_expected(self) -> Expected:
        seconds = self.phase_seconds()
        return Expected(
            preparing_gpu=seconds[Phase.PREPARING_GPU],
            reading_photos=seconds[Phase.READING_PHOTOS],
            seconds_per_step=seconds[Phase.TRAINING] / self.steps,
            saving=seconds[Phase.SAVING],
        )

    def logs_at(self, t: float) -> str:
        logs = emulated.TrainerLogs(
            self.seed,
            emulated.ZipFacts.assumed(4),
            {"steps": self.steps},
            emulated.phase_shares(self.phases),
        )
        progress = min(max((t - self.boot) / self.processing, 0.0), 1.0)
        return "".join(line + "\n" for line in logs.lines(progress, self.processing))

    def training_at(self, created: datetime, t: float) -> TrainingInfo:
        """Replicate's training object `t` seconds after it was created."""
        body: dict[str, Any] = {"id": "t1", "created_at": created, "status": "starting"}
        if t >= self.boot:
            body.update(status="processing", started_at=created + timedelta(seconds=self.boot))
            body["logs"] = self.logs_at(t)
        if t >= self.total:
            body.update(
                status="succeeded",
                completed_at=created + timedelta(seconds=self.total),
                output={"version": VERSION},
                metrics={"predict_time": self.processing},
            )
        return TrainingInfo.model_validate(body)


# A realistic run: a minute of boot, the base weights, captions, 1000 steps at about 1.43 it/s,
# a minute of saving (the reference has no first-party timings: these are plausible shares).
REALISTIC = Timeline(
    boot=60,
    phases={"download": 90, "extract": 2, "caption": 60, "prepare": 40, "train": 700, "save": 60},
)


@dataclass
class Read:
    t: float  # seconds after the training was created
    job: Job  # the row after this read
    points: list[ProgressPoint] = field(default_factory=list)  # history this read added


def replay(
    timeline: Timeline,
    settings: Settings,
    expected: Expected,
    *,
    every: float = 5.0,
    created: datetime = T0,
    store: InMemoryJobStore | None = None,
) -> list[Read]:
    """Read the training every `every` seconds until it has succeeded, as refreshes do."""
    store = store or InMemoryJobStore()
    first = TrainingInfo.model_validate({"id": "t1", "status": "starting", "created_at": created})
    job_id = uuid.uuid4()
    store.insert(
        {
            "id": job_id,
            "user_id": uuid.uuid4(),
            "furrsona_name": "Ember",
            "status": JobStatus.PENDING,
            "progress": 20,
        }
    )
    store.update(job_id, {"status": JobStatus.QUEUED, "queued_at": created})
    job = store.update(
        job_id,
        {
            "status": JobStatus.TRAINING,
            "progress": 30,
            "replicate_training_id": "t1",
            "expected_phase_seconds": expected.as_row(),
            "phase_times": {Phase.PREPARING_GPU: created},
            "estimated_completion": first_estimate(first, expected, created, settings),
        },
    )
    assert job is not None
    reads = [Read(0.0, job)]
    t = 0.0
    while job.status is JobStatus.TRAINING:
        t += every
        training = timeline.training_at(created, t)
        reading = read_logs(training.logs)
        now = created + timedelta(seconds=t)
        changes = plan_update(job, training, now, settings, reading)
        points = history_points(job, reading, changes)
        store.add_progress_points(job.id, points)
        moved = store.update(job.id, changes, expect_status=JobStatus.TRAINING)
        assert moved is not None
        job = moved
        reads.append(Read(t, job, points))
    return reads
