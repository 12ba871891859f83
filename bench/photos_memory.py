"""Peak memory of completing a signed upload (issue 3): six 12 MB photos (five JPEGs, one HEIC)
read back from Storage, checked and normalised one at a time.

Side by side in one run, each in a fresh interpreter with the upload handler imported (and
pillow_heif, which a HEIC loads anyway) before the peak is reset:
- `complete`: `POST /uploads/{jobId}/complete` through the real handler, over the local stack;
- `one photo alone`: reading one photo and normalising it, the floor for that photo.
The peak is compared with the worst photo alone (one at a time means close to 1x), with the largest
file and with the largest decoded image (Pillow holds RGB at 4 bytes per pixel, which is what
a photo costs once decoded; these noise photos have about 1.5 bytes per pixel on disk).
Run: `python -m bench.photos_memory`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bench.common import SDKS_PRELOADED, UPLOAD_CHILD_PREAMBLE, local_stack, record, table
from devstack.sample_photos import make_large_photo
from devstack.stack import LocalStack

PHOTO_BYTES = 12 * 1024 * 1024
MB = 1024 * 1024

# Runs in a fresh interpreter: imports, peak reset, then the measured step; prints KiB figures.
CHILD = (
    UPLOAD_CHILD_PREAMBLE
    + r"""
import importlib.util, json, sys, time

import pillow_heif  # a HEIC loads it anyway: its import is fixed overhead, not per photo
from devstack.function_urls import LambdaContext, build_event
from shared.photos.rules import PhotoLimits
from shared.photos.normalise import normalise_photo
args = json.loads(sys.argv[1])
reset_peak()
imported = status_kb("VmRSS")
began, cpu_began = time.perf_counter(), time.process_time()
if args["step"] == "complete":
    event = build_event("POST", "/uploads/" + args["job"] + "/complete",
                        [("content-type", "application/json"), ("authorization", "Bearer " + args["token"])],
                        b"{}", "127.0.0.1")
    status = app.handler(event, LambdaContext("upload_training_photos", 120))["statusCode"]
else:
    data = open(args["file"], "rb").read()
    normalise_photo(data, PhotoLimits(), label="Photo 1")
    status = 200
seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
print(json.dumps({"status": status, "imported_kb": imported, "peak_kb": status_kb("VmHWM"),
                  "seconds": seconds, "cpu_seconds": cpu_seconds}))
"""
)


def run_child(args: dict[str, Any]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **SDKS_PRELOADED},
    )
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["status"] == 200, out.stdout + out.stderr
    return {
        "imported_mb": child["imported_kb"] / 1024,
        "over_imports_mb": (child["peak_kb"] - child["imported_kb"]) / 1024,
        "seconds": child["seconds"],
        "cpu_seconds": child[
            "cpu_seconds"
        ],  # all threads; steadier than wall time on a busy machine
    }


def uploaded_job(stack: LocalStack, photos: list[tuple[str, str, bytes]]) -> tuple[str, str]:
    """A signed-upload job whose six photos are in Storage, as a browser would leave it."""
    assert stack.pg is not None
    _, token = stack.sign_in()
    declared = [{"filename": n, "contentType": t, "size": len(d)} for n, t, d in photos]
    with httpx.Client(timeout=120) as http:
        created = http.post(
            stack.url("upload_training_photos") + "uploads",
            headers={"Authorization": f"Bearer {token}"},
            json={"fursonaName": "Bench", "photos": declared},
        )
        created.raise_for_status()
        job = created.json()
        for target, (_, _, data) in zip(job["uploads"], photos, strict=True):
            http.put(
                target["url"], content=data, headers={"content-type": target["contentType"]}
            ).raise_for_status()
    return token, job["jobId"]


def decoded_mb(data: bytes) -> float:
    """What Pillow holds once the photo is decoded: RGB takes 4 bytes per pixel."""
    with Image.open(io.BytesIO(data)) as img:
        return img.width * img.height * 4 / MB


def main() -> None:
    photos = [
        (f"IMG_{i}.JPG", "image/jpeg", make_large_photo(PHOTO_BYTES, seed=900 + i))
        for i in range(5)
    ]
    photos.append(("IMG_5.HEIC", "image/heic", make_large_photo(PHOTO_BYTES, seed=905, fmt="HEIF")))
    largest_mb = max(len(data) for _, _, data in photos) / MB
    largest_decoded_mb = max(decoded_mb(data) for _, _, data in photos)
    with local_stack(schedule_seconds=None) as stack:
        token, job_id = uploaded_job(stack, photos)
        complete = run_child({"step": "complete", "token": token, "job": job_id})
    with tempfile.TemporaryDirectory() as tmp:
        singles = {}
        for name, _, data in photos:
            path = Path(tmp) / name
            path.write_bytes(data)
            singles[name] = run_child({"step": "one", "file": str(path)})
    one_photo_mb = max(s["over_imports_mb"] for s in singles.values())
    peak_mb = complete["over_imports_mb"]
    figures = {
        "photos": len(photos),
        "largest_photo_mb": round(largest_mb, 1),
        "largest_decoded_mb": round(largest_decoded_mb, 1),
        "fixed_overhead_mb": round(complete["imported_mb"], 1),
        "one_photo_peak_mb": round(one_photo_mb, 1),
        "peak_mb": round(peak_mb, 1),
        "peak_ratio_to_one_photo": round(peak_mb / one_photo_mb, 2),
        "peak_ratio_to_largest_photo": round(peak_mb / largest_mb, 2),
        "peak_ratio_to_largest_decoded": round(peak_mb / largest_decoded_mb, 2),
        "complete_seconds": round(complete["seconds"], 2),
    }
    record("upload", figures, merge=True)
    table(
        "photos memory: complete of six 12 MB photos (1 HEIC), peak RSS over the imported process",
        [
            ("largest photo: file / decoded", f"{largest_mb:.1f} MB / {largest_decoded_mb:.1f} MB"),
            ("imported process (fixed overhead)", f"{complete['imported_mb']:.1f} MB"),
            *[
                (f"one photo alone: {n}", f"{s['over_imports_mb']:.1f} MB")
                for n, s in singles.items()
            ],
            ("complete, six photos", f"{peak_mb:.1f} MB in {complete['seconds']:.1f} s"),
            ("ratio to the worst photo alone", f"{figures['peak_ratio_to_one_photo']}x"),
            ("ratio to the largest file", f"{figures['peak_ratio_to_largest_photo']}x"),
            ("ratio to the largest decoded", f"{figures['peak_ratio_to_largest_decoded']}x"),
        ],
    )


if __name__ == "__main__":
    main()
