"""Start path (issue 8.3): six 8 MB photos, Storage and Replicate each adding 20 ms per request.

Side by side in one run: the start (claim, fetch the photos, zip, upload, create the training)
and the pure transfer of the same bytes with plain httpx (the six objects fetched in parallel,
then one upload of their total size to the Files API). Peak memory of the start is read in a
fresh subprocess (VmHWM after imports vs. after the start).
Run: `python -m bench.start_path`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from bench.common import SDKS_PRELOADED, local_stack, median, record, table
from devstack.sample_photos import make_large_photo
from devstack.stack import LocalStack

PHOTO_BYTES = 8 * 1024 * 1024
LATENCY = 0.02

# Runs in a fresh interpreter: import the handler, then one start, reporting peak RSS and time.
CHILD = r"""
import json, sys, time, importlib.util

def hwm_kb():
    # VmHWM is this process's own peak (ru_maxrss would include the parent's, kept across exec).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
spec = importlib.util.spec_from_file_location("start_app", "functions/start_ai_training/app.py")
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
from devstack.function_urls import LambdaContext, build_event
args = json.loads(sys.argv[1])
before = hwm_kb()
event = build_event("POST", "/", [("content-type", "application/json"), ("authorization", "Bearer " + args["token"])],
                    json.dumps({"jobId": args["job"]}).encode(), "127.0.0.1")
began = time.perf_counter()
result = app.handler(event, LambdaContext("start_ai_training", 120))
seconds = time.perf_counter() - began
after = hwm_kb()
print(json.dumps({"status": result["statusCode"], "seconds": seconds, "rss_before_kb": before, "rss_after_kb": after}))
"""


def seed_job(stack: LocalStack, photos: list[bytes]) -> tuple[str, str, list[str]]:
    """A pending job of a new user with `photos` in Storage: (the user's token, job id, paths)."""
    assert stack.pg is not None
    user_id, token = stack.sign_in()
    job_id = str(uuid.uuid4())
    paths = [f"{user_id}/{job_id}/{i:02d}.jpg" for i in range(1, len(photos) + 1)]
    key = stack.service_role_key
    headers = {
        "Authorization": f"Bearer {key}",
        "apikey": key,
        "content-type": "image/jpeg",
        "x-upsert": "true",
    }
    with httpx.Client(
        base_url=f"{stack.supabase_url}/storage/v1", headers=headers, timeout=60
    ) as http:
        for path, data in zip(paths, photos, strict=True):
            http.post(f"/object/training-photos/{path}", content=data).raise_for_status()
    with psycopg.connect(stack.pg.dsn(), autocommit=True) as db:
        db.execute(
            "insert into ai_training_jobs (id, user_id, furrsona_name, status, progress, photo_urls) "
            "values (%s, %s, 'Bench', 'pending', 20, %s)",
            (job_id, user_id, paths),
        )
    return token, job_id, paths


def pure_transfer(stack: LocalStack, paths: list[str]) -> float:
    """Fetch the six objects in parallel, then upload their bytes once: the floor for a start."""
    assert stack.replicate is not None
    key = stack.service_role_key
    with (
        httpx.Client(
            headers={"Authorization": f"Bearer {key}", "apikey": key}, timeout=60
        ) as storage,
        httpx.Client(
            headers={"Authorization": f"Bearer {stack.replicate_token}"}, timeout=60
        ) as rep,
    ):
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(paths)) as pool:
            blobs = list(
                pool.map(
                    lambda p: (
                        storage.get(f"{stack.supabase_url}/storage/v1/object/training-photos/{p}")
                        .raise_for_status()
                        .content
                    ),
                    paths,
                )
            )
        rep.post(
            f"{stack.replicate.base_url}/v1/files",
            files={"content": ("photos.zip", b"".join(blobs), "application/zip")},
        ).raise_for_status()
        return time.perf_counter() - began


def main() -> None:
    photos = [make_large_photo(PHOTO_BYTES, seed=i) for i in range(6)]
    rounds = 3
    starts: list[float] = []
    transfers: list[float] = []
    peaks: list[float] = []
    with local_stack(schedule_seconds=None, boot_seconds=0.5, train_seconds=3600.0) as stack:
        assert stack.gateway is not None and stack.replicate is not None
        stack.gateway.latency_seconds = LATENCY
        stack.replicate.latency_seconds = LATENCY
        env = {**os.environ, **SDKS_PRELOADED, "POWERTOOLS_LOG_LEVEL": "ERROR"}
        for _ in range(rounds):
            token, job_id, paths = seed_job(stack, photos)
            transfers.append(pure_transfer(stack, paths))
            out = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps({"token": token, "job": job_id})],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            child = json.loads(out.stdout.strip().splitlines()[-1])
            assert child["status"] == 202, out.stdout
            starts.append(child["seconds"])
            peaks.append((child["rss_after_kb"] - child["rss_before_kb"]) / 1024)
    figures = {
        "photos": len(photos),
        "photo_mb": round(PHOTO_BYTES / 1e6, 1),
        "latency_ms_per_request": LATENCY * 1000,
        "start_seconds": round(median(starts), 3),
        "transfer_seconds": round(median(transfers), 3),
        "ratio_to_transfer": round(median(starts) / median(transfers), 2),
        "peak_mb": round(max(peaks), 1),
    }
    record("start", figures)
    table(
        "start path: six 8 MB photos, 20 ms per Storage/Replicate request",
        [(k, str(v)) for k, v in figures.items()],
    )


if __name__ == "__main__":
    main()
