"""pydantic's validation errors as the sentence an answer carries."""

from __future__ import annotations

from pydantic import ValidationError


def first_problem(exc: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(`"<prefix>.<field>: <what is wrong>."`, pydantic's error type) of the first error; the
    field path joins `prefix` and the error's location with dots (`photos[2].size`)."""
    first = exc.errors()[0]
    where = prefix + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
    )
    return f"{where.lstrip('.') or 'body'}: {first['msg']}.", first["type"]
