"""When a training will be done: expected phase durations, replaced by what is observed.

- Before the first step: each phase is expected to last what it lasted in recently completed jobs
  (the medians of their phase times; the settings' `EXPECTED_TRAINING_SECONDS` split by
  `DEFAULT_SHARES` until there are some). The current phase counts from when it began.
- During training: the remaining steps at the observed pace (the slope of the bar's elapsed time
  over its steps; setup time is not in it), blended in from the expected pace over the first
  `BLEND_SHARE` of the steps, then the expected saving time.
- The estimate moves only when the job deviates from it: a phase that ends early or late moves it
  by exactly that much; a trainer pace unlike the expected one moves it as the steps show it; a
  step overdue moves it with the clock. A job that goes as expected sees a steady countdown.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.domain.phases import Phase
from shared.plumbing.settings import Settings

if TYPE_CHECKING:  # names in signatures only: the start path never reads a log
    from shared.domain.trainer_logs import Bar
    from shared.domain.training import TrainingInfo

# Until some jobs have completed: the share of EXPECTED_TRAINING_SECONDS each phase takes.
DEFAULT_SHARES = {
    Phase.PREPARING_GPU: 0.10,
    Phase.READING_PHOTOS: 0.10,
    Phase.TRAINING: 0.75,
    Phase.SAVING: 0.05,
}
RECENT_JOBS = 20  # completed jobs whose phase times make the expected durations
BLEND_SHARE = 0.05  # of the steps over which the observed pace takes over from the expected


@dataclass(frozen=True)
class FinishedTimeline:
    """When a completed job entered each phase, and its number of steps."""

    phase_times: Mapping[Phase, datetime]
    total_steps: int | None


@dataclass(frozen=True)
class Expected:
    """Expected seconds of each phase; training as seconds per step."""

    preparing_gpu: float
    reading_photos: float
    seconds_per_step: float
    saving: float

    @classmethod
    def defaults(cls, settings: Settings) -> Expected:
        total = settings.expected_training_seconds
        return cls(
            preparing_gpu=total * DEFAULT_SHARES[Phase.PREPARING_GPU],
            reading_photos=total * DEFAULT_SHARES[Phase.READING_PHOTOS],
            seconds_per_step=total * DEFAULT_SHARES[Phase.TRAINING] / settings.training_steps,
            saving=total * DEFAULT_SHARES[Phase.SAVING],
        )

    @classmethod
    def of_row(cls, row: Mapping[str, float] | None, settings: Settings) -> Expected:
        """The job's stored expectation, or the defaults for a job that has none."""
        defaults = asdict(cls.defaults(settings))
        return cls(**{key: float((row or {}).get(key, value)) for key, value in defaults.items()})

    def as_row(self) -> dict[str, float]:
        return {key: round(value, 3) for key, value in asdict(self).items()}

    def before(self, phase: Phase, steps: int) -> float:
        """Seconds expected from the start of `phase` to the end of the job (all of them for a
        phase before the training's)."""
        spans = [
            (Phase.PREPARING_GPU, self.preparing_gpu),
            (Phase.READING_PHOTOS, self.reading_photos),
            (Phase.TRAINING, self.seconds_per_step * steps),
            (Phase.SAVING, self.saving),
        ]
        names = [name for name, _ in spans]
        start = names.index(phase) if phase in names else 0
        return sum(seconds for _, seconds in spans[start:])


def _spans(timeline: FinishedTimeline) -> dict[str, float]:
    """Seconds spent in each phase whose start and end are both known."""
    times = timeline.phase_times
    ends = {
        Phase.PREPARING_GPU: Phase.READING_PHOTOS,
        Phase.READING_PHOTOS: Phase.TRAINING,
        Phase.TRAINING: Phase.SAVING,
        Phase.SAVING: Phase.DONE,
    }
    spans: dict[str, float] = {}
    for phase, end in ends.items():
        if phase in times and end in times:
            spans[phase.value] = max(0.0, (times[end] - times[phase]).total_seconds())
    training = spans.pop(Phase.TRAINING.value, None)
    if training is not None and timeline.total_steps:
        spans["seconds_per_step"] = training / timeline.total_steps
    return spans


def expected_from(recent: Sequence[FinishedTimeline], settings: Settings) -> Expected:
    """The medians of the recent jobs' phase durations; the defaults where none is known."""
    observed: dict[str, list[float]] = {}
    for timeline in recent:
        for key, seconds in _spans(timeline).items():
            observed.setdefault(key, []).append(seconds)
    defaults = Expected.defaults(settings)
    return Expected(
        **{
            key: statistics.median(observed[key]) if observed.get(key) else value
            for key, value in asdict(defaults).items()
        }
    )


def observed_pace(bars: Sequence[Bar]) -> float | None:
    """Seconds per step: the least-squares slope of the bar's elapsed time over its steps (tqdm
    shows whole seconds, and the first step may be slow: both fall out of a slope), else
    tqdm's own rate."""
    timed = [(bar.step, bar.elapsed) for bar in bars if bar.step >= 1 and bar.elapsed is not None]
    if len(timed) >= 2:
        mean_step = statistics.fmean(step for step, _ in timed)
        mean_elapsed = statistics.fmean(elapsed for _, elapsed in timed)
        spread = sum((step - mean_step) ** 2 for step, _ in timed)
        slope = sum((s - mean_step) * (e - mean_elapsed) for s, e in timed) / spread
        if slope > 0:
            return slope
    rate = bars[-1].rate if bars else None
    return 1 / rate if rate else None


def _pace(bars: Sequence[Bar], expected: Expected) -> float:
    """Seconds per step: the observed pace, blended in from the expected one."""
    observed = observed_pace(bars)
    if observed is None:
        return expected.seconds_per_step
    last = bars[-1]
    weight = min(1.0, last.step / max(1.0, last.total * BLEND_SHARE))
    return (1 - weight) * expected.seconds_per_step + weight * observed


def estimate(
    phase: Phase,
    entered: Mapping[Phase, datetime],
    bars: Sequence[Bar],
    total_steps: int,
    expected: Expected,
    now: datetime,
) -> datetime:
    """When the job should be done (never before `now`); `bars`: the trainer's, while it trains."""
    if phase is Phase.TRAINING and bars and Phase.TRAINING in entered:
        bar = bars[-1]
        pace = _pace(bars, expected)
        reached = entered[Phase.TRAINING] + timedelta(seconds=bar.elapsed or 0.0)
        # The next step is due one pace after this one; past that, the job is late by the rest.
        overdue = max(0.0, (now - reached).total_seconds() - pace)
        remaining = (bar.total - bar.step) * pace + expected.saving
        return max(now, reached + timedelta(seconds=overdue + remaining))
    began = entered.get(phase, now)
    current = {
        Phase.PREPARING_GPU: expected.preparing_gpu,
        Phase.READING_PHOTOS: expected.reading_photos,
        Phase.TRAINING: expected.seconds_per_step * total_steps,
        Phase.SAVING: expected.saving,
    }.get(phase, 0.0)
    # The current phase ends when expected, or now if it runs late; then the rest as expected.
    phase_end = max(now, began + timedelta(seconds=current))
    rest = expected.before(phase, total_steps) - current
    return phase_end + timedelta(seconds=rest)


def first_estimate(
    training: TrainingInfo, expected: Expected, now: datetime, settings: Settings
) -> datetime:
    """The estimate of a training just created: every phase as `expected`."""
    began = {Phase.PREPARING_GPU: training.created_at or now}
    return estimate(Phase.PREPARING_GPU, began, [], settings.training_steps, expected, now)
