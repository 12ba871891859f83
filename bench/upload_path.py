"""Upload path (issue 8.4): throughput and peak memory of the multipart and the signed flows.

Each function step runs in a fresh interpreter with the upload handler imported before the peak is
reset (VmHWM), so the figures are what one upload costs over the imported process:
- multipart: `POST /` with three 1.2 MB photos (the multipart body is capped at 4 MB);
- signed: `POST /uploads` for six 8 MB photos, the browser's PUTs straight to Storage (from this
  process, not the function), then `POST /uploads/{jobId}/complete`.
Throughput is photo bytes over the time the flow takes once the functions are warm (handler time,
plus the PUTs for the signed flow); process start and imports are the cold-start benchmark's.
Run: `python -m bench.upload_path`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx

from bench.common import (
    SDKS_PRELOADED,
    UPLOAD_CHILD_PREAMBLE,
    local_stack,
    median,
    multipart_body,
    record,
    table,
)
from devstack.sample_photos import make_large_photo

MB = 1024 * 1024
MULTIPART_PHOTO_BYTES = 1_200_000  # three fit under the 4 MB multipart cap (shared.api.requests)
SIGNED_PHOTO_BYTES = 8 * MB
ROUNDS = 3

# Runs in a fresh interpreter: import the handler, reset the peak, answer one request.
CHILD = (
    UPLOAD_CHILD_PREAMBLE
    + r"""
import base64, json, sys, time, importlib.util

from devstack.function_urls import LambdaContext, build_event
request = json.loads(sys.stdin.read())
body = open(request["body_file"], "rb").read() if request.get("body_file") else request["body"].encode()
reset_peak()
imported = status_kb("VmRSS")
event = build_event("POST", request["path"], request["headers"], body, "127.0.0.1")
del body
began = time.perf_counter()
result = app.handler(event, LambdaContext("upload_training_photos", 120))
seconds = time.perf_counter() - began
print(json.dumps({"status": result["statusCode"], "body": result["body"], "seconds": seconds,
                  "over_imports_kb": status_kb("VmHWM") - imported}))
"""
)


def call(request: dict[str, Any]) -> dict[str, Any]:
    env = {
        **os.environ,
        **SDKS_PRELOADED,
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert 200 <= result["status"] < 300, result
    return result


def multipart_round(token: str, photos: list[bytes], tmp: str) -> tuple[float, float]:
    body, boundary = multipart_body(photos)
    with open(tmp, "wb") as f:
        f.write(body)
    result = call(
        {
            "path": "/",
            "body_file": tmp,
            "headers": [
                ("authorization", f"Bearer {token}"),
                ("content-type", f"multipart/form-data; boundary={boundary}"),
            ],
        }
    )
    return result["seconds"], result["over_imports_kb"] / 1024


def signed_round(token: str, photos: list[bytes]) -> tuple[float, float]:
    auth = ("authorization", f"Bearer {token}")
    declared = [
        {"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": len(data)}
        for i, data in enumerate(photos)
    ]
    created = call(
        {
            "path": "/uploads",
            "body": json.dumps({"fursonaName": "Bench", "photos": declared}),
            "headers": [auth, ("content-type", "application/json")],
        }
    )
    job = json.loads(created["body"])
    began = time.perf_counter()
    with httpx.Client(timeout=60) as http:
        for target, data in zip(job["uploads"], photos, strict=True):
            http.put(
                target["url"], content=data, headers={"content-type": target["contentType"]}
            ).raise_for_status()
    puts = time.perf_counter() - began
    completed = call(
        {
            "path": f"/uploads/{job['jobId']}/complete",
            "body": "{}",
            "headers": [auth, ("content-type", "application/json")],
        }
    )
    peak = max(created["over_imports_kb"], completed["over_imports_kb"]) / 1024
    return created["seconds"] + puts + completed["seconds"], peak


def main() -> None:
    multipart_photos = [make_large_photo(MULTIPART_PHOTO_BYTES, seed=40 + i) for i in range(3)]
    signed_photos = [make_large_photo(SIGNED_PHOTO_BYTES, seed=50 + i) for i in range(6)]
    multipart: list[tuple[float, float]] = []
    signed: list[tuple[float, float]] = []
    with local_stack(schedule_seconds=None) as stack:
        assert stack.pg is not None
        _, token = stack.sign_in()
        tmp = os.path.join(stack.options.data_dir, "multipart.body")
        for _ in range(ROUNDS):
            multipart.append(multipart_round(token, multipart_photos, tmp))
            signed.append(signed_round(token, signed_photos))
    multipart_mb = sum(map(len, multipart_photos)) / MB
    signed_mb = sum(map(len, signed_photos)) / MB
    multipart_seconds = median([s for s, _ in multipart])
    signed_seconds = median([s for s, _ in signed])
    multipart_peak = max(p for _, p in multipart)
    signed_peak = max(p for _, p in signed)
    figures = {
        "multipart_photos_mb": round(multipart_mb, 1),
        "multipart_seconds": round(multipart_seconds, 3),
        "multipart_mb_per_s": round(multipart_mb / multipart_seconds, 1),
        "multipart_peak_mb": round(multipart_peak, 1),
        "signed_photos_mb": round(signed_mb, 1),
        "signed_seconds": round(signed_seconds, 3),
        "signed_mb_per_s": round(signed_mb / signed_seconds, 1),
        "signed_peak_mb": round(signed_peak, 1),
        # The worst of both flows: what an upload function needs over its imports.
        "peak_mb": round(max(multipart_peak, signed_peak), 1),
    }
    record("upload", figures, merge=True)
    table(
        "upload path: throughput and peak memory over the imported handler (median of "
        f"{ROUNDS}; fresh process per request)",
        [(k, str(v)) for k, v in figures.items()],
    )


if __name__ == "__main__":
    main()
