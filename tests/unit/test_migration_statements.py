"""How `make migrate` splits a file for the ledger's `statements`, as the Supabase CLI does."""

from __future__ import annotations

from ops.migrations import split_statements


def test_splits_at_top_level_semicolons_and_trims() -> None:
    assert split_statements("  select 1;\n\nselect 2 ;;\n") == ["select 1", "select 2"]


def test_keeps_semicolons_inside_quotes_dollar_quotes_comments_and_parentheses() -> None:
    sql = (
        "select 'a;b', 'it''s; fine', \"odd;name\";\n"
        "create function f() returns int language plpgsql as $body$ begin return 1; end $body$;\n"
        "do $$ begin perform 1; end $$;\n"
        "-- a comment; not a split\nselect 3;\n"
        "/* block; /* nested; */ still; */ select 4;\n"
        "create rule r as on insert to t do also (insert into u values (1); insert into v values (2));\n"
        "select $1;\n"
    )
    assert split_statements(sql) == [
        "select 'a;b', 'it''s; fine', \"odd;name\"",
        "create function f() returns int language plpgsql as $body$ begin return 1; end $body$",
        "do $$ begin perform 1; end $$",
        "-- a comment; not a split\nselect 3",
        "/* block; /* nested; */ still; */ select 4",
        "create rule r as on insert to t do also (insert into u values (1); insert into v values (2))",
        "select $1",
    ]


def test_a_trailing_statement_without_semicolon_and_comment_lines_are_kept() -> None:
    assert split_statements("select 1;\nselect 2") == ["select 1", "select 2"]
    assert split_statements("select 1;\n-- the end\n") == ["select 1", "-- the end"]
    assert split_statements("\n  \n") == []
