"""The flow a person goes through, driven against the local Function URLs: sign up, upload photos,
start the training, watch the progress until the model is ready."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import httpx

from devstack.sample_photos import sample_photo_set
from devstack.schema import create_user
from devstack.tokens import user_access_token

BAR_WIDTH = 30


@dataclass
class DemoResult:
    job_id: str
    status: str
    model_version: str | None
    error_message: str | None
    seconds: float


def progress_bar(progress: int, status: str) -> str:
    filled = BAR_WIDTH * progress // 100
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress:3d}% {status}"


def run_flow(
    env: dict[str, str], *, timeout_seconds: float, out: object = sys.stdout
) -> DemoResult:
    write = out.write  # type: ignore[attr-defined]
    began = time.monotonic()
    user_id = create_user(env["DATABASE_URL"], f"demo-{int(time.time())}@flurrty.local")
    token = user_access_token(env["SUPABASE_JWT_SECRET"], env["SUPABASE_URL"], user_id)
    auth = {"Authorization": f"Bearer {token}"}
    write(f"user {user_id} signed in\n")
    with httpx.Client(timeout=60.0) as http:
        photos = sample_photo_set(4)
        files = [("photos", (name, data, "image/jpeg")) for name, data in photos]
        form = {
            "fursonaName": "Ember",
            "customizationData": json.dumps(
                {"type": "fox", "furType": "fluffy", "colors": ["orange", "white"]}
            ),
        }
        response = http.post(env["UPLOAD_URL"], headers=auth, data=form, files=files)
        _expect(response, 201, "upload")
        job = response.json()
        job_id = job["jobId"]
        write(
            f"uploaded {len(job['photoUrls'])} photos: job {job_id} is {job['status']} ({job['progress']}%)\n"
        )
        response = http.post(env["START_URL"], headers=auth, json={"jobId": job_id})
        _expect(response, 202, "start")
        write(f"training {response.json()['trainingId']} started\n")
        deadline = time.monotonic() + timeout_seconds
        status: dict = {}
        while time.monotonic() < deadline:
            response = http.get(env["STATUS_URL"], headers=auth, params={"jobId": job_id})
            _expect(response, 200, "status")
            status = response.json()
            write("\r" + progress_bar(status["progress"], status["status"]))
            if hasattr(out, "flush"):
                out.flush()
            if status["status"] in ("completed", "failed"):
                break
            time.sleep(0.5)
        write("\n")
    return DemoResult(
        job_id=job_id,
        status=status.get("status", "unknown"),
        model_version=status.get("modelVersion"),
        error_message=status.get("errorMessage"),
        seconds=time.monotonic() - began,
    )


def _expect(response: httpx.Response, status: int, step: str) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{step} answered {response.status_code}: {response.text[:500]}")
