"""The estimate's honesty (issue 18): how far `estimatedCompletion` is from the real end at 10, 50
and 90 % of each training's way, as a fraction of the time still to go; and the largest status
answer with its history.

1. `eta`: trainings replayed one after another through the real progress code on a simulated
   clock (tests/replay.py: the emulator's trainer logs in their recorded shape, read every
   `--every` seconds as a watched status page does), each job's expectation taken from the jobs
   completed before it exactly as the start does (`recent_timelines` + `expected_from`). Every
   timeline differs: boot 20-180 s, each setup phase and the saving +-30-40 %, the trainer's pace
   +-15 % around 1.43 it/s (the reference has no first-party timings; these spreads are ours).
   Beside it, on the same reads, the estimate before issue 18 (`created_at` +
   EXPECTED_TRAINING_SECONDS until a step, then the time since `started_at` x remaining/done).
   The medians leave out the first `--warmup` jobs (too few completed jobs before them);
   `first_job_*` is the very first, which has only the settings' defaults to go on.
2. `status`: one 6000-step training on the local stack, its status read with `?history=1`
   throughout; the largest answer in bytes (goal: under 8 KB).
Run: `python -m bench.eta [--jobs 40] [--warmup 5] [--every 5]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime, timedelta

import httpx

from bench.common import local_stack, record, table
from devstack.sample_photos import make_photo
from shared.domain.eta import RECENT_JOBS, expected_from
from shared.domain.history import MAX_POINTS
from shared.domain.progress import trainer_steps
from shared.domain.training import TrainingInfo
from shared.plumbing.settings import Settings
from tests.fakes import InMemoryJobStore
from tests.replay import T0, Read, Timeline, replay
from tests.unit.helpers import make_settings

SHARES = (0.1, 0.5, 0.9)


def timeline(rng: random.Random, seed: int) -> Timeline:
    def spread(seconds: float, share: float) -> float:
        return seconds * rng.uniform(1 - share, 1 + share)

    return Timeline(
        boot=rng.uniform(20, 180),
        phases={
            "download": spread(90, 0.3),
            "extract": 2,
            "caption": spread(60, 0.3),
            "prepare": spread(40, 0.3),
            "train": 1000 / spread(1.43, 0.15),
            "save": spread(60, 0.4),
        },
        seed=seed,
    )


def legacy_estimate(training: TrainingInfo, now: datetime, settings: Settings) -> datetime:
    """`estimate_completion` before issue 18: setup time counted as training time."""
    steps = trainer_steps(training.logs)
    if steps and steps[0] > 0 and training.started_at:
        done, total = steps
        elapsed = (now - training.started_at).total_seconds()
        return now + timedelta(seconds=elapsed * (total - done) / done)
    begun = training.created_at or now
    return max(begun + timedelta(seconds=settings.expected_training_seconds), now)


def errors_at(
    reads: list[Read], timeline: Timeline, created: datetime, settings: Settings
) -> tuple[list[float], list[float]]:
    """At each share of the way: |estimate - end| / time left, for ours and the legacy one."""
    end = created + timedelta(seconds=timeline.total)
    ours, legacy = [], []
    for share in SHARES:
        read = max((r for r in reads if r.t <= share * timeline.total), key=lambda r: r.t)
        now = created + timedelta(seconds=read.t)
        left = (end - now).total_seconds()
        assert read.job.estimated_completion is not None
        ours.append(abs((read.job.estimated_completion - end).total_seconds()) / left)
        before = legacy_estimate(timeline.training_at(created, read.t), now, settings)
        legacy.append(abs((before - end).total_seconds()) / left)
    return ours, legacy


def replayed(jobs: int, warmup: int, every: float) -> dict[str, float]:
    settings = make_settings()  # EXPECTED_TRAINING_SECONDS at its default, as deployed
    rng = random.Random(18)
    store = InMemoryJobStore()
    ours: list[list[float]] = []
    legacy: list[list[float]] = []
    began = time.perf_counter()
    for k in range(jobs):
        shape = timeline(rng, seed=k)
        created = T0 + timedelta(hours=k)  # one after another: each sees the ones before
        expected = expected_from(store.recent_timelines(RECENT_JOBS), settings)
        reads = replay(shape, settings, expected, every=every, created=created, store=store)
        mine, before = errors_at(reads, shape, created, settings)
        ours.append(mine)
        legacy.append(before)
    figures: dict[str, float] = {
        "jobs": jobs,
        "warmup_jobs": warmup,
        "read_every_seconds": every,
        "replay_seconds": round(time.perf_counter() - began, 1),
    }
    for i, share in enumerate(SHARES):
        key = f"{round(share * 100)}pct"
        later = [errors[i] for errors in ours[warmup:]]
        figures[f"error_at_{key}"] = round(statistics.median(later), 3)
        figures[f"error_at_{key}_p90"] = round(statistics.quantiles(later, n=10)[-1], 3)
        figures[f"legacy_error_at_{key}"] = round(
            statistics.median(errors[i] for errors in legacy[warmup:]), 3
        )
        figures[f"first_job_error_at_{key}"] = round(ours[0][i], 3)
    return figures


def history_bytes() -> dict[str, float]:
    """The largest status answer with its history, over one 6000-step training."""
    with local_stack(train_seconds=20.0, training_steps=6000) as stack:
        _, token = stack.sign_in()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(timeout=60) as http:
            photos = [("photos", (f"p{k}.jpg", make_photo(512, 512, seed=k), "image/jpeg"))
                      for k in range(3)]  # fmt: skip
            upload = http.post(
                stack.url("upload_training_photos"),
                headers=headers,
                data={"fursonaName": "Bench"},
                files=photos,
            ).raise_for_status()
            job_id = upload.json()["jobId"]
            http.post(
                stack.url("start_ai_training"), headers=headers, json={"jobId": job_id}
            ).raise_for_status()
            largest, body = 0, {}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                response = http.get(
                    stack.url("check_training_status"),
                    headers=headers,
                    params={"jobId": job_id, "history": "1"},
                ).raise_for_status()
                largest, body = max(largest, len(response.content)), response.json()
                if body["status"] in ("completed", "failed"):
                    break
                time.sleep(0.5)
    if body.get("status") != "completed":
        raise SystemExit(f"the history training did not complete: {body}")
    return {
        "history_bytes": largest,
        "history_points": len(body["history"]["steps"]),
        "history_max_points": MAX_POINTS,
        "history_training_steps": 6000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between reads")
    args = parser.parse_args()
    eta = replayed(args.jobs, args.warmup, args.every)
    record("eta", eta)
    table(
        "estimatedCompletion vs the real end, |error| / time left (median over the jobs "
        "after the warm-up; legacy: the estimate before issue 18 on the same reads)",
        [(k, str(v)) for k, v in eta.items()],
    )
    status = history_bytes()
    record("status", status, merge=True)
    table("the largest status answer with its history", [(k, str(v)) for k, v in status.items()])


if __name__ == "__main__":
    main()
