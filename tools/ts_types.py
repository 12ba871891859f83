"""TypeScript types of the API, generated from docs/openapi/<url>.json by the pinned
openapi-typescript (clients/ts/package.json and package-lock.json; `make deps` installs them into
.local/ts) into clients/ts/<url>.d.ts.

`python -m tools.ts_types` writes them; `--check` exits 1 when a committed file differs
(tests/unit/test_ts_types.py runs the same check, and type-checks clients/ts/example.ts).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tools import openapi

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "ts"
BIN = ROOT / ".local" / "ts" / "node_modules" / ".bin"
# Fields with a default are optional in a request; answers mark every field required anyway.
OPTIONS = ("--default-non-nullable", "false")


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make deps`")
    return path


def generate(out_dir: Path) -> list[Path]:
    written = []
    for short in openapi.URLS:
        out = out_dir / f"{short}.d.ts"
        subprocess.run(
            [tool("openapi-typescript"), openapi.path_of(short), *OPTIONS, "-o", out],
            check=True,
            capture_output=True,
        )
        written.append(out)
    return written


def stale() -> list[str]:
    """The committed .d.ts files that differ from freshly generated ones."""
    with tempfile.TemporaryDirectory() as tmp:
        return [
            str(CLIENT / fresh.name)
            for fresh in generate(Path(tmp))
            if not (CLIENT / fresh.name).exists()
            or (CLIENT / fresh.name).read_text() != fresh.read_text()
        ]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if out_of_date := stale():
            print(f"out of date: {', '.join(out_of_date)}; run `make api-docs`", file=sys.stderr)
            return 1
        return 0
    generate(CLIENT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
