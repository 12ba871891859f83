"""The committed TypeScript types (clients/ts/*.d.ts) are what the pinned openapi-typescript
makes of the committed OpenAPI documents, and the typed example type-checks with the pinned
TypeScript (`tsc --noEmit`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tools import ts_types


def tsc(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ts_types.tool("tsc"), "-p", project], capture_output=True, text=True, check=False
    )


def test_the_committed_types_are_the_generated_ones() -> None:
    assert ts_types.stale() == [], "run `make api-docs`"


def test_the_typed_example_type_checks() -> None:
    checked = tsc(ts_types.CLIENT)
    assert checked.returncode == 0, checked.stdout


def test_the_types_catch_a_field_the_api_does_not_have(tmp_path: Path) -> None:
    """The check is real: the same example with a misspelt response field fails to compile."""
    for name in ("example.ts", "tsconfig.json", *(f"{s}.d.ts" for s in ts_types.openapi.URLS)):
        shutil.copy(ts_types.CLIENT / name, tmp_path / name)
    example = tmp_path / "example.ts"
    example.write_text(example.read_text().replace("status.retryAfterSeconds", "status.retryAfter"))
    checked = tsc(tmp_path)
    assert checked.returncode != 0 and "retryAfter" in checked.stdout
