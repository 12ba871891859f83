"""Apply the Supabase stand-in bootstrap and the project's migrations to a local database."""

from __future__ import annotations

from pathlib import Path

import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP_SQL = Path(__file__).resolve().parent / "sql" / "bootstrap.sql"
MIGRATIONS_DIR = REPO_ROOT / "supabase" / "migrations"


def migration_files() -> list[Path]:
    """Migrations in the order the Supabase CLI applies them (file name order)."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"), key=lambda p: p.name)


def apply_schema(dsn: str) -> None:
    """Run bootstrap.sql, then every migration not applied yet; then reload PostgREST's cache.

    Each file is sent as one simple-protocol query inside one transaction: a failing file
    leaves nothing half-applied. Applied versions are recorded where the Supabase CLI keeps
    them, so a kept data dir (`make up` twice) does not replay migrations.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        _run_file(conn, BOOTSTRAP_SQL)  # re-runnable: every object in it is guarded
        conn.execute(
            "create schema if not exists supabase_migrations;"
            " create table if not exists supabase_migrations.schema_migrations"
            " (version text primary key, name text)"
        )
        applied = {
            row[0]
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }
        for path in migration_files():
            version, _, name = path.stem.partition("_")
            if version in applied:
                continue
            with conn.transaction():
                _run_file(conn, path)
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name)"
                    " values (%s, %s)",
                    (version, name),
                )
        conn.execute("NOTIFY pgrst, 'reload schema'")


def _run_file(conn: psycopg.Connection, path: Path) -> None:
    try:
        # bytes, not str: with no parameters psycopg sends the file as it is, all statements.
        conn.execute(path.read_bytes())
    except psycopg.Error as exc:
        exc.add_note(f"while applying {path}")
        raise


def create_user(dsn: str, email: str | None = None) -> str:
    """Insert a row into the auth.users stub; returns its id as a string."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "insert into auth.users (email) values (%s) returning id::text", (email,)
        ).fetchone()
    assert row is not None
    return str(row[0])
