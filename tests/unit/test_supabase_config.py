"""supabase/config.toml: what the Supabase CLI needs to push this repository's migrations."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ops.migrations import MIGRATIONS_DIR, local_migrations

CONFIG = Path(__file__).resolve().parents[2] / "supabase" / "config.toml"


def test_the_cli_config_sits_next_to_the_migrations_it_pushes() -> None:
    config = tomllib.loads(CONFIG.read_text())
    assert MIGRATIONS_DIR.parent == CONFIG.parent  # the CLI reads supabase/migrations/ beside it
    assert config["project_id"] == "flurrty-twin"
    assert config["db"]["migrations"]["enabled"] is True
    assert config["db"]["seed"]["enabled"] is False  # no seed.sql to load
    assert isinstance(config["db"]["major_version"], int)
    assert local_migrations(), "every file is named <timestamp>_<name>.sql"
