"""Apply the Supabase stand-in bootstrap and the project's migrations to a local database."""

from __future__ import annotations

from pathlib import Path

import psycopg

from ops.migrations import apply_migrations

BOOTSTRAP_SQL = Path(__file__).resolve().parent / "sql" / "bootstrap.sql"


def apply_schema(dsn: str) -> None:
    """Run bootstrap.sql, then every migration not applied yet; then reload PostgREST's cache.

    The migrations go through `ops.migrations`, the same code as `make migrate`, so the local
    database keeps the Supabase CLI's ledger too and a kept data dir (`make up` twice) does not
    replay them. The local database is throwaway: files from another branch apply out of order.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The stand-in for what Supabase pre-creates; never run against a real project.
        try:
            conn.execute(BOOTSTRAP_SQL.read_bytes())  # re-runnable: every object in it is guarded
        except psycopg.Error as exc:
            exc.add_note(f"while applying {BOOTSTRAP_SQL}")
            raise
        apply_migrations(conn, include_all=True, log=lambda _: None)
        conn.execute("NOTIFY pgrst, 'reload schema'")


def create_user(dsn: str, email: str | None = None) -> str:
    """Insert a row into the auth.users stub; returns its id as a string."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "insert into auth.users (email) values (%s) returning id::text", (email,)
        ).fetchone()
    assert row is not None
    return str(row[0])
