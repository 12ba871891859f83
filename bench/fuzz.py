"""The property-based attack at scale (issue 14.4): every route of the three Function URLs driven
by Hypothesis (tests/security/fuzz.py) with many more generated requests than `make test` sends.

Figures (`fuzz.*` in bench/results.json): requests sent, answers by status, routes whose property
failed (a 5xx, an error outside the envelope, or something left behind by a refusal), and the
time taken. Exits non-zero when any route failed. Run: `python -m bench.fuzz [--examples 500]`.
"""

from __future__ import annotations

import argparse
import sys
import time

import httpx

from bench.common import local_stack, record, table
from shared.contract import routes
from tests.security.fuzz import FuzzWorld, fuzz_route


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=500, help="generated requests per route")
    args = parser.parse_args()
    failures: dict[str, str] = {}
    started = time.perf_counter()
    with local_stack(schedule_seconds=None) as stack, httpx.Client(timeout=60.0) as http:
        world = FuzzWorld.make(stack, http)
        for route in routes.ROUTES:
            try:
                fuzz_route(world, route, args.examples)
            except Exception as exc:  # the property failed: Hypothesis's shrunk example
                failures[route.operation_id] = str(exc).splitlines()[0][:300]
    seconds = time.perf_counter() - started
    answers = world.answers
    figures = {
        "routes": len(routes.ROUTES),
        "examples_per_route": args.examples,
        "requests": sum(answers.values()),
        "answers_5xx": sum(n for status, n in answers.items() if status >= 500),
        "answers_4xx": sum(n for status, n in answers.items() if 400 <= status < 500),
        "answers_2xx": sum(n for status, n in answers.items() if status < 300),
        "statuses": {str(status): n for status, n in sorted(answers.items())},
        "routes_failed": len(failures),
        "seconds": round(seconds, 1),
    }
    record("fuzz", figures)
    table(
        f"fuzz: {figures['requests']} generated requests", [(k, str(v)) for k, v in figures.items()]
    )
    for operation, problem in failures.items():
        print(f"  FAILED {operation}: {problem}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
