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
BENCHMARKS: list[str | tuple[str, ...]] = [
    "cold_start",
    "sweep_scale",
    ("sweep_scale", "--jobs", "10000"),
    "admission",
    "burst",
    "start_path",
    "upload_path",
    "photos_memory",
    "decode",
    "webhook_latency",
    "previews",
    "eta",
    "chaos",
    "fuzz",
]


def main() -> int:
    failed = []
    for entry in BENCHMARKS:
        name, *args = (entry,) if isinstance(entry, str) else entry
        if not (HERE / f"{name}.py").exists():
            continue
        print(f"=== bench.{name} {' '.join(args)}".rstrip(), flush=True)
        command = [sys.executable, "-m", f"bench.{name}", *args]
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(" ".join([name, *args]))
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
    "previews": (
        "`bench.previews`: a training ended by the emulator -> the last of its 4 previews "
        "`ready` in Postgres (its webhook reaches the real handler, which predicts with `Prefer: "
        "wait` side by side and copies the outputs into Storage), median over the jobs; "
        "`prediction_seconds`: the emulator's own created-to-completed time for those "
        "predictions in the same run; `ratio_to_prediction` the first over the second. Goal: "
        "`completion_to_stored_seconds` at most 1.5 x `prediction_seconds` + "
        "`storage_round_trip_seconds`."
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
    "sweep_1000": (
        "`bench.sweep_scale`: one sweep over N jobs in `training`, every Replicate answer 100 ms "
        "late, against the same sweep one job at a time (a sample, extrapolated). Everything "
        "(emulator, PostgREST, Postgres, the sweep) shares this machine's 2 cores."
    ),
    "sweep_10000": (
        "`bench.sweep_scale --jobs 10000`: as `sweep_1000`, at batch-training scale. Goal: one "
        "sweep within 60 s, at most 1.0 Replicate call per job. CPU-bound here: 32 and 64 "
        "workers took the same time."
    ),
    "admission": (
        "`bench.admission`: 10,000 queued jobs from 5,000 owners on the real database; "
        "`ms_at_10k`: one `admit_trainings` call (median), `place_ms_at_10k`: one job's place "
        "(`training_queue_place`, with the sweep's cached position; `place_first_read_ms_at_10k` "
        "without it), `refresh_positions_ms_at_10k`: the sweep rewriting every place, "
        "`stats_ms_at_10k`: the metrics query. Goal: admission at most 10 ms."
    ),
    "burst_500": (
        "`bench.burst`: launch day, 500 start calls from 250 owners (two twins each) sent "
        "over `starts_sent_over_seconds` (`burst_seconds`: until the last was answered), through the real handlers and the emulator's webhooks, under a cap. "
        "Goals: `max_in_flight` (sampled from the database every 50 ms) and "
        "`max_in_flight_replicate` (the emulator's count) never above `cap`, "
        "`trainings_created` = `jobs`, `drain_ratio` (drain time over ceil(jobs/cap) x the "
        "training time) at most 1.15, every owner's first job admitted before any second."
    ),
    "cold_import_ratio": (
        "Each handler's import time over the naive baseline's (`import supabase, replicate, "
        "aws_lambda_powertools.event_handler`), medians of fresh processes interleaved in one run. "
        "Goal (issue 13) at most 0.4 for each handler. The import is what every request of the "
        "function needs up to its first use of an SDK; seldom-used routes and branches load at "
        "their first use (docs/decisions.md, 2026-12-04)."
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
