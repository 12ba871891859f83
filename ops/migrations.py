"""Apply supabase/migrations/ in order and record each one in the Supabase CLI's own ledger.

`make migrate DATABASE_URL=postgresql://...` runs this against a real database; the local stack
(devstack/schema.py) runs the same `apply_migrations` after its stand-in bootstrap. The ledger is
`supabase_migrations.schema_migrations (version text primary key, statements text[], name text)`,
created and filled the way the Supabase CLI does (`supabase db push`, `supabase migration up`), so
either tool sees what the other applied and neither applies a migration twice:

- version and name come from the file name `<digits>_<name>.sql`; files apply in file-name order;
- `statements` holds the file split at top-level semicolons (quotes, dollar quotes, comments and
  parentheses respected), each trimmed of whitespace and the trailing `;`, as the CLI records it;
- each file runs as one transaction together with its ledger row: a failing file leaves nothing,
  and a second runner that races this one fails on the ledger's primary key instead of re-applying.

Like `supabase db push`, it refuses (unless `--include-all`) when the database records versions
this checkout does not have, or when a pending file is older than the newest applied one.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "supabase" / "migrations"
FILE_NAME = re.compile(r"^([0-9]+)_(.*)\.sql$")

# The CLI's own ledger DDL: re-runnable, and it upgrades an older (version, name) ledger.
LEDGER_DDL = (
    "create schema if not exists supabase_migrations",
    "create table if not exists supabase_migrations.schema_migrations"
    " (version text not null primary key)",
    "alter table supabase_migrations.schema_migrations add column if not exists statements text[]",
    "alter table supabase_migrations.schema_migrations add column if not exists name text",
)
# One runner at a time per database (any 64-bit key; this one reads "flurrty migrate").
LOCK_KEY = 0x666C7572_6D696772


class MigrationError(Exception):
    """A state of the files or the database that needs a person's decision."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"))


def local_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, in the order the Supabase CLI applies them (file name order)."""
    migrations = []
    for path in sorted(directory.glob("*.sql"), key=lambda p: p.name):
        match = FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: a migration file must be named <timestamp>_<name>.sql "
                "(`supabase migration new <name>` makes one)"
            )
        migrations.append(Migration(match.group(1), match.group(2), path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        duplicated = sorted({v for v in versions if versions.count(v) > 1})
        raise MigrationError(f"two migration files share a version: {', '.join(duplicated)}")
    return migrations


def split_statements(sql: str) -> list[str]:
    """Split at top-level `;` the way the Supabase CLI does for its ledger's `statements`."""
    statements: list[str] = []
    start = i = depth = 0
    n = len(sql)

    def emit(end: int) -> None:
        statement = sql[start:end].rstrip(";").strip()
        if statement:
            statements.append(statement)

    while i < n:
        char = sql[i]
        if char in "'\"":
            i += 1
            while i < n:  # a doubled quote stays inside
                if sql[i] == char and sql[i + 1 : i + 2] != char:
                    break
                i += 2 if sql[i] == char else 1
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n - 1 if newline < 0 else newline
        elif sql.startswith("/*", i):
            nested, i = 1, i + 2
            while i < n and nested:
                if sql.startswith("/*", i):
                    nested, i = nested + 1, i + 2
                elif sql.startswith("*/", i):
                    nested, i = nested - 1, i + 2
                else:
                    i += 1
            i -= 1
        elif char == "$":
            tag = re.match(r"\$[A-Za-z_0-9]*\$", sql[i:])
            if tag and not tag.group(0)[1:2].isdigit():
                close = sql.find(tag.group(0), i + len(tag.group(0)))
                i = n - 1 if close < 0 else close + len(tag.group(0)) - 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == ";" and depth == 0:
            emit(i + 1)
            start = i + 1
        i += 1
    emit(n)
    return statements


def applied_versions(conn: psycopg.Connection) -> list[str]:
    exists = conn.execute(
        "select to_regclass('supabase_migrations.schema_migrations') is not null"
    ).fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute("select version from supabase_migrations.schema_migrations order by 1")
    return [row[0] for row in rows]


def pending_migrations(
    local: list[Migration], applied: list[str], *, include_all: bool = False
) -> list[Migration]:
    """The files still to apply, after the same safety checks as `supabase db push`."""
    known = {m.version for m in local}
    pending = [m for m in local if m.version not in set(applied)]
    if include_all or not applied:
        return pending
    unknown = [v for v in applied if v not in known]
    if unknown:
        raise MigrationError(
            "the database has migrations this checkout does not: "
            f"{', '.join(unknown)}. Check out the branch that has them, or, if they were "
            "abandoned, `supabase migration repair --status reverted <version>`; "
            "--include-all applies the local ones anyway"
        )
    newest = max(applied)
    early = [m.path.name for m in pending if m.version < newest]
    if early:
        raise MigrationError(
            f"{', '.join(early)} sort before the newest applied migration ({newest}): "
            "rename them with a later timestamp, or pass --include-all to apply them out of order"
        )
    return pending


def apply_migrations(
    conn: psycopg.Connection,
    directory: Path = MIGRATIONS_DIR,
    *,
    include_all: bool = False,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> list[Migration]:
    """Apply every pending migration in order, each with its ledger row; returns those applied.

    `conn` must be in autocommit mode (each file gets its own transaction).
    """
    local = local_migrations(directory)
    conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        pending = pending_migrations(local, applied_versions(conn), include_all=include_all)
        if dry_run:
            for migration in pending:
                log(f"would apply {migration.path.name}")
            return pending
        for statement in LEDGER_DDL:
            conn.execute(statement)
        for migration in pending:
            log(f"applying {migration.path.name}")
            with conn.transaction():
                try:
                    # bytes, not str: with no parameters psycopg sends the file as it is, all
                    # statements in one simple query.
                    conn.execute(migration.path.read_bytes())
                except psycopg.Error as exc:
                    exc.add_note(f"while applying {migration.path}")
                    raise
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name, statements)"
                    " values (%s, %s, %s)",
                    (migration.version, migration.name, migration.statements()),
                )
        return pending
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make migrate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="postgresql://postgres:...@db.<ref>.supabase.co:5432/postgres (default $DATABASE_URL)",
    )
    parser.add_argument("--include-all", action="store_true", help="apply out-of-order files too")
    parser.add_argument("--dry-run", action="store_true", help="list what would be applied")
    args = parser.parse_args(argv)
    if not args.database_url:
        print(
            "make migrate: no database. Give the project's direct connection string (Supabase: "
            "Project Settings -> Database -> Connection string, 'Direct' or 'Session pooler'):\n"
            "  make migrate DATABASE_URL='postgresql://postgres:<password>@db.<ref>.supabase.co:5432/postgres'",
            file=sys.stderr,
        )
        return 2
    try:
        # prepare_threshold=None: nothing is prepared, so a session pooler in front works too.
        with psycopg.connect(args.database_url, autocommit=True, prepare_threshold=None) as conn:
            applied = apply_migrations(conn, include_all=args.include_all, dry_run=args.dry_run)
    except MigrationError as exc:
        print(f"make migrate: {exc}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        print(f"make migrate: cannot connect: {exc}".rstrip(), file=sys.stderr)
        return 2
    if args.dry_run:
        print(f"make migrate: {len(applied)} migration(s) pending")
    else:
        print(f"make migrate: applied {len(applied)} migration(s); the database is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
