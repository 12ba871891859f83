"""A job's progress history: at most `MAX_POINTS` points, one per 1/`MAX_POINTS` of its steps.

A step belongs to bucket `(step - 1) * MAX_POINTS // total`; a bucket's point is written once,
when the trainer has passed its last step, from the logs (which hold every step): the time and
pace of that last step and the bucket's mean loss (the raw per-step loss is noisy). Points come
from the logs, not from our reads, so a job read once a minute has the same history as one
watched every second, and a repeated write of a bucket changes nothing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the readings are handed in: whoever reads the logs loads the reader
    from shared.domain.trainer_logs import Bar, LogReading

MAX_POINTS = 200


@dataclass(frozen=True)
class ProgressPoint:
    bucket: int
    step: int
    observed_at: datetime
    loss: float | None
    steps_per_second: float | None


def bucket_of(step: int, total: int) -> int:
    return (step - 1) * MAX_POINTS // total


def last_step_of(bucket: int, total: int) -> int:
    return ((bucket + 1) * total - 1) // MAX_POINTS + 1


def first_step_of(bucket: int, total: int) -> int:
    return last_step_of(bucket - 1, total) + 1 if bucket > 0 else 1


def new_points(
    reading: LogReading, after_step: int, training_began: datetime
) -> list[ProgressPoint]:
    """The points of the buckets the trainer completed since it was at `after_step` (the step
    the row had): each from all of its bucket's steps."""
    if reading.last is None or reading.last.step <= after_step:
        return []
    total, reached = reading.last.total, reading.last.step
    first_open = bucket_of(after_step + 1, total)  # the first bucket not complete before
    grouped: dict[int, list[Bar]] = {}
    for bar in reading.bars_since(first_step_of(first_open, total)):
        if bar.step >= 1 and bar.total == total:
            grouped.setdefault(bucket_of(bar.step, total), []).append(bar)
    points = []
    for bucket, members in sorted(grouped.items()):
        if last_step_of(bucket, total) > reached:
            continue  # still filling
        timed = [bar for bar in members if bar.elapsed is not None]
        if not timed:
            continue  # a bar shape without timings: nothing to place on the clock
        end = timed[-1]
        losses = [bar.loss for bar in members if bar.loss is not None]
        points.append(
            ProgressPoint(
                bucket=bucket,
                step=end.step,
                observed_at=training_began + timedelta(seconds=end.elapsed or 0.0),
                loss=statistics.fmean(losses) if losses else None,
                steps_per_second=end.rate,
            )
        )
    return points
