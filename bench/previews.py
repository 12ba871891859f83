"""Previews (issue 19): from a training's completion to its PREVIEW_COUNT pictures stored in our
bucket, against the emulator's own prediction time in the same run.

On one local stack with webhooks (the schedule too, as in AWS): jobs are trained one after the
other; each training is ended by the emulator, its completed webhook reaches the real status
handler, which makes the version's predictions (`Prefer: wait`, side by side) and copies their
outputs into Storage. The rows are watched straight in Postgres every 10 ms: the end is the
moment the last picture of the set reads `ready`. The baseline is what the emulator itself took
for those predictions (created to completed, boot included), and one Storage round trip (a
picture-sized upload through storage3, as the handler makes it) measured beside it.
Goal: `completion_to_stored_seconds` at most 1.5 x `prediction_seconds` + `storage_round_trip`.
Run: `python -m bench.previews [--jobs 6] [--predict 2]`.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import datetime

import httpx
import psycopg

from bench.common import local_stack, median, record, table
from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from supabase import ClientOptions, create_client

WATCH_INTERVAL = 0.01
COUNT = 4  # PREVIEW_COUNT's default


def train_one(
    stack: LocalStack, http: httpx.Client, headers: dict[str, str], i: int
) -> tuple[str, str]:
    photos = [
        ("photos", (f"p{k}.jpg", make_photo(512, 512, seed=i * 10 + k), "image/jpeg"))
        for k in range(3)
    ]
    upload = http.post(
        stack.url("upload_training_photos"),
        headers=headers,
        data={"fursonaName": f"Bench {i}", "customizationData": '{"type": "fox"}'},
        files=photos,
    ).raise_for_status()
    job_id = upload.json()["jobId"]
    started = http.post(
        stack.url("start_ai_training"), headers=headers, json={"jobId": job_id}
    ).raise_for_status()
    return job_id, started.json()["trainingId"]


def stored_at(stack: LocalStack, job_id: str, timeout: float = 60.0) -> float:
    """Wall-clock time the job's last picture was first seen ready."""
    assert stack.pg is not None
    deadline = time.monotonic() + timeout
    with psycopg.connect(stack.pg.dsn(), autocommit=True) as db:
        while time.monotonic() < deadline:
            row = db.execute(
                "select count(*) filter (where status = 'ready'),"
                " count(*) filter (where status = 'failed') from twin_previews where job_id = %s",
                [job_id],
            ).fetchone()
            assert row is not None
            if row[1]:
                raise SystemExit(f"job {job_id}: a preview failed")
            if row[0] == COUNT:
                return time.time()
            time.sleep(WATCH_INTERVAL)
    raise SystemExit(f"job {job_id}: previews not stored in {timeout:.0f} s")


def prediction_seconds(stack: LocalStack, job_id: str) -> list[float]:
    """What the emulator took for the job's predictions: created to completed."""
    assert stack.pg is not None and stack.replicate is not None
    with psycopg.connect(stack.pg.dsn(), autocommit=True) as db:
        ids = [
            r[0]
            for r in db.execute(
                "select prediction_id from twin_previews where job_id = %s", [job_id]
            ).fetchall()
        ]
    out = []
    for pid in ids:
        p = stack.replicate.prediction(pid)
        created = datetime.fromisoformat(p["created_at"]).timestamp()
        completed = datetime.fromisoformat(p["completed_at"]).timestamp()
        out.append(completed - created)
    return out


def storage_round_trips(stack: LocalStack, count: int) -> list[float]:
    """A picture-sized upload into the bucket through storage3 (upsert), as the handler does."""
    sb = create_client(
        stack.supabase_url,
        stack.service_role_key,
        options=ClientOptions(httpx_client=httpx.Client(http2=False)),
    )
    bucket = sb.storage.from_("training-photos")
    data = make_photo(1024, 1024, seed=7)
    out = []
    for _ in range(count):
        path = f"bench/{uuid.uuid4()}.jpg"
        began = time.perf_counter()
        bucket.upload(path, data, {"content-type": "image/jpeg", "upsert": "true"})
        out.append(time.perf_counter() - began)
        bucket.remove([path])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--predict", type=float, default=2.0, help="emulator predict seconds")
    args = parser.parse_args()
    with local_stack(schedule_seconds=60.0, boot_seconds=0.2, train_seconds=600.0) as stack:
        emulator = stack.replicate
        assert emulator is not None
        emulator.predict_boot_seconds = 0.2
        emulator.predict_seconds = args.predict
        _, token = stack.sign_in()
        headers = {"Authorization": f"Bearer {token}"}
        latencies: list[float] = []
        predictions: list[float] = []
        with httpx.Client(timeout=60) as http:
            for i in range(args.jobs):
                job_id, training_id = train_one(stack, http, headers, i)
                emulator.finish_now(training_id, outcome="succeeded")
                ended = datetime.fromisoformat(emulator.training(training_id)["completed_at"])
                latencies.append(stored_at(stack, job_id) - ended.timestamp())
                predictions.append(median(prediction_seconds(stack, job_id)))
        storage = median(storage_round_trips(stack, 10))
    latency, prediction = median(latencies), median(predictions)
    goal = 1.5 * prediction + storage
    figures = {
        "jobs": args.jobs,
        "pictures_per_job": COUNT,
        "completion_to_stored_seconds": round(latency, 3),
        "completion_to_stored_max_seconds": round(max(latencies), 3),
        "prediction_seconds": round(prediction, 3),
        "storage_round_trip_seconds": round(storage, 4),
        "ratio_to_prediction": round(latency / prediction, 3),
        "goal_seconds": round(goal, 3),
        "within_goal": latency <= goal,
    }
    record("previews", figures)
    table(
        "training completed -> its previews stored, vs. the emulator's prediction time",
        [(k, str(v)) for k, v in figures.items()],
    )


if __name__ == "__main__":
    main()
