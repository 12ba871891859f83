"""Admission at scale: `admit_trainings` with 10,000 queued jobs (5,000 owners, two twins each),
20 trainings in flight and 2,000 admitted earlier today, on the project's embedded Postgres.

Each figure is the median `Execution Time` of EXPLAIN ANALYZE over repeated runs, every run in a
transaction rolled back (the admission really moves 20 jobs, then nothing is kept). Also what a
status read of a queued job costs (`training_queue_place`: `place_ms_at_10k` with the place the
sweep keeps on the row, `place_first_read_ms_at_10k` for a job queued since, ranked live), the
sweep's refresh of every place (`refresh_positions_ms_at_10k`, once a minute) and its
`training_queue_stats`. Goal: `ms_at_10k` at most 10.
Run: `python -m bench.admission [--queued 10000] [--runs 15]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import psycopg

from bench.common import record, table
from devstack.postgres import LocalPostgres
from devstack.schema import apply_schema

CAP, IN_FLIGHT, ADMITTED_TODAY = 40, 20, 2000


def seed(db: psycopg.Connection, queued: int) -> str:
    """The queue as launch day leaves it; returns the id of the job in the middle of the line."""
    owners = queued // 2
    db.execute(
        "insert into auth.users (email) select 'b' || n || '@bench.test'"
        " from generate_series(1, %s) n",
        [owners + ADMITTED_TODAY + IN_FLIGHT],
    )
    db.execute(
        "create temp table people as select id, row_number() over (order by id) n from auth.users"
    )
    # Done earlier today (billed), in flight now, and the line: each owner's two twins.
    db.execute(
        "insert into ai_training_jobs (user_id, furrsona_name) select id, 'Bench' from people"
        " where n <= %s",
        [ADMITTED_TODAY + IN_FLIGHT],
    )
    db.execute("update ai_training_jobs set status = 'queued', queued_at = now() - interval '2 h'")
    db.execute(
        "update ai_training_jobs set status = 'training', admitted_at = now() - interval '1 h',"
        " reserved_cost_usd = 1.5, claimed_at = now()"
    )
    db.execute(
        "update ai_training_jobs set status = 'failed', error_message = 'bench', cost_usd = 1.2"
        " where id in (select id from ai_training_jobs limit %s)",
        [ADMITTED_TODAY],
    )
    db.execute(
        "insert into ai_training_jobs (user_id, furrsona_name)"
        " select p.id, 'Bench ' || k from people p, generate_series(1, 2) k"
        " where p.n > %s",
        [ADMITTED_TODAY + IN_FLIGHT],
    )
    db.execute(
        "update ai_training_jobs set status = 'queued',"
        " queued_at = now() - interval '1 hour' + random() * interval '50 minutes'"
        " where status = 'pending'"
    )
    db.execute("analyze ai_training_jobs")
    row = db.execute(
        "select id from public.training_queue(1, now()) order by place offset %s limit 1",
        [queued // 2],
    ).fetchone()
    assert row is not None
    return str(row[0])


def explain_ms(db: psycopg.Connection, sql: str, params: list[object], runs: int) -> float:
    times = []
    for _ in range(runs):
        with db.transaction(force_rollback=True):
            plan = db.execute(f"explain (analyze, format json) {sql}", params).fetchone()
        assert plan is not None
        times.append(float(plan[0][0]["Execution Time"]))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flurrty-bench-") as tmp:
        server = LocalPostgres(Path(tmp) / "pg")
        server.start()
        try:
            apply_schema(server.dsn())
            with psycopg.connect(server.dsn(), autocommit=True) as db:
                middle = seed(db, args.queued)
                depth = db.execute("select count(*) from ai_training_jobs where status = 'queued'")
                queued = int(depth.fetchone()[0])  # type: ignore[index]
                with db.transaction(force_rollback=True):
                    admitted = db.execute(
                        "select count(*) from admit_trainings(%s, 1, 100000, 1.5, 100)", [CAP]
                    ).fetchone()
                admit = explain_ms(
                    db, "select * from admit_trainings(%s, 1, 100000, 1.5, 100)", [CAP], args.runs
                )
                first_read = explain_ms(
                    db, "select training_queue_place(%s, 1)", [middle], args.runs
                )
                refresh = explain_ms(db, "select refresh_queue_positions(1, now())", [], args.runs)
                db.execute("select refresh_queue_positions(1, now())")
                place = explain_ms(db, "select training_queue_place(%s, 1)", [middle], args.runs)
                stats = explain_ms(db, "select training_queue_stats()", [], args.runs)
                position = db.execute("select training_queue_place(%s, 1)", [middle]).fetchone()
        finally:
            server.stop()
    figures = {
        "queued": queued,
        "in_flight": IN_FLIGHT,
        "admitted_today": ADMITTED_TODAY,
        "cap": CAP,
        "admitted_per_call": int(admitted[0]) if admitted else 0,
        "ms_at_10k": round(admit, 2),
        "place_ms_at_10k": round(place, 2),
        "place_first_read_ms_at_10k": round(first_read, 2),
        "refresh_positions_ms_at_10k": round(refresh, 2),
        "place_position": json.loads(json.dumps(position[0]))["position"] if position else None,
        "stats_ms_at_10k": round(stats, 2),
        "runs": args.runs,
    }
    record("admission", figures)
    table("admission at scale (median EXPLAIN ANALYZE execution time)", [
        (k, str(v)) for k, v in figures.items()
    ])  # fmt: skip


if __name__ == "__main__":
    main()
