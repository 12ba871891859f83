"""What every Function URL handler shares: the resolver, error bodies, auth, bodies, deadlines."""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError

from shared.auth import Caller, authenticate, check_claimed_user
from shared.errors import AppError, BadRequest, ConfigError, PayloadTooLarge, Unprocessable
from shared.function_url_resolver import (
    LambdaFunctionUrlResolver,
    NotFoundError,
    Response,
    content_types,
)
from shared.models import JobRequest
from shared.observability import logger
from shared.retry import Deadline
from shared.settings import get_settings

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BODY_BYTES = 64 * 1024


def error_response(status: int, code: str, message: str) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": {"code": code, "message": message}}),
    )


def respond(status: int, model: BaseModel) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=model.model_dump_json(by_alias=True),
    )


def make_app() -> LambdaFunctionUrlResolver:
    app = LambdaFunctionUrlResolver()

    @app.exception_handler(AppError)
    def _app_error(exc: AppError) -> Response[Any]:
        log = logger.warning if exc.status < 500 else logger.error
        log("request refused", extra={"status": exc.status, "code": exc.code})
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(ConfigError)
    def _config_error(exc: ConfigError) -> Response[Any]:
        logger.error("configuration error", extra={"detail": str(exc)})
        return error_response(
            500, "misconfigured", "The service is misconfigured; the operators have been alerted."
        )

    @app.not_found
    def _not_found(_: NotFoundError) -> Response[Any]:
        return error_response(404, "route_not_found", "There is no such route on this URL.")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[Any]:
        logger.exception("unexpected error")
        return error_response(500, "internal_error", "Something went wrong on our side; try again.")

    return app


def caller(app: LambdaFunctionUrlResolver) -> Caller:
    who = authenticate(dict(app.current_event.headers or {}), get_settings())
    logger.append_keys(user_id=str(who.user_id))
    return who


def raw_body(app: LambdaFunctionUrlResolver) -> bytes:
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        return base64.b64decode(body)
    return body.encode("utf-8")


def json_body(app: LambdaFunctionUrlResolver) -> dict[str, Any]:
    raw = raw_body(app)
    if len(raw) > MAX_JSON_BODY_BYTES:
        raise PayloadTooLarge(f"The JSON body is larger than {MAX_JSON_BODY_BYTES} bytes.")
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(value, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    return value


def parse_model(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        code = "missing_field" if first["type"] == "missing" else "invalid_field"
        error = (
            BadRequest
            if first["type"] in ("missing", "uuid_parsing", "uuid_type")
            else Unprocessable
        )
        raise error(f"{where}: {first['msg']}.", code=code) from None


def parse_job_id(raw: object) -> UUID:
    try:
        return UUID(str(raw))
    except ValueError:
        raise BadRequest("jobId must be a job id (a UUID).", code="invalid_job_id") from None


def query_job_id(app: LambdaFunctionUrlResolver) -> UUID:
    return parse_job_id(app.current_event.get_query_string_value("jobId", ""))


def job_request(app: LambdaFunctionUrlResolver) -> tuple[Caller, JobRequest]:
    """The caller and their JSON `{jobId, userId?}`; a `userId` must be the caller's own."""
    who = caller(app)
    request = parse_model(JobRequest, json_body(app))
    check_claimed_user(who, request.user_id)
    return who, request


def deadline(app: LambdaFunctionUrlResolver) -> Deadline:
    return Deadline.from_context(app.lambda_context)


def header(app: LambdaFunctionUrlResolver, name: str) -> str | None:
    headers = app.current_event.headers or {}
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)
