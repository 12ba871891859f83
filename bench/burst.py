"""Launch day: 500 start calls within 10 s from 250 owners (two twins each), a cap of 20 trainings,
the emulator's training time fixed, everything over HTTP through the real handlers (webhooks from
the emulator end the trainings and let the next ones in; the schedule sweeps every 3 s).

Measured in one run: the most trainings in flight (sampled from the database every 50 ms, and
the emulator's own count), the trainings created, the drain time (first start call to last
training ended) against the ideal schedule ceil(500 / 20) x the training time the emulator
really took in this run, and fairness: no owner's second job admitted before every owner's first.
Goals: in flight never above 20, exactly 500 trainings, `drain_ratio` at most 1.15.
Run: `python -m bench.burst [--jobs 500] [--owners 250] [--cap 20] [--train-seconds 10]`.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import psycopg

from bench.common import local_stack, record, table
from devstack.sample_photos import make_photo
from devstack.stack import LocalStack


def seed(stack: LocalStack, owners: int, jobs: int) -> list[tuple[str, str]]:
    """`jobs` pending jobs, `jobs / owners` twins per owner, each with 3 small photos in Storage:
    (token, job id) per job."""
    assert stack.pg is not None
    photos = [make_photo(512, 512, seed=i) for i in range(3)]
    key = stack.service_role_key
    headers = {"Authorization": f"Bearer {key}", "apikey": key, "content-type": "image/jpeg"}
    seeded: list[tuple[str, str]] = []
    rows = []
    with httpx.Client(base_url=f"{stack.supabase_url}/storage/v1", headers=headers) as http:
        for n in range(jobs):
            if n % (jobs // owners) == 0:
                user_id, token = stack.sign_in()
            job_id = str(uuid.uuid4())
            paths = [f"{user_id}/{job_id}/{i:02d}.jpg" for i in range(1, 4)]
            for path, data in zip(paths, photos, strict=True):
                http.post(f"/object/training-photos/{path}", content=data).raise_for_status()
            rows.append((job_id, user_id, paths))
            seeded.append((token, job_id))
    with psycopg.connect(stack.pg.dsn(), autocommit=True) as db, db.cursor() as cur:
        cur.executemany(
            "insert into ai_training_jobs (id, user_id, furrsona_name, status, progress,"
            " photo_urls) values (%s, %s, 'Burst', 'pending', 20, %s)",
            rows,
        )
    return seeded


class Sampler(threading.Thread):
    """The jobs in `training`, every 50 ms, straight from Postgres."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.max_in_flight, self.samples = dsn, 0, 0
        self.halt = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as db:
            while not self.halt.wait(0.05):
                row = db.execute(
                    "select count(*) from ai_training_jobs where status = 'training'"
                ).fetchone()
                self.max_in_flight = max(self.max_in_flight, int(row[0]) if row else 0)
                self.samples += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--owners", type=int, default=250)
    parser.add_argument("--cap", type=int, default=20)
    parser.add_argument("--train-seconds", type=float, default=10.0)
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    args = parser.parse_args()
    env = {"MAX_CONCURRENT_TRAININGS": str(args.cap), "MAX_TRAININGS_PER_USER": "1"}
    options = {"boot_seconds": 0.0, "train_seconds": args.train_seconds, "schedule_seconds": 3.0}
    with local_stack(extra_env=env, **options) as stack:
        assert stack.pg is not None and stack.replicate is not None
        seeded = seed(stack, args.owners, args.jobs)
        random.Random(1).shuffle(seeded)
        stack.replicate.reset_stats()
        sampler = Sampler(stack.pg.dsn())
        sampler.start()
        answers: list[int] = []
        lock = threading.Lock()

        def start(at: float, token: str, job_id: str) -> None:
            time.sleep(max(0.0, at - time.monotonic()))
            with httpx.Client(timeout=120) as http:
                status = http.post(
                    stack.url("start_ai_training"),
                    headers={"Authorization": f"Bearer {token}"},
                    json={"jobId": job_id},
                ).status_code
            with lock:
                answers.append(status)

        began = time.monotonic()
        spacing = args.burst_seconds / args.jobs
        with ThreadPoolExecutor(max_workers=24) as pool:
            for k, (token, job_id) in enumerate(seeded):
                pool.submit(start, began + k * spacing, token, job_id)
        burst_seconds = time.monotonic() - began
        with psycopg.connect(stack.pg.dsn(), autocommit=True) as db:
            while True:
                left = db.execute(
                    "select count(*) from ai_training_jobs where status not in ('completed', 'failed')"
                ).fetchone()
                if left == (0,):
                    break
                time.sleep(0.2)
            drained = time.monotonic() - began
            sampler.halt.set()
            sampler.join()
            rows = db.execute(
                "select user_id, queued_at, admitted_at, status, replicate_training_id"
                " from ai_training_jobs"
            ).fetchall()
        stats = stack.replicate.stats()
        durations = []
        for row in rows:
            training = stack.replicate.training(row[4])
            ended, created = training["completed_at"], training["created_at"]
            durations.append(
                (datetime.fromisoformat(ended) - datetime.fromisoformat(created)).total_seconds()
            )
    training_seconds = statistics.median(durations)
    ideal = math.ceil(args.jobs / args.cap) * training_seconds
    firsts, seconds = [], []
    for owner in {r[0] for r in rows}:
        mine = sorted((r for r in rows if r[0] == owner), key=lambda r: r[1])
        firsts.append(mine[0][2])
        seconds += [r[2] for r in mine[1:]]
    fair = not seconds or min(seconds) >= max(firsts)
    figures = {
        "jobs": args.jobs,
        "owners": args.owners,
        "cap": args.cap,
        "start_answers_202": answers.count(202),
        "starts_sent_over_seconds": args.burst_seconds,
        "burst_seconds": round(burst_seconds, 1),  # until the last start call was answered
        "max_in_flight": sampler.max_in_flight,
        "max_in_flight_replicate": stats["max_trainings_in_flight"],
        "in_flight_samples": sampler.samples,
        "trainings_created": stats["trainings"],
        "completed": sum(1 for r in rows if r[3] == "completed"),
        "training_seconds": round(training_seconds, 2),
        "ideal_seconds": round(ideal, 1),
        "drain_seconds": round(drained, 1),
        "drain_ratio": round(drained / ideal, 3),
        "every_first_before_any_second": fair,
    }
    record(f"burst_{args.jobs}", figures)  # burst_500: the key issue 17 names
    table("launch-day burst through the training queue", [(k, str(v)) for k, v in figures.items()])


if __name__ == "__main__":
    main()
