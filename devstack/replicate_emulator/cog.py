"""What Cog does around a model: input validation, the OpenAPI schema, tqdm bars in `logs`.

Facts from the team reference, Replicate section 2.1 (how Cog reports invalid input: pydantic v1
messages under "Prediction input failed validation: ") and 6.3 (Cog reads the pipe with
universal newlines and strips each line, so every tqdm redraw is its own `\n`-ended line).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

VALIDATION_PREFIX = "Prediction input failed validation: "


@dataclass(frozen=True)
class Field:
    """One `Input(...)` of a Cog predictor or trainer."""

    kind: str  # "str" | "int" | "float" | "bool" | "uri" | "secret"
    default: Any = None
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False


# --- validation (pydantic v1 error shapes) ------------------------------------------------


def _err(name: str, msg: str, kind: str, **ctx: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"loc": ["body", "input", name], "msg": msg, "type": kind}
    if ctx:
        item["ctx"] = ctx
    return item


def coerce(kind: str, value: Any) -> tuple[Any, tuple[str, str] | None]:
    """pydantic v1 coercion: returns (value, (msg, type)) on failure."""
    if kind == "int":
        if isinstance(value, bool):
            return int(value), None
        if isinstance(value, int):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value), None
        return value, ("value is not a valid integer", "type_error.integer")
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), None
        try:
            return float(str(value)), None
        except ValueError:
            return value, ("value is not a valid float", "type_error.float")
    if kind == "bool":
        truthy = {True, "1", "true", "yes", "on", "y", "t"}
        falsy = {False, "0", "false", "no", "off", "n", "f"}
        probe = value.lower() if isinstance(value, str) else value
        if probe in truthy:
            return True, None
        if probe in falsy:
            return False, None
        return value, ("value could not be parsed to a boolean", "type_error.bool")
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value), None
    return value, ("str type expected", "type_error.str")


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _field_errors(name: str, field: Field, value: Any) -> list[dict[str, Any]]:
    if field.kind == "uri":
        scheme = urlsplit(value).scheme if isinstance(value, str) else ""
        if scheme not in ("data", "http", "https"):
            msg = f"'{scheme}' is not a valid URL scheme. 'data', 'http', or 'https' is supported."
            return [_err(name, msg, "value_error")]
        return []
    coerced, problem = coerce("str" if field.kind == "secret" else field.kind, value)
    if problem is not None:
        return [_err(name, problem[0], problem[1])]
    if field.choices is not None and coerced not in field.choices:
        permitted = ", ".join(f"'{c}'" for c in field.choices)
        return [
            _err(
                name,
                f"value is not a valid enumeration member; permitted: {permitted}",
                "type_error.enum",
                enum_values=list(field.choices),
            )
        ]
    if field.ge is not None and coerced < field.ge:
        limit = _num(field.ge)
        msg = f"ensure this value is greater than or equal to {limit}"
        return [_err(name, msg, "value_error.number.not_ge", limit_value=limit)]
    if field.le is not None and coerced > field.le:
        limit = _num(field.le)
        msg = f"ensure this value is less than or equal to {limit}"
        return [_err(name, msg, "value_error.number.not_le", limit_value=limit)]
    return []


def validation_error(fields: Mapping[str, Field], input_: Mapping[str, Any]) -> str | None:
    """The `Prediction input failed validation: ...` text Cog gives, or None if valid.

    Unknown keys are ignored, as Cog does.
    """
    errors: list[dict[str, Any]] = []
    for name, field in fields.items():
        if input_.get(name) is None:
            if field.required:
                errors.append(_err(name, "field required", "value_error.missing"))
            continue
        errors.extend(_field_errors(name, field, input_[name]))
    if not errors:
        return None
    return VALIDATION_PREFIX + json.dumps({"detail": errors}, separators=(",", ":"))


def setting(fields: Mapping[str, Field], input_: Mapping[str, Any], name: str) -> Any:
    """An input after coercion, or its default (only call once validation passed)."""
    field = fields[name]
    if input_.get(name) is None:
        return field.default
    kind = "str" if field.kind in ("secret", "uri") else field.kind
    value, _problem = coerce(kind, input_[name])
    return value


# --- the schema ---------------------------------------------------------------------------

_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "uri": {"type": "string", "format": "uri"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "secret": {"type": "string", "format": "password", "x-cog-secret": True},
}


def openapi_schema(
    fields: Mapping[str, Field],
    *,
    input_title: str,
    output_title: str,
    output: dict[str, Any],
) -> dict[str, Any]:
    """A Cog-style schema: inputs under `components.schemas.<input_title>`, each choice list
    as its own enum component referenced with `allOf`, as Cog generates them."""
    props: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for order, (name, field) in enumerate(fields.items()):
        prop: dict[str, Any] = {"title": name.replace("_", " ").title(), "x-order": order}
        if field.choices is not None:
            components[name] = {
                "enum": list(field.choices),
                "type": _KIND_SCHEMAS[field.kind]["type"],
                "title": name,
                "description": "An enumeration.",
            }
            prop["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
        else:
            prop.update(_KIND_SCHEMAS[field.kind])
        if field.default is not None:
            prop["default"] = field.default
        if field.ge is not None:
            prop["minimum"] = field.ge
        if field.le is not None:
            prop["maximum"] = field.le
        props[name] = prop
    input_schema: dict[str, Any] = {"type": "object", "title": input_title, "properties": props}
    required = [name for name, field in fields.items() if field.required]
    if required:
        input_schema["required"] = required
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "components": {
            "schemas": {
                input_title: input_schema,
                output_title: {**output, "title": output_title},
                **components,
            }
        },
    }


# --- tqdm bars as they reach `logs` ----------------------------------------------------------

_BAR_CHARS = " ▏▎▍▌▋▊▉█"
_BAR_WIDTH = 10


def _bar(n: int, total: int) -> str:
    # tqdm's default 10-cell bar with eighth-block partials.
    frac = n / total if total else 1.0
    full, part = divmod(int(frac * _BAR_WIDTH * 8), 8)
    if full >= _BAR_WIDTH:
        return _BAR_CHARS[-1] * _BAR_WIDTH
    return _BAR_CHARS[-1] * full + _BAR_CHARS[part] + " " * (_BAR_WIDTH - full - 1)


def interval(seconds: float) -> str:
    """tqdm's `format_interval`: mm:ss, or h:mm:ss past an hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def tqdm_line(
    desc: str, n: int, total: int, elapsed: float, rate: float | None = None, postfix: str = ""
) -> str:
    """One redraw in tqdm's default format. `rate` (it/s) is tqdm's smoothed one, n/elapsed
    unless given; below 1 it shows as s/it."""
    prefix = f"{desc}: " if desc else ""
    if n == 0:
        return f"{prefix}  0%|{' ' * _BAR_WIDTH}| 0/{total} [00:00<?, ?it/s]"
    speed = rate if rate is not None else n / max(elapsed, 1e-6)
    remaining = (total - n) / speed
    shown = f"{speed:5.2f}it/s" if speed >= 1 else f"{1 / speed:5.2f}s/it"
    tail = f", {postfix}" if postfix else ""
    return (
        f"{prefix}{100 * n / total:3.0f}%|{_bar(n, total)}| {n}/{total} "
        f"[{interval(elapsed)}<{interval(remaining)}, {shown}{tail}]"
    )


def noise(seed: int, k: int) -> float:
    """A repeatable value in [-1, 1) for step `k` of a run (cheap: no Random object per line)."""
    x = (seed ^ (k * 0x9E3779B97F4A7C15)) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    return x / 2**63 - 1.0
