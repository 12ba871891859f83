"""The chaos run at scale (issue 5): the harness of tests/chaos with more jobs, people and faults.

Jobs go through upload, start (in concurrent duplicates, the start function dying at random between
its steps) and training to their final state while a quarter of all Replicate and Supabase calls
fail; then the guarantees are checked: no row lost, one training per started job, every job in
the state its training says, progress never lower. Exits non-zero if any is broken.
Run: `python -m bench.chaos [--jobs 300] [--fault-rate 0.25] [--seed 5]`.
"""

from __future__ import annotations

import argparse
import sys

from bench.common import local_stack, record, table
from tests.chaos.harness import ChaosOptions, run_chaos


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--fault-rate", type=float, default=0.25)
    parser.add_argument("--crash-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    options = ChaosOptions(
        jobs=args.jobs,
        users=args.users,
        fault_rate=args.fault_rate,
        crash_rate=args.crash_rate,
        failing_trainings=max(1, args.jobs // 20),
        webhook_faults=max(1, args.jobs // 10),
        # Timeouts for a loaded machine: hundreds of jobs share one PostgREST pool of 10.
        claim_timeout_seconds=10.0,
        invocation_seconds=6.0,
        request_timeout_seconds=2.0,
        hold_seconds=2.5,
        give_up_seconds=600.0,
        workers=32,
        seed=args.seed,
    )
    with local_stack(
        schedule_seconds=None, boot_seconds=0.2, train_seconds=1.0, extra_env=options.env()
    ) as stack:
        report = run_chaos(stack, options)
    figures = report.figures()
    figures.update(crash_points=report.crash_points, fault_rate_asked=options.fault_rate)
    record("chaos", figures)
    table(
        f"chaos: {report.jobs} jobs, {options.fault_rate:.0%} of upstream calls faulted, "
        f"crashes and duplicate starts",
        [(k, str(v)) for k, v in figures.items()],
    )
    for problem in report.problems[:20]:
        print(f"  PROBLEM: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
