"""Webhook latency (issue 6): from the emulator finishing a training to the job's row reading
`completed`, with Replicate's webhooks and without them (the schedule alone).

Side by side in one run, on one local stack whose schedule fires every `--schedule` seconds in
both modes (as in AWS, where the sweep runs whatever the webhooks do): first with webhooks, then
with the emulator's webhooks switched off. Training lengths are spread over one schedule period so
the ends fall at every point of it. Nobody asks for the status (a status call reads Replicate
itself); the rows are watched straight in Postgres every 10 ms, and each end is the training's
`completed_at` on the emulator (the same wall clock).
Run: `python -m bench.webhook_latency [--jobs 6] [--schedule 3]`.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import psycopg

from bench.common import local_stack, median, record, table
from devstack.sample_photos import make_photo
from devstack.stack import LocalStack

BOOT_SECONDS = 0.2
SHORTEST_TRAINING = 1.0
WATCH_INTERVAL = 0.01
# The sweep's period in AWS (template.yaml, SweepScheduleExpression's default).
AWS_SCHEDULE_SECONDS = 60


def start_jobs(stack: LocalStack, count: int, schedule: float, trainings: dict[str, str]) -> None:
    """`count` jobs started over HTTP into `trainings` (job id -> training id); their trainings
    end spread over one schedule period."""
    assert stack.pg is not None and stack.replicate is not None
    _, token = stack.sign_in()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=60) as http:
        for i in range(count):
            photos = [
                ("photos", (f"p{k}.jpg", make_photo(512, 512, seed=i * 10 + k), "image/jpeg"))
                for k in range(3)
            ]
            upload = http.post(
                stack.url("upload_training_photos"),
                headers=headers,
                data={"fursonaName": f"Bench {i}"},
                files=photos,
            ).raise_for_status()
            job_id = upload.json()["jobId"]
            started = http.post(
                stack.url("start_ai_training"), headers=headers, json={"jobId": job_id}
            ).raise_for_status()
            training_id = started.json()["trainingId"]
            stack.replicate.set_timing(
                training_id, train_seconds=SHORTEST_TRAINING + i * schedule / count
            )
            trainings[job_id] = training_id


def watch_completions(
    stack: LocalStack, trainings: dict[str, str], all_started: threading.Event, timeout: float
) -> dict[str, float]:
    """Wall-clock time at which each job's row was first seen `completed` (jobs are watched from
    the moment they are started, while the others are still being started)."""
    assert stack.pg is not None
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    with psycopg.connect(stack.pg.dsn(), autocommit=True) as db:
        while time.monotonic() < deadline:
            job_ids = list(trainings)
            if all_started.is_set() and len(seen) == len(job_ids):
                return seen
            rows = db.execute(
                "select id::text from ai_training_jobs where id = any(%s::uuid[]) "
                "and status = 'completed'",
                (job_ids,),
            ).fetchall()
            now = time.time()
            for (job_id,) in rows:
                seen.setdefault(job_id, now)
            time.sleep(WATCH_INTERVAL)
    raise SystemExit(f"{len(trainings) - len(seen)} jobs never read completed in {timeout:.0f} s")


def latencies_ms(stack: LocalStack, count: int, schedule: float, webhooks: bool) -> list[float]:
    emulator = stack.replicate
    assert emulator is not None
    emulator.webhooks_enabled = webhooks
    trainings: dict[str, str] = {}
    all_started = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        watching = pool.submit(watch_completions, stack, trainings, all_started, schedule * 4 + 60)
        try:
            start_jobs(stack, count, schedule, trainings)
        finally:
            all_started.set()
        completed_at = watching.result()
    out = []
    for job_id, training_id in trainings.items():
        ended = datetime.fromisoformat(emulator.training(training_id)["completed_at"]).timestamp()
        out.append((completed_at[job_id] - ended) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=6, help="trainings per mode")
    parser.add_argument("--schedule", type=float, default=3.0, help="sweep period, seconds")
    args = parser.parse_args()
    with local_stack(
        schedule_seconds=args.schedule, boot_seconds=BOOT_SECONDS, train_seconds=60.0
    ) as stack:
        webhook = latencies_ms(stack, args.jobs, args.schedule, webhooks=True)
        schedule_only = latencies_ms(stack, args.jobs, args.schedule, webhooks=False)
    figures = {
        "jobs_per_mode": args.jobs,
        "schedule_seconds": args.schedule,
        "webhook_median_ms": round(median(webhook), 1),
        "webhook_max_ms": round(max(webhook), 1),
        "schedule_only_median_ms": round(median(schedule_only), 1),
        "schedule_only_max_ms": round(max(schedule_only), 1),
        "ratio_schedule_only_to_webhook_median": round(median(schedule_only) / median(webhook), 1),
        "aws_schedule_seconds": AWS_SCHEDULE_SECONDS,
    }
    record("webhook_latency", figures)
    table(
        f"finished training -> row `completed`: webhooks vs. the schedule alone "
        f"(every {args.schedule:g} s here, every {AWS_SCHEDULE_SECONDS} s in AWS)",
        [(k, str(v)) for k, v in figures.items()],
    )


if __name__ == "__main__":
    main()
