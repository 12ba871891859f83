"""`make bench`: every benchmark in turn, then bench/README.md rewritten from bench/results.json."""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

from bench.common import RESULTS

HERE = Path(__file__).resolve().parent
# Each runs in its own process so one benchmark's memory and threads never skew the next.
BENCHMARKS = [
    "cold_start",
    "sweep_scale",
    "start_path",
    "upload_path",
    "photos_memory",
    "decode",
    "webhook_latency",
    "eta",
    "chaos",
    "fuzz",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        if not (HERE / f"{name}.py").exists():
            continue
        print(f"=== bench.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode != 0:
            failed.append(name)
    write_readme()
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# How to read a section, printed above its table.
NOTES = {
    "eta": (
        "`bench.eta`: trainings with varied timelines replayed through the real progress code "
        "on a simulated clock (recorded-shape logs from the emulator's trainer, a read every 5 s); "
        "`error_at_Npct`: |estimatedCompletion - real end| / time left at N % of the way, median "
        "over the jobs after the warm-up (`_p90`: their 90th percentile); `legacy_*`: the "
        "estimate before issue 18 on the same reads. Goal at 50 %: within 0.15."
    ),
    "fuzz": (
        "`bench.fuzz`: every route driven by Hypothesis (tests/security/fuzz.py) with generated "
        "bodies, headers, query strings, path segments, tokens and webhook signatures through the "
        "real handlers on the local stack; `answers_5xx` and `routes_failed` (a 5xx, an error "
        "outside the envelope, or something left behind by a refusal) must be 0."
    ),
    "status": (
        "`bench.eta`: `history_bytes`, the largest status answer with `?history=1` over one "
        "6000-step training on the local stack (200 points). Goal: under 8192."
    ),
    "cold_import_ratio": (
        "Each handler's import time over the naive baseline's (`import supabase, replicate, "
        "aws_lambda_powertools.event_handler`), medians of fresh processes interleaved in one run. "
        "Goal at most 0.5, stretch 0.4."
    ),
    "decode": (
        "The costliest photo of each format that is still accepted (the most pixels its format "
        "may have, under 15 MB; JPEG progressive with 32 scans), normalised alone in a fresh "
        "process with the upload handler imported: median seconds of 3 runs, peak RSS (`peak_mb`, "
        "against the upload function's 1024 MB). Goal: `worst_accepted_seconds` at most 2 s. "
        "`load_average`: the shared machine's load when the run began."
    ),
    "cold_start": (
        "Fresh processes loading bytecode (as from the byte-compiled layer), one untimed warm-up "
        "round. `first_request_ms`: one request against the local stack right after the import "
        "(upload: a 3-photo multipart job; start and status: a job that does not exist, so auth "
        "and the database read run); SDKs load there, at first use, so "
        "`import_plus_first_request_ms` is what a person waits for on a cold start. "
        "`sdk_modules_after_request`: what that request had loaded."
    ),
}


def write_readme() -> None:
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    lines = [
        "# Benchmarks",
        "",
        "Run on demand with `make bench` (never as timed tests). Every figure is measured side by side",
        "with its baseline in the same run; ratios matter more than absolute times. Each benchmark also",
        "runs alone: `.venv/bin/python -m bench.<name>`.",
        "",
        f"Latest run: {datetime.date.today().isoformat()}, {platform.machine()}, Python {platform.python_version()}, "
        "command `make bench`. The same figures are in `bench/results.json`.",
        "",
    ]
    for section, figures in sorted(data.items()):
        lines += [f"## {section}", ""]
        if section in NOTES:
            lines += [NOTES[section], ""]
        lines += ["| key | value |", "|---|---|"]
        lines += [f"| `{key}` | {json.dumps(value)} |" for key, value in sorted(figures.items())]
        lines.append("")
    (HERE / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
