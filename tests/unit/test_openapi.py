"""The committed OpenAPI documents (docs/openapi/) are current, valid OpenAPI 3.1, and name
exactly the routes the three apps register; their examples match their own schemas."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from devstack.function_urls import Answer
from shared.contract import routes
from tests import contract_check
from tests.contract_check import FUNCTIONS, committed, documented, registered
from tools import openapi


@pytest.mark.parametrize("short", openapi.URLS)
def test_the_committed_document_is_the_generated_one(short: str) -> None:
    path = openapi.path_of(short)
    assert path.exists(), "run `python -m tools.openapi`"
    assert path.read_text() == openapi.rendered(openapi.URLS[short]), (
        "run `python -m tools.openapi`"
    )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_document_is_valid_openapi_3_1(function: str) -> None:
    errors = [e.message for e in OpenAPIV31SpecValidator(committed(function)).iter_errors()]
    assert errors == []


def test_the_validator_refuses_a_broken_document() -> None:
    broken = dict(committed(routes.START))
    broken["paths"] = {"/": {"post": {"responses": {"200": {}}}}}  # a response needs a description
    assert list(OpenAPIV31SpecValidator(broken).iter_errors()) != []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_document_has_every_registered_route_and_no_other(function: str) -> None:
    registered_here = registered(function)
    assert registered_here, f"{function} registers no route?"
    assert documented(function) == registered_here
    declared = {
        (r.method, contract_check.normalised(r.path))
        for r in routes.ROUTES
        if r.function == function
    }
    assert declared == registered_here


def examples_in(node: Any) -> list[Any]:
    if isinstance(node, dict):
        found = [node["example"]] if "example" in node and "schema" in node else []
        found += [e["value"] for e in node.get("examples", {}).values()] if "schema" in node else []
        return found + [x for value in node.values() for x in examples_in(value)]
    if isinstance(node, list):
        return [x for value in node for x in examples_in(value)]
    return []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_example_matches_its_schema(function: str) -> None:
    doc = committed(function)
    checked = 0
    for item in doc["paths"].values():
        for op in item.values():
            media = [*op.get("requestBody", {}).get("content", {}).values()]
            media += [m for r in op["responses"].values() for m in r["content"].values()]
            for entry in media:
                if "multipart/form-data" in str(entry.get("encoding")):
                    continue
                schema = {**entry["schema"], "components": doc["components"]}
                for example in examples_in(entry):
                    assert list(OAS31Validator(schema).iter_errors(example)) == [], example
                    checked += 1
    assert checked > len(doc["paths"])


def test_an_answer_outside_the_contract_is_found() -> None:
    status = routes.GET_STATUS
    ok = Answer(status.function, "GET", "/", 200, None)
    assert (
        contract_check.undeclared([ok, Answer(status.function, "GET", "/", 400, "invalid_job_id")])
        == []
    )
    wrong = [
        Answer(status.function, "GET", "/", 422, "too_few_photos"),  # not this route's
        Answer(status.function, "GET", "/", 201, None),  # not its success status
        Answer(status.function, "GET", None, 404, "job_not_found"),  # no route, yet not 404 route
        Answer(status.function, "GET", "/", 500, "<no error envelope>"),
    ]
    assert len(contract_check.undeclared(wrong)) == len(wrong)
    assert contract_check.body_problems(ok, {"jobId": "nope"}) != []
    unreached = contract_check.unreached([ok])
    assert "getStatus: invalid_job_id" in unreached
    assert "getStatus: internal_error" not in unreached  # declared for safety
