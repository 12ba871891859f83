"""Sweep scale: N active trainings (1,000; 10,000 for batch training), every Replicate answer
delayed by 100 ms. Goal at 10,000: one sweep invocation within 60 s, at most 1.0 Replicate call
per job.

Side by side in one run: the real sweep over all N jobs, and the same sweep with concurrency 1
over a sample, extrapolated to N (what polling them one by one costs). Figures under
`sweep_<N>` in bench/results.json.
Run: `python -m bench.sweep_scale [--jobs 1000] [--latency 0.1]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import psycopg

from bench.common import local_stack, record, table
from devstack.schema import create_user
from devstack.stack import DESTINATION_NAME, LocalStack
from shared import bootstrap
from shared.plumbing.deadline import Deadline
from shared.services.deps import Deps
from shared.services.sweep import sweep

TRAINER_ROUTES = ("/v1/trainings/{id}", "/v1/trainings")


def seed_jobs(stack: LocalStack, count: int) -> list[str]:
    """`count` jobs in `training` (through the queue, as admission leaves them), each with a
    processing training on the emulator, seeded there without HTTP."""
    emulator = stack.replicate
    assert emulator is not None and stack.pg is not None
    emulator.add_model(DESTINATION_NAME)
    training_ids = emulator.seed_trainings(
        count, destination=f"{emulator.owner}/{DESTINATION_NAME}", train_seconds=3600.0
    )
    user_id = create_user(stack.pg.dsn())
    with psycopg.connect(stack.pg.dsn(), autocommit=True) as db:
        rows = db.execute(
            "insert into ai_training_jobs (user_id, furrsona_name, status, progress) "
            "select %s, 'Bench', 'pending', 20 from generate_series(1, %s) returning id",
            (user_id, count),
        ).fetchall()
        job_ids = [str(r[0]) for r in rows]
        db.execute(
            "update ai_training_jobs set status = 'queued', queued_at = now() where id = any(%s)",
            (job_ids,),
        )
        with db.cursor() as cur:
            cur.executemany(
                "update ai_training_jobs set status = 'training', progress = 30, claimed_at = now(), "
                "admitted_at = now(), replicate_training_id = %s where id = %s",
                list(zip(training_ids, job_ids, strict=True)),
            )
    return job_ids


def reset_checks(stack: LocalStack) -> None:
    assert stack.pg is not None
    with psycopg.connect(stack.pg.dsn(), autocommit=True) as db:
        db.execute("update ai_training_jobs set last_checked_at = null")


def timed_sweep(
    stack: LocalStack, deps: Deps, limit_jobs: int | None = None
) -> tuple[float, int, Any]:
    emulator = stack.replicate
    assert emulator is not None
    emulator.reset_calls()
    if limit_jobs is not None:
        real_list = deps.jobs.list_active
        deps.jobs.list_active = lambda statuses, limit: real_list(statuses, min(limit, limit_jobs))  # type: ignore[method-assign]
    began = time.perf_counter()
    report = sweep(deps, Deadline(None))
    seconds = time.perf_counter() - began
    calls = sum(emulator.count("GET", route) for route in TRAINER_ROUTES)
    return seconds, calls, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument(
        "--sample", type=int, default=30, help="jobs polled one by one for the baseline"
    )
    args = parser.parse_args()
    with local_stack(schedule_seconds=None, boot_seconds=0.0, train_seconds=3600.0) as stack:
        assert stack.replicate is not None
        seed_jobs(stack, args.jobs)
        stack.replicate.latency_seconds = args.latency
        deps = bootstrap.deps()
        seconds, calls, report = timed_sweep(stack, deps)
        reset_checks(stack)
        serial = dataclasses.replace(
            bootstrap.deps(), settings=deps.settings.model_copy(update={"sweep_concurrency": 1})
        )
        sample_seconds, _, _ = timed_sweep(stack, serial, limit_jobs=args.sample)
    one_by_one = sample_seconds / args.sample * args.jobs
    figures = {
        "jobs": args.jobs,
        "replicate_latency_seconds": args.latency,
        "concurrency": deps.settings.sweep_concurrency,
        "seconds": round(seconds, 2),
        "calls_per_job": round(calls / args.jobs, 3),
        "checked": report.checked,
        "errors": report.errors,
        "one_by_one_seconds_extrapolated": round(one_by_one, 1),
        "ratio_to_one_by_one": round(seconds / one_by_one, 3),
    }
    record(f"sweep_{args.jobs}", figures)
    table(
        f"sweep of {args.jobs} active jobs, Replicate answering after {args.latency * 1000:.0f} ms",
        [(k, str(v)) for k, v in figures.items()],
    )


if __name__ == "__main__":
    main()
