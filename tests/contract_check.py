"""The API contract against what the handlers do: the routes the three apps register, the
OpenAPI documents in docs/openapi/, and the answers the local Function URLs recorded during the
test run (every code answered on a route must be declared for it, every body must match its
documented schema, and every declared code must be seen or be declared for a stated reason).

Used by tests/unit/test_openapi.py and, at the end of a run, by tests/conftest.py."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS31Validator

from devstack.function_urls import Answer, AnswerLog
from shared.contract import routes
from shared.errors import ErrorCode
from tools import openapi

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = (routes.UPLOAD, routes.START, routes.STATUS)
E = ErrorCode

# Codes a route declares that the test run does not provoke on it, each with why it is declared.
DECLARED_FOR_SAFETY: dict[ErrorCode, str] = {
    E.INTERNAL_ERROR: "any unexpected exception, on every route (the edge's last resort)",
    E.MISCONFIGURED: "a deployment whose settings do not validate, on every route",
    E.JOB_STATE_CHANGED: "a compare-and-set the database refuses because another call moved "
    "the job in between; the races are proven on the JobStore (tests/sql), not timed over HTTP",
    E.UPSTREAM_THROTTLED: "Replicate answering 429 past our retries",
    E.TOKEN_CHECK_UNAVAILABLE: "the JWKS unreachable for a token signed with a new key",
    E.UPSTREAM_UNAVAILABLE: "Supabase or Replicate down past our retries",
    E.PHOTO_TOO_SLOW: "a decode still running past PHOTO_DECODE_SECONDS; provoked with a stand-in "
    "clock in tests/unit/test_photos.py (timing one over HTTP would be a timed test)",
    E.TWIN_STATE_CHANGED: "a write the twins rules refuse because another call changed the twin "
    "or its versions in between (a retrain racing a deletion, an activation racing a version's "
    "deletion); proven on the stores (tests/sql/test_job_store_contract.py, test_twins_table.py)",
}


def normalised(path: str) -> str:
    """`/uploads/<job_id>/complete` and `/uploads/{jobId}/complete` both as
    `/uploads/{}/complete`."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", "/" + path.lstrip("/"))


def registered(function: str) -> set[tuple[str, str]]:
    """(method, path) of every route the function's app registers with Powertools."""
    path = REPO / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"{function}_registered", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app
    return {
        (r.method.upper(), normalised(r.path)) for r in app._static_routes + app._dynamic_routes
    }


@cache
def committed(function: str) -> dict[str, Any]:
    short = next(name for name, f in openapi.URLS.items() if f == function)
    loaded: dict[str, Any] = json.loads(openapi.path_of(short).read_text())
    return loaded


def documented(function: str) -> set[tuple[str, str]]:
    return {
        (method.upper(), normalised(path))
        for path, item in committed(function)["paths"].items()
        for method in item
    }


def route_for(answer: Answer) -> routes.Route | None:
    if answer.route is None:
        return None
    key = (answer.function, answer.method, normalised(answer.route))
    return next(r for r in routes.ROUTES if (r.function, r.method, normalised(r.path)) == key)


def body_problems(answer: Answer, body: Any) -> list[str]:
    """Where `body` breaks the schema the committed document gives for this answer."""
    route = route_for(answer)
    if route is None:
        return []
    doc = committed(answer.function)
    response = doc["paths"][route.path][route.method.lower()]["responses"].get(str(answer.status))
    if response is None:
        return [f"status {answer.status} is not documented"]
    schema = {**response["content"]["application/json"]["schema"], "components": doc["components"]}
    return [error.message for error in OAS31Validator(schema).iter_errors(body)]


def undeclared(answers: Iterable[Answer]) -> list[str]:
    """Answers the registry does not declare: an error code outside the route's codes, a
    success status it does not list, or anything but route_not_found where no route matched."""
    problems = []
    for answer in sorted(answers, key=str):
        route = route_for(answer)
        if route is None:
            if answer.code not in (E.ROUTE_NOT_FOUND.value, E.METHOD_NOT_ALLOWED.value):
                problems.append(f"{answer}: no route matched, yet not route_not_found")
        elif answer.code is None:
            if answer.status not in route.responses:
                problems.append(f"{answer}: success status not declared")
        elif answer.code not in {c.value for c in route.errors}:
            problems.append(f"{answer}: code not declared for {route.operation_id}")
    return problems


def unreached(answers: Iterable[Answer]) -> list[str]:
    """Codes declared for a route that no answer showed and that are not declared for safety."""
    seen = {(route.operation_id, a.code) for a in answers if (route := route_for(a))}
    return [
        f"{route.operation_id}: {code.value}"
        for route in routes.ROUTES
        for code in sorted(route.errors, key=lambda c: c.value)
        if (route.operation_id, code.value) not in seen and code not in DECLARED_FOR_SAFETY
    ]


# The suites whose answers prove that declared codes are reachable (tests/chaos is random).
REACHING_SUITES = ("tests/e2e", "tests/security", "tests/corpus")


def run_problems(recorded: list[tuple[AnswerLog, bool]], whole_run: bool) -> list[str]:
    """What the run's answers say against the contract. Codes only reachable are checked when
    the whole of `REACHING_SUITES` ran and passed (a partial run reaches less)."""
    bodies: dict[Answer, list[Any]] = {}
    reaching: set[Answer] = set()
    for log, reaches in recorded:
        for answer, kept in log.bodies.items():
            bodies.setdefault(answer, []).extend(kept)
        if reaches:
            reaching |= log.answers()
    problems = undeclared(bodies)
    for answer, kept in sorted(bodies.items(), key=lambda item: str(item[0])):
        for body in kept:
            problems += [f"{answer}: body {problem}" for problem in body_problems(answer, body)]
    if whole_run:
        problems += [f"declared, never answered: {where}" for where in unreached(reaching)]
    return problems
