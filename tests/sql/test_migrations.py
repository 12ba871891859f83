"""`make migrate` (ops.migrations) on real Postgres: the Supabase CLI's ledger, in order, once.

Each test gets a new database on the session's embedded Postgres with the Supabase stand-in
bootstrap applied (a hosted project has those objects already; `make migrate` never runs it).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.postgres import LocalPostgres
from devstack.schema import BOOTSTRAP_SQL
from ops.migrations import (
    MIGRATIONS_DIR,
    MigrationError,
    apply_migrations,
    local_migrations,
    main,
)

pytestmark = pytest.mark.stack

ALL = local_migrations()


@pytest.fixture
def fresh_dsn(pg: LocalPostgres, db: psycopg.Connection) -> Iterator[str]:
    name = f"migrate_{secrets.token_hex(4)}"
    db.execute(f"create database {name}")
    dsn = pg.dsn(database=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(BOOTSTRAP_SQL.read_bytes())
    try:
        yield dsn
    finally:
        db.execute(f"drop database {name} with (force)")


def ledger(dsn: str) -> list[tuple[str, str, list[str]]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations"
            " order by version"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def migrate(dsn: str, directory: Path = MIGRATIONS_DIR, **options: bool) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [m.version for m in apply_migrations(conn, directory, log=lambda _: None, **options)]


def some_migrations(tmp_path: Path, count: int) -> Path:
    """A migrations folder holding the first `count` files (an older checkout)."""
    folder = tmp_path / f"first_{count}"
    folder.mkdir()
    for migration in ALL[:count]:
        shutil.copy2(migration.path, folder)
    return folder


def table_exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()
    return bool(row and row[0])


def test_a_fresh_database_gets_every_migration_in_order_in_the_cli_ledger(
    fresh_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", fresh_dsn]) == 0
    assert f"applied {len(ALL)} migration(s)" in capsys.readouterr().out
    assert ledger(fresh_dsn) == [(m.version, m.name, m.statements()) for m in ALL]
    assert table_exists(fresh_dsn, "public.ai_training_jobs")
    with psycopg.connect(fresh_dsn) as conn:
        columns = conn.execute(
            "select column_name, data_type, is_nullable from information_schema.columns"
            " where table_schema = 'supabase_migrations' and table_name = 'schema_migrations'"
            " order by ordinal_position"
        ).fetchall()
        key = conn.execute(
            "select a.attname from pg_index i join pg_attribute a"
            " on a.attrelid = i.indrelid and a.attnum = any(i.indkey)"
            " where i.indrelid = 'supabase_migrations.schema_migrations'::regclass"
            " and i.indisprimary"
        ).fetchall()
    # The Supabase CLI's ledger: version text primary key, statements text[], name text.
    assert columns == [
        ("version", "text", "NO"),
        ("statements", "ARRAY", "YES"),
        ("name", "text", "YES"),
    ]
    assert key == [("version",)]


def test_a_second_run_applies_nothing(fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", fresh_dsn]) == 0
    before = ledger(fresh_dsn)
    # The migrations are not re-runnable (`create table` without `if not exists`): a replay fails.
    assert main(["--database-url", fresh_dsn]) == 0
    assert "applied 0 migration(s)" in capsys.readouterr().out
    assert ledger(fresh_dsn) == before


def test_a_partly_migrated_database_gets_only_the_rest(fresh_dsn: str, tmp_path: Path) -> None:
    assert migrate(fresh_dsn, some_migrations(tmp_path, 2)) == [m.version for m in ALL[:2]]
    assert migrate(fresh_dsn) == [m.version for m in ALL[2:]]
    assert [row[0] for row in ledger(fresh_dsn)] == [m.version for m in ALL]


def test_what_the_supabase_cli_applied_is_not_applied_again(fresh_dsn: str) -> None:
    # `supabase db push` writes its ledger with its own DDL and one row per file
    # (supabase/cli pkg/migration/history.go and file.go).
    first = ALL[0]
    with psycopg.connect(fresh_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS supabase_migrations")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations"
            " (version text NOT NULL PRIMARY KEY)"
        )
        conn.execute(
            "ALTER TABLE supabase_migrations.schema_migrations"
            " ADD COLUMN IF NOT EXISTS statements text[]"
        )
        conn.execute(
            "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text"
        )
        conn.execute(first.path.read_bytes())
        conn.execute(
            "INSERT INTO supabase_migrations.schema_migrations(version, name, statements)"
            " VALUES(%s, %s, %s)",
            (first.version, first.name, first.statements()),
        )
    assert migrate(fresh_dsn) == [m.version for m in ALL[1:]]


def test_the_local_stacks_older_ledger_is_upgraded_not_replayed(fresh_dsn: str, tmp_path) -> None:
    # Before this change devstack kept (version, name) only.
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("create schema supabase_migrations")
        conn.execute(
            "create table supabase_migrations.schema_migrations (version text primary key, name text)"
        )
        for migration in ALL[:2]:
            conn.execute(migration.path.read_bytes())
            conn.execute(
                "insert into supabase_migrations.schema_migrations values (%s, %s)",
                (migration.version, migration.name),
            )
    assert migrate(fresh_dsn) == [m.version for m in ALL[2:]]
    assert ledger(fresh_dsn)[-1][2] == ALL[-1].statements()


def test_a_later_migration_is_applied_alone(fresh_dsn: str, tmp_path: Path) -> None:
    migrate(fresh_dsn)
    folder = some_migrations(tmp_path, len(ALL))
    later = folder / "29990101000000_later_probe.sql"
    later.write_text(
        "-- a later migration\ncreate table public.later_probe (id int);\n"
        "comment on table public.later_probe is 'a; b';\n"
    )
    assert migrate(fresh_dsn, folder) == ["29990101000000"]
    assert ledger(fresh_dsn)[-1] == (
        "29990101000000",
        "later_probe",
        [
            "-- a later migration\ncreate table public.later_probe (id int)",
            "comment on table public.later_probe is 'a; b'",
        ],
    )
    assert table_exists(fresh_dsn, "public.later_probe")


def test_a_failing_migration_leaves_nothing_behind(fresh_dsn: str, tmp_path: Path) -> None:
    migrate(fresh_dsn)
    folder = some_migrations(tmp_path, len(ALL))
    (folder / "29990101000000_broken.sql").write_text(
        "create table public.half_done (id int);\nselect * from public.no_such_table;\n"
    )
    with pytest.raises(psycopg.errors.UndefinedTable) as failure:
        migrate(fresh_dsn, folder)
    assert "29990101000000_broken.sql" in "".join(failure.value.__notes__)
    assert not table_exists(fresh_dsn, "public.half_done")
    assert "29990101000000" not in [row[0] for row in ledger(fresh_dsn)]


def test_a_version_the_checkout_lacks_is_refused(
    fresh_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate(fresh_dsn)
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into supabase_migrations.schema_migrations (version, name) values ('29990101000000', 'elsewhere')"
        )
    folder = some_migrations(tmp_path, len(ALL))
    (folder / "29990202000000_next.sql").write_text("create table public.next_probe (id int);\n")
    with pytest.raises(MigrationError, match="29990101000000"):
        migrate(fresh_dsn, folder)
    assert not table_exists(fresh_dsn, "public.next_probe")
    assert migrate(fresh_dsn, folder, include_all=True) == ["29990202000000"]


def test_a_file_older_than_the_newest_applied_is_refused(fresh_dsn: str, tmp_path: Path) -> None:
    migrate(fresh_dsn)
    folder = some_migrations(tmp_path, len(ALL))
    (folder / "20000101000000_early.sql").write_text("create table public.early_probe (id int);\n")
    with pytest.raises(MigrationError, match=r"20000101000000_early\.sql sort before"):
        migrate(fresh_dsn, folder)
    assert not table_exists(fresh_dsn, "public.early_probe")


def test_dry_run_lists_and_changes_nothing(
    fresh_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", fresh_dsn, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert all(f"would apply {m.path.name}" in out for m in ALL)
    assert not table_exists(fresh_dsn, "supabase_migrations.schema_migrations")
    assert not table_exists(fresh_dsn, "public.ai_training_jobs")


def test_a_misnamed_file_is_refused_before_anything_runs(fresh_dsn: str, tmp_path: Path) -> None:
    folder = some_migrations(tmp_path, 1)
    (folder / "add_column.sql").write_text("select 1;\n")
    with pytest.raises(MigrationError, match=r"add_column\.sql: a migration file must be named"):
        migrate(fresh_dsn, folder)
    assert not table_exists(fresh_dsn, "public.ai_training_jobs")


def test_without_a_database_url_it_says_what_to_give(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main([]) == 2
    assert "make migrate DATABASE_URL=" in capsys.readouterr().err


def test_an_unreachable_database_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--database-url", "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2"])
        == 2
    )
    assert "cannot connect" in capsys.readouterr().err
