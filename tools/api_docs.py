"""Regenerate the generated parts of docs/api.md from the code: the route table and the error
catalogue (both from `shared.contract.routes.ROUTES` and `shared.errors.ErrorCode`), and the failure
codes (`shared.domain.job.FailureCode`).

`python -m tools.api_docs` rewrites them; `python -m tools.api_docs --check` exits 1 when the
committed file differs (make test runs the check through tests/unit/test_docs_current.py).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from shared.contract.routes import ROUTES, Auth, Route
from shared.domain.job import FailureCode
from shared.errors import ErrorCode
from tools.openapi import URLS

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
URL_OF = {function: short for short, function in URLS.items()}
AUTH = {Auth.USER: "user token", Auth.WEBHOOK: "Replicate signature", Auth.NONE: "none"}


def where(route: Route) -> str:
    return f"{URL_OF[route.function]} `{route.method} {route.path}`"


def shape(model: type[BaseModel], *, request: bool) -> str:
    """`{jobId, userId?}`: the wire names; `?` marks what a request may leave out."""
    names = [
        (field.alias or name) + ("?" if request and not field.is_required() else "")
        for name, field in model.model_fields.items()
    ]
    return "{" + ", ".join(names) + "}"


def route_table() -> str:
    rows = ["| URL | route | auth | takes | answers | does |", "|---|---|---|---|---|---|"]
    for route in ROUTES:
        takes = [f"`{p.name}` ({p.where})" for p in route.params if p.where == "query"]
        if (body := route.body_model) is not None:
            kind = "multipart " if route.multipart else ""
            takes.append(f"{kind}`{shape(body, request=True)}`")
        answers = ", ".join(
            f"{status} `{shape(model, request=False)}`"
            for status, model in sorted(route.response_models.items())
        )
        rows.append(
            f"| {URL_OF[route.function]} | `{route.method} {route.path}` | {AUTH[route.auth]} "
            f"| {', '.join(takes) or 'nothing'} | {answers} | {route.summary} |"
        )
    return "\n".join(rows)


def routes_answering(code: ErrorCode) -> str:
    if code is ErrorCode.ROUTE_NOT_FOUND:
        return "any path a URL does not have"
    if code is ErrorCode.METHOD_NOT_ALLOWED:
        return "any method a path does not take (with `Allow` naming those it takes)"
    on = [r for r in ROUTES if code in r.errors]
    user_routes = [r for r in ROUTES if r.auth is Auth.USER]
    if len(on) == len(ROUTES):
        return "every route"
    if on == user_routes:
        return "every user route"
    return ", ".join(where(r) for r in on)


def error_table() -> str:
    rows = ["| code | status | routes | what to do |", "|---|---|---|---|"]
    rows += [
        f"| `{code.value}` | {code.status} | {routes_answering(code)} | {code.advice} |"
        for code in ErrorCode
    ]
    return "\n".join(rows)


def failure_table() -> str:
    rows = ["| `errorCode` | means |", "|---|---|"]
    rows += [f"| `{code.value}` | {code.meaning} |" for code in FailureCode]
    return "\n".join(rows)


SECTIONS: dict[str, Callable[[], str]] = {
    "routes": route_table,
    "error-catalogue": error_table,
    "failure-codes": failure_table,
}


def render(text: str) -> str:
    """`text` with every generated section between its markers made current."""
    for name, table in SECTIONS.items():
        section = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.DOTALL)
        if not section.search(text):
            raise ValueError(f"docs/api.md lost its {name} markers")
        text = section.sub(lambda m, t=table: m.group(1) + t() + "\n" + m.group(2), text)  # type: ignore[misc]
    return text


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
