"""Errors that carry their HTTP answer: a status, a snake_case code and a sentence a person can act on.

Handlers map any `AppError` to `{"error": {"code", "message"}}` (DESIGN §3); everything else is a
500 with a generic message, never a stack trace.
"""

from __future__ import annotations


class AppError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(AppError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(AppError):
    status, code = 422, "unprocessable"


class UpstreamError(AppError):
    """A dependency (Supabase, Replicate) failed after our retries; safe to try again later."""

    status, code = 503, "upstream_unavailable"


class ConfigError(RuntimeError):
    """The function's environment is incomplete or invalid (a deploy problem, not a user one)."""
