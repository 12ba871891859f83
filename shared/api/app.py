"""The Function URL app every handler builds: the resolver and the one mapping from errors to
answers (`{"error": {"code", "message"}}`, the status from the catalogue in `shared.errors`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from shared.api.function_url_resolver import (
    LambdaFunctionUrlResolver,
    NotFoundError,
    Response,
    content_types,
)
from shared.contract.routes import Route
from shared.errors import AppError, ConfigError, ErrorCode
from shared.plumbing.observability import logger
from shared.plumbing.settings import Settings

if TYPE_CHECKING:
    from shared.contract.status import StatusResponse

H = TypeVar("H", bound=Callable[..., Any])


class FunctionUrlApp(LambdaFunctionUrlResolver):
    """Powertools' Function URL resolver that also knows where this container's settings come
    from (the composition root's `settings`), so the edge can check tokens without reaching for
    a global."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        super().__init__()
        self.settings = settings
        self._request = threading.local()
        self.declared: list[Route] = []

    # Powertools keeps the request being resolved on its base class (`BaseRouter.current_event`),
    # which is safe with one request per Lambda container but not in a server that runs
    # handlers in threads (the local stack's Function URLs): two requests at once could read each
    # other's event. Here the request is kept per thread; in Lambda that is the same thing.
    @property
    def current_event(self) -> Any:
        return self._request.event

    @current_event.setter
    def current_event(self, event: Any) -> None:
        self._request.event = event

    @property
    def lambda_context(self) -> Any:
        return self._request.context

    @lambda_context.setter
    def lambda_context(self, context: Any) -> None:
        self._request.context = context

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        self._request.event = self._to_proxy_event(dict(event))
        self._request.context = context
        try:
            return super().resolve(event, context)
        finally:
            self._request.event = self._request.context = None

    def handle(self, route: Route) -> Callable[[H], H]:
        """Register the decorated function as the handler of `route` (`shared.contract.routes`)."""
        self.declared.append(route)
        decorate: Callable[[H], H] = self.route(rule=route.rule, method=route.method)
        return decorate

    def allowed_methods(self, path: str) -> list[str]:
        """The methods this URL's routes take at `path` (none: no route has the path)."""
        return sorted({r.method for r in self.declared if r.matches(path)})


def error_response(error: ErrorCode, message: str) -> Response[Any]:
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": {"code": error.value, "message": message}}),
    )


def respond(status: int, model: BaseModel, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=model.model_dump_json(by_alias=True),
        headers=headers,
    )


def respond_status(answer: StatusResponse) -> Response[Any]:
    """A job's status with when to ask again: `retryAfterSeconds` and, while the job is active,
    the `Retry-After` header (a final job needs no polling: null, and no header)."""
    wait = answer.retry_after_seconds
    headers = None if wait is None else {"Retry-After": str(wait)}
    return respond(200, answer, headers)


def make_app(settings: Callable[[], Settings]) -> FunctionUrlApp:
    app = FunctionUrlApp(settings)

    @app.exception_handler(AppError)
    def _app_error(exc: AppError) -> Response[Any]:
        log = logger.warning if exc.status < 500 else logger.error
        log("request refused", extra={"status": exc.status, "code": exc.code})
        return error_response(exc.error, exc.message)

    @app.exception_handler(ConfigError)
    def _config_error(exc: ConfigError) -> Response[Any]:
        logger.error("configuration error", extra={"detail": str(exc)})
        return error_response(
            ErrorCode.MISCONFIGURED,
            "The service is misconfigured; the operators have been alerted.",
        )

    @app.not_found
    def _not_found(_: NotFoundError) -> Response[Any]:
        allowed = app.allowed_methods(app.current_event.path or "/")
        if allowed:
            answer = error_response(
                ErrorCode.METHOD_NOT_ALLOWED,
                f"This path takes {' or '.join(allowed)} only.",
            )
            answer.headers["Allow"] = ", ".join(allowed)
            return answer
        return error_response(ErrorCode.ROUTE_NOT_FOUND, "There is no such route on this URL.")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[Any]:
        logger.exception("unexpected error")
        return error_response(
            ErrorCode.INTERNAL_ERROR, "Something went wrong on our side; try again."
        )

    return app
