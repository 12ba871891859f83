"""One catalogue of error codes (`shared.errors.ErrorCode`): every code the code raises and every
code the tests expect is in it, with one HTTP status each."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import AppError, ErrorCode, UpstreamError
from shared.photos.rules import PhotoRejected

REPO = Path(__file__).resolve().parents[2]
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
RAISERS = {"AppError", "UpstreamError", "PhotoRejected", "error_response"}
PASSED_ON = "<passed on>"


def sources(*folders: str) -> Iterator[tuple[Path, ast.Module]]:
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text())


def code_arguments(call: ast.Call) -> list[ast.expr]:
    """The expressions that name the error code of an error being built."""
    name = call.func.id if isinstance(call.func, ast.Name) else None
    keyword = [k.value for k in call.keywords if k.arg in ("error", "code")]
    if name in ("AppError", "error_response", "PhotoRejected"):
        return call.args[:1] + keyword
    if name == "UpstreamError":
        return call.args[1:2] + keyword
    return []


def named_codes(node: ast.expr) -> Iterator[str | None]:
    """The wire codes an argument can evaluate to; None for anything that is not a catalogue
    reference (a variable, a call, a string built at run time)."""
    if isinstance(node, ast.IfExp):
        yield from named_codes(node.body)
        yield from named_codes(node.orelse)
    elif (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "ErrorCode"
    ):
        member = getattr(ErrorCode, node.attr, None)
        yield member.value if isinstance(member, ErrorCode) else f"<missing {node.attr}>"
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Attribute) and node.attr == "error":
        yield PASSED_ON  # an AppError's own code, handed on: checked where it was raised
    else:
        yield None


def test_every_code_raised_is_in_the_catalogue() -> None:
    catalogue = {code.value for code in ErrorCode}
    problems = []
    for path, tree in sources("shared", "functions"):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id not in RAISERS or path.name == "errors.py":
                continue
            for argument in code_arguments(node):
                for code in named_codes(argument):
                    if code not in catalogue and code != PASSED_ON:
                        where = f"{path.relative_to(REPO)}:{node.lineno}"
                        problems.append(f"{where}: {code or ast.unparse(argument)}")
    assert problems == []


def expected_codes() -> Iterator[tuple[str, str]]:
    """Codes the tests expect: `(status, "code")` pairs, and comparisons with a `.code` or
    `["code"]`."""
    for path, tree in sources("tests"):
        where = str(path.relative_to(REPO))
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple):
                values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if any(isinstance(v, int) and 400 <= v < 600 for v in values):
                    for value in values:
                        if isinstance(value, str) and SNAKE.match(value):
                            yield where, value
            elif isinstance(node, ast.Compare):
                left = node.left
                is_code = (isinstance(left, ast.Attribute) and left.attr == "code") or (
                    isinstance(left, ast.Subscript)
                    and isinstance(left.slice, ast.Constant)
                    and left.slice.value == "code"
                )
                for right in node.comparators if is_code else []:
                    if isinstance(right, ast.Constant) and isinstance(right.value, str):
                        yield where, right.value


# Codes that tests compare against and that are not ours: Postgres SQLSTATEs, Storage's and
# Replicate's own error codes (the emulators' conformance tests), Supabase Auth's.
FOREIGN = re.compile(r"^([0-9A-Z]{5}|PGRST\d+|[A-Z][A-Za-z]+)$")
SUPABASE_AUTH_CODES = {
    "user_not_found",
    "not_admin",
    # the local sign-up and sign-in (tests/e2e/test_local_auth.py)
    "email_address_invalid",
    "invalid_credentials",
    "user_already_exists",
    "weak_password",
    "bad_json",
}


def test_every_code_the_tests_expect_is_in_the_catalogue() -> None:
    catalogue = {code.value for code in ErrorCode}
    unknown = sorted(
        {(where, code) for where, code in expected_codes() if code not in catalogue}
        - {(w, c) for w, c in expected_codes() if FOREIGN.match(c) or c in SUPABASE_AUTH_CODES}
    )
    assert unknown == []


def test_codes_are_unique_snake_case_with_a_status_and_advice() -> None:
    codes = [code.value for code in ErrorCode]
    assert len(codes) == len(set(codes))
    for code in ErrorCode:
        assert SNAKE.match(code.value), code
        assert 400 <= code.status < 600, code
        assert code.advice.strip().endswith("."), code


def test_an_error_answers_its_codes_status() -> None:
    assert AppError(ErrorCode.JOB_NOT_FOUND, "x").status == 404
    assert UpstreamError("x").code == "upstream_unavailable"
    assert UpstreamError("x", ErrorCode.UPSTREAM_THROTTLED).status == 503
    with pytest.raises(ValueError):
        UpstreamError("x", ErrorCode.JOB_NOT_FOUND)  # not an upstream failure
    with pytest.raises(KeyError):
        PhotoRejected("no_such_code", 422, "x", label="Photo 1")
    with pytest.raises(ValueError):
        PhotoRejected("corrupt_image", 415, "x", label="Photo 1")  # its status is 422


def test_the_checker_catches_a_code_that_is_not_catalogued(tmp_path: Path) -> None:
    tree = ast.parse('raise AppError(ErrorCode.NO_SUCH, "x")\nraise PhotoRejected("nope", 1, "")')
    found = [
        code
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for argument in code_arguments(node)
        for code in named_codes(argument)
    ]
    assert found == ["<missing NO_SUCH>", "nope"]
