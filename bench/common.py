"""What every benchmark shares: results.json merging, a local stack, a small table printer."""

from __future__ import annotations

import json
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.stack import LocalStack, StackOptions

RESULTS = Path(__file__).resolve().parent / "results.json"


# For benchmarks of a data path: the handler's import also loads every SDK its paths use (as with
# provisioned concurrency, shared/warmup.py), so the measured step holds no module loading;
# bench.cold_start measures that part.
SDKS_PRELOADED = {"AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"}


# The start of a child process that measures the upload handler: it imports the handler, and
# `status_kb("VmHWM")` / `reset_peak()` read and reset the process's peak memory.
UPLOAD_CHILD_PREAMBLE = r"""
import importlib.util

def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM back to the current RSS
    except OSError:
        pass

spec = importlib.util.spec_from_file_location("upload_app", "functions/upload_training_photos/app.py")
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
"""


def record(section: str, figures: dict[str, Any], *, merge: bool = False) -> None:
    """Write one benchmark's figures into bench/results.json under `section`; `merge` keeps the
    keys other benchmarks wrote there (several fill `upload`)."""
    data: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if merge:
        data.setdefault(section, {}).update(figures)
    else:
        data[section] = figures
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def local_stack(**options: Any) -> Iterator[LocalStack]:
    with tempfile.TemporaryDirectory(prefix="flurrty-bench-") as tmp:
        stack = LocalStack(StackOptions(data_dir=Path(tmp), **options))
        with stack:
            yield stack


def multipart_body(photos: list[bytes]) -> tuple[bytes, str]:
    """A multipart upload form (a name and `photos`) as a browser sends it: (body, boundary)."""
    boundary = "bench" + uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="fursonaName"\r\n\r\nBench\r\n'.encode()
    ]
    for i, data in enumerate(photos):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="p{i}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary
