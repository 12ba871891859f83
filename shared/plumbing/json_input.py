"""JSON from outside, parsed within bounds: no nesting past `MAX_JSON_DEPTH` (the standard
parser recurses once per level and fails past Python's recursion limit), no `NaN`/`Infinity`
(not JSON, and not storable), and, unless told otherwise, no string Postgres or UTF-8 cannot
hold (`\\u0000`, an unpaired surrogate), in keys or values."""

from __future__ import annotations

import json
import re
from typing import Any, Final

MAX_JSON_DEPTH: Final = 32

# A JSON string token (escapes included), and the brackets left once strings are out.
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET: Final = re.compile(r"[\[\]{}]")


class JsonRefused(ValueError):
    """The text is not JSON we take; `reason` ends "The body ..." / "customizationData ..."."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"holds {name}, which is not a JSON number")


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in `text` (strings skipped), without recursion."""
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_STRING.sub('""', text)):
        if bracket.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_value(value: Any) -> None:
    """`JsonRefused` for a parsed value holding a string Postgres or UTF-8 cannot hold."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise JsonRefused("holds a \\u0000 (NUL) character")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise JsonRefused("holds an unpaired surrogate (\\ud800-\\udfff)") from None


def loads(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH, plain_strings: bool = True) -> Any:
    """The parsed value, or `JsonRefused` saying what is wrong (not JSON, too deep, NaN,
    Infinity, or with `plain_strings` a NUL or an unpaired surrogate)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise JsonRefused("is not UTF-8") from None
    if nesting_depth(text) > max_depth:
        raise JsonRefused(f"nests deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except JsonRefused:
        raise
    except (ValueError, RecursionError):
        raise JsonRefused("is not valid JSON") from None
    if plain_strings:
        check_value(value)
    return value
