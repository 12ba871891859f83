"""Reading a request: the caller's token, JSON and model bodies, job ids, headers, the deadline."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError

from shared.api.app import FunctionUrlApp
from shared.api.auth import authenticate
from shared.contract.base import JobRequest
from shared.contract.routes import MAX_JSON_BODY_BYTES, MULTIPART_MAX_BYTES
from shared.domain.caller import Caller, check_claimed_user
from shared.errors import AppError, ErrorCode
from shared.plumbing import json_input
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import logger
from shared.plumbing.validation import first_problem

if TYPE_CHECKING:
    from shared.plumbing.multipart import Form

M = TypeVar("M", bound=BaseModel)


SIGNED_FLOW_HINT = (
    "Photos this large cannot go through this URL: create the job with POST /uploads, "
    "upload each photo to its signed URL, then call POST /uploads/{jobId}/complete."
)


def caller(app: FunctionUrlApp) -> Caller:
    """The signed-in caller (their token checked) or a 401; every user route starts here."""
    who = authenticate(dict(app.current_event.headers or {}), app.settings())
    logger.append_keys(user_id=str(who.user_id))
    return who


def raw_body(app: FunctionUrlApp) -> bytes:
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        return base64.b64decode(body)
    return body.encode("utf-8")


def json_body(app: FunctionUrlApp) -> dict[str, Any]:
    raw = raw_body(app)
    if len(raw) > MAX_JSON_BODY_BYTES:
        raise AppError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"The JSON body is larger than {MAX_JSON_BODY_BYTES} bytes.",
        )
    try:
        value = json_input.loads(raw or b"{}")
    except json_input.JsonRefused as refused:
        raise AppError(ErrorCode.INVALID_JSON, f"The body {refused.reason}.") from None
    if not isinstance(value, dict):
        raise AppError(ErrorCode.INVALID_JSON, "The body must be a JSON object.")
    return value


def parse_model(model: type[M], data: dict[str, Any]) -> M:
    """`data` as `model`; the first problem as the answer: a missing field (400), a job id that
    is not one (400, `invalid_job_id` as in a query or path), any other bad value (422)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        sentence, kind = first_problem(exc)
        if kind == "missing":
            raise AppError(ErrorCode.MISSING_FIELD, sentence) from None
        if exc.errors()[0]["loc"][:1] in (("jobId",), ("job_id",)):
            raise AppError(ErrorCode.INVALID_JOB_ID, "jobId must be a job id (a UUID).") from None
        raise AppError(ErrorCode.INVALID_FIELD, sentence) from None


def parse_job_id(raw: object) -> UUID:
    try:
        return UUID(str(raw))
    except ValueError:
        raise AppError(ErrorCode.INVALID_JOB_ID, "jobId must be a job id (a UUID).") from None


def query_job_id(app: FunctionUrlApp) -> UUID:
    return parse_job_id(app.current_event.get_query_string_value("jobId", ""))


def query_uuid(app: FunctionUrlApp, name: str) -> UUID:
    """A required `?name=<uuid>`."""
    raw = app.current_event.get_query_string_value(name, "") or ""
    if not raw:
        raise AppError(ErrorCode.MISSING_FIELD, f"The query needs {name}.")
    try:
        return UUID(raw)
    except ValueError:
        raise AppError(ErrorCode.INVALID_FIELD, f"{name} must be a UUID.") from None


def query_flag(app: FunctionUrlApp, name: str) -> bool:
    """An optional `?name=1` (or `true`); absent, `0` or `false` is off."""
    raw = (app.current_event.get_query_string_value(name, "") or "").lower()
    if raw not in ("", "0", "1", "false", "true"):
        raise AppError(ErrorCode.INVALID_FIELD, f"{name} must be 1 or 0 (or true or false).")
    return raw in ("1", "true")


def json_request(app: FunctionUrlApp) -> tuple[Caller, dict[str, Any]]:
    """The caller and their JSON object body; a `userId` in it must be the caller's own."""
    who = caller(app)
    body = json_body(app)
    check_claimed_user(who, body.get("userId"))
    return who, body


def job_request(app: FunctionUrlApp) -> tuple[Caller, JobRequest]:
    """The caller and their JSON `{jobId, userId?}`."""
    who, body = json_request(app)
    return who, parse_model(JobRequest, body)


def form_request(app: FunctionUrlApp) -> tuple[Caller, Form]:
    """The caller and their multipart form, refused with a pointer to the signed flow when it
    is too large to have come through a Function URL whole; a `userId` field must be theirs."""
    # Only the upload function takes forms: the parser (python-multipart) loads with its first.
    from shared.plumbing.multipart import parse_form

    who = caller(app)
    body = raw_body(app)
    if len(body) > MULTIPART_MAX_BYTES:
        raise AppError(ErrorCode.PAYLOAD_TOO_LARGE, SIGNED_FLOW_HINT)
    form = parse_form(header(app, "content-type"), body)
    check_claimed_user(who, form.field("userId"))
    return who, form


def deadline(app: FunctionUrlApp) -> Deadline:
    return Deadline.from_context(app.lambda_context)


def header(app: FunctionUrlApp, name: str) -> str | None:
    headers = app.current_event.headers or {}
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)
