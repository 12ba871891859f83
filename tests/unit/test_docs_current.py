"""The generated parts of the committed docs match the code they are generated from."""

from __future__ import annotations

from pathlib import Path

from shared.contract.routes import ROUTES
from shared.domain.job import FailureCode
from tools import api_docs


def test_the_generated_tables_in_docs_api_are_current() -> None:
    assert api_docs.API_DOC.read_text() == api_docs.render(api_docs.API_DOC.read_text())


def test_every_catalogued_code_is_in_the_table_with_the_routes_that_answer_it() -> None:
    table = api_docs.error_table()
    assert all(f"`{code.value}`" in table for code in api_docs.ErrorCode)
    row = next(line for line in table.splitlines() if "`job_failed`" in line)
    assert "start `POST /`" in row and "status" not in row


def test_every_route_and_every_failure_code_is_listed() -> None:
    routes = api_docs.route_table()
    assert all(f"`{route.method} {route.path}`" in routes for route in ROUTES)
    assert len(routes.splitlines()) == len(ROUTES) + 2
    failures = api_docs.failure_table()
    assert all(f"`{code.value}`" in failures for code in FailureCode)


def test_the_layer_map_in_docs_architecture_names_every_module_of_shared() -> None:
    # The tree in "The layers of shared/" is where a newcomer looks a module up.
    repo = Path(__file__).resolve().parents[2]
    tree = (repo / "docs/architecture.md").read_text().split("## The layers of `shared/`")[1]
    tree = tree.split("```")[1]
    listed = {line.split("── ")[1].split()[0] for line in tree.splitlines() if "── " in line}
    modules = {
        path.name
        for path in (repo / "shared").rglob("*.py")
        if path.name != "__init__.py" and ".venv" not in path.parts
    }
    assert modules - listed == set()
