"""The generated parts of the committed docs match the code they are generated from."""

from __future__ import annotations

from tools import api_docs


def test_the_error_table_in_docs_api_is_current() -> None:
    assert api_docs.API_DOC.read_text() == api_docs.render(api_docs.API_DOC.read_text())


def test_every_catalogued_code_is_in_the_table() -> None:
    table = api_docs.error_table()
    assert all(f"`{code.value}`" in table for code in api_docs.ErrorCode)
