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
    "webhook_latency",
    "chaos",
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
        lines += [f"## {section}", "", "| key | value |", "|---|---|"]
        lines += [f"| `{key}` | {json.dumps(value)} |" for key, value in sorted(figures.items())]
        lines.append("")
    (HERE / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
