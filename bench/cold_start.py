"""Cold start (issue 8.1): each handler imported in a fresh process, then one request against the
local stack; side by side with the naive baseline (`import supabase, replicate,
aws_lambda_powertools.event_handler`) and the floor (`import httpx, pydantic`), interleaved.
Run: `python -m bench.cold_start [--rounds 7]`.

Every process loads bytecode, as Lambda does from the layer (shared/Makefile byte-compiles it):
a scratch PYTHONPYCACHEPREFIX and one untimed warm-up round, so that neither a machine's
PYTHONDONTWRITEBYTECODE nor a first compilation counts against one side only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid

from bench.common import local_stack, median, multipart_body, record, table
from devstack.sample_photos import make_photo

BASELINE = "import supabase, replicate, aws_lambda_powertools.event_handler"
FLOOR = "import httpx, pydantic"
FUNCTIONS = ("upload_training_photos", "start_ai_training", "check_training_status")

IMPORT_ONLY = r"""
import sys, time
began = time.perf_counter()
exec(sys.argv[1])
print(time.perf_counter() - began)
"""

# Import one handler, then answer one request built like a Function URL event.
HANDLER = r"""
import json, sys, time, importlib.util
name, request = sys.argv[1], json.loads(sys.stdin.read())
began = time.perf_counter()
spec = importlib.util.spec_from_file_location(name + "_app", f"functions/{name}/app.py")
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
imported = time.perf_counter()
import base64
from devstack.function_urls import LambdaContext, build_event
body = base64.b64decode(request["body"])
event = build_event(request["method"], request["path"], request["headers"], body, "127.0.0.1")
result = app.handler(event, LambdaContext(name, 30))
done = time.perf_counter()
mods = sorted(m for m in ("replicate", "supabase", "httpx", "postgrest", "storage3", "jwt", "PIL", "pillow_heif") if m in sys.modules)
print(json.dumps({"import": imported - began, "first_request": done - imported, "status": result["statusCode"], "modules": mods}))
"""


def bytecode_env(prefix: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPYCACHEPREFIX": prefix, "POWERTOOLS_LOG_LEVEL": "ERROR"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(code: str, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> str:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def requests_for(token: str, job_id: str) -> dict[str, dict]:
    import base64

    auth = ("authorization", f"Bearer {token}")
    multipart, boundary = multipart_body([make_photo(640, 640, seed=900 + i) for i in range(3)])
    as_json = json.dumps({"jobId": job_id}).encode()
    return {
        "upload_training_photos": {
            "method": "POST",
            "path": "/",
            "body": base64.b64encode(multipart).decode(),
            "headers": [auth, ("content-type", f"multipart/form-data; boundary={boundary}")],
        },
        "start_ai_training": {
            "method": "POST",
            "path": "/",
            "body": base64.b64encode(as_json).decode(),
            "headers": [auth, ("content-type", "application/json")],
        },
        "check_training_status": {
            "method": "GET",
            "path": f"/?jobId={job_id}",
            "body": "",
            "headers": [auth],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    baseline: list[float] = []
    floor: list[float] = []
    imports: dict[str, list[float]] = {f: [] for f in FUNCTIONS}
    first: dict[str, list[float]] = {f: [] for f in FUNCTIONS}
    modules: dict[str, list[str]] = {}
    with local_stack(schedule_seconds=None) as stack, tempfile.TemporaryDirectory() as pycache:
        assert stack.pg is not None
        env = bytecode_env(pycache)
        _, token = stack.sign_in()
        for round_number in range(args.rounds + 1):
            timed = round_number > 0  # round 0 writes the bytecode
            base = float(run(IMPORT_ONLY, BASELINE, env=env))
            low = float(run(IMPORT_ONLY, FLOOR, env=env))
            # A job of this user that does not exist: start and status do the full auth + DB path.
            requests = requests_for(token, str(uuid.uuid4()))
            results = {
                name: json.loads(run(HANDLER, name, env=env, stdin=json.dumps(requests[name])))
                for name in FUNCTIONS
            }
            if not timed:
                continue
            baseline.append(base)
            floor.append(low)
            for name, result in results.items():
                imports[name].append(result["import"])
                first[name].append(result["first_request"])
                modules[name] = result["modules"]
    base = median(baseline)
    figures: dict[str, object] = {
        "baseline_import_ms": round(base * 1000, 1),
        "floor_import_ms": round(median(floor) * 1000, 1),
        "rounds": args.rounds,
    }
    rows = [
        ("naive baseline import", f"{base * 1000:.0f} ms"),
        ("floor (httpx, pydantic)", f"{median(floor) * 1000:.0f} ms"),
    ]
    ratios = {}
    for name in FUNCTIONS:
        ratio = median(imports[name]) / base
        ratios[name] = round(ratio, 3)
        figures[f"{name}_import_ms"] = round(median(imports[name]) * 1000, 1)
        figures[f"{name}_first_request_ms"] = round(median(first[name]) * 1000, 1)
        # The SDKs a path needs load at its first use: this is what the person waits for.
        total = [i + f for i, f in zip(imports[name], first[name], strict=True)]
        figures[f"{name}_import_plus_first_request_ms"] = round(median(total) * 1000, 1)
        figures[f"{name}_sdk_modules_after_request"] = modules[name]
        rows.append(
            (
                name,
                f"import {median(imports[name]) * 1000:.0f} ms ({ratio:.2f}x baseline), "
                f"first request {median(first[name]) * 1000:.0f} ms, loaded {', '.join(modules[name]) or '-'}",
            )
        )
    record("cold_import_ratio", ratios)
    record("cold_start", figures)
    table("cold start (median of fresh processes)", rows)


if __name__ == "__main__":
    main()
