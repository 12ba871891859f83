"""The flow a person goes through, driven against the local Function URLs: sign up, upload photos,
start the training, watch the progress (bar, phase and time left) until the model is ready."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

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


LINE_WIDTH = 100  # each redraw covers the one before


def time_left(estimated: str | None, now: datetime) -> str:
    if estimated is None:
        return ""
    seconds = max(0, round((datetime.fromisoformat(estimated) - now).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f", about {minutes} min {seconds} s left" if minutes else f", about {seconds} s left"


def progress_bar(status: dict, now: datetime) -> str:
    """`[#####.....]  57% Training, step 450 of 1000, about 4 min 10 s left`."""
    progress = status["progress"]
    filled = BAR_WIDTH * progress // 100
    bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress:3d}%"
    return f"{bar} {status['phaseText']}{time_left(status['estimatedCompletion'], now)}"


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
            phase = status.get("phase")
            status = response.json()
            if phase is not None and status["phase"] != phase:
                write("\n")  # each phase keeps its last line; the bar redraws within one
            write("\r" + progress_bar(status, datetime.now(UTC)).ljust(LINE_WIDTH))
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
