"""Regenerate the generated parts of docs/api.md from the code (the error catalogue).

`python -m tools.api_docs` rewrites them; `python -m tools.api_docs --check` exits 1 when the
committed file differs (make test runs the check through tests/unit/test_docs_current.py).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from shared.errors import ErrorCode

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def error_table() -> str:
    rows = ["| code | status | what to do |", "|---|---|---|"]
    rows += [f"| `{code.value}` | {code.status} | {code.advice} |" for code in ErrorCode]
    return "\n".join(rows)


def render(text: str) -> str:
    """`text` with every generated section between its markers made current."""
    section = re.compile(
        r"(<!-- error-catalogue:start -->\n).*?(<!-- error-catalogue:end -->)", re.DOTALL
    )
    if not section.search(text):
        raise ValueError("docs/api.md lost its error-catalogue markers")
    return section.sub(lambda m: m.group(1) + error_table() + "\n" + m.group(2), text)


def main(argv: list[str]) -> int:
    current = API_DOC.read_text()
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            print("docs/api.md is out of date: run `python -m tools.api_docs`", file=sys.stderr)
            return 1
        return 0
    API_DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
