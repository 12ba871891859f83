"""Errors that carry their HTTP answer, and the catalogue of every code the API can answer.

An `AppError` is a code from `ErrorCode` (which fixes the HTTP status) and a sentence the person
can act on; the Function URL edge (`shared.api.app`) turns it into
`{"error": {"code": "<snake_case>", "message": "<sentence>"}}` with that status. Anything else is
a 500 with a fixed sentence, never a stack trace. `docs/api.md`'s error table is generated from
`ErrorCode`, and `tests/unit/test_error_catalogue.py` fails when code anywhere names a code that
is not in it.

A leaf module: it imports nothing of ours, so every layer may use it.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """Every code the API answers: the wire code, its HTTP status, and what the caller should do."""

    status: int
    advice: str

    def __new__(cls, code: str, status: int, advice: str) -> ErrorCode:
        member = object.__new__(cls)
        member._value_ = code
        member.status = status
        member.advice = advice
        return member

    @classmethod
    def lookup(cls, code: str) -> ErrorCode:
        """The member for a wire code; KeyError when the catalogue has no such code."""
        member = cls._value2member_map_[code]
        assert isinstance(member, ErrorCode)
        return member

    # 400: the request itself is malformed.
    INVALID_JSON = "invalid_json", 400, "Send a JSON object (and customizationData as one)."
    MISSING_FIELD = "missing_field", 400, "Add the field the message names."
    INVALID_JOB_ID = "invalid_job_id", 400, "Send the jobId you were given (a UUID)."
    INVALID_TWIN_ID = "invalid_twin_id", 400, "Send the twinId you were given (a UUID)."
    BAD_MULTIPART = "bad_multipart", 400, "Send multipart/form-data as a browser's FormData does."
    INVALID_CURSOR = (
        "invalid_cursor",
        400,
        "Send the previous page's nextCursor unchanged, or none for the first page.",
    )
    BAD_WEBHOOK = (
        "bad_webhook",
        400,
        "Replicate only: send the Standard Webhooks headers and a training.",
    )
    # 401: who is calling is not established.
    MISSING_TOKEN = "missing_token", 401, "Sign in and send `Authorization: Bearer <access token>`."
    INVALID_TOKEN = "invalid_token", 401, "Sign in again and send the new access token unchanged."
    TOKEN_EXPIRED = "token_expired", 401, "Refresh the session (or sign in again), then retry."
    BAD_SIGNATURE = (
        "bad_signature",
        401,
        "Replicate only: sign the webhook with the account's secret.",
    )
    STALE_WEBHOOK = "stale_webhook", 401, "Replicate only: deliver within 5 minutes of signing."
    # 403: a claim the token contradicts.
    USER_MISMATCH = "user_mismatch", 403, "Leave userId out, or send the signed-in user's own id."
    # 404: nothing there for this caller (someone else's job answers the same as a missing one).
    JOB_NOT_FOUND = "job_not_found", 404, "Check the jobId; a deleted or foreign job is not found."
    TWIN_NOT_FOUND = (
        "twin_not_found",
        404,
        "Check the twinId; a deleted or foreign twin is not found.",
    )
    VERSION_NOT_FOUND = "version_not_found", 404, "Name a jobId from the twin's own versions."
    PREVIEW_NOT_FOUND = "preview_not_found", 404, "Replicate only: the webhook names no preview."
    ROUTE_NOT_FOUND = "route_not_found", 404, "Check the method and path against the API reference."
    # 405: the path is there, the method is not.
    METHOD_NOT_ALLOWED = (
        "method_not_allowed",
        405,
        "Use one of the methods the `Allow` header names for this path.",
    )
    # 409: the job is not in a state where this can happen.
    JOB_STATE_CHANGED = "job_state_changed", 409, "Read the job's status again, then decide."
    JOB_FINISHED = "job_finished", 409, "The job has ended; delete it, or start a new one."
    JOB_FAILED = (
        "job_failed",
        409,
        "The job failed (its errorCode says why); upload the photos again for a new job.",
    )
    UPLOAD_INCOMPLETE = (
        "upload_incomplete",
        409,
        "PUT every photo to its signed URL, then complete.",
    )
    UPLOAD_EXPIRED = "upload_expired", 409, "Start again with POST /uploads."
    UPLOAD_FAILED = "upload_failed", 409, "Start again with POST /uploads."
    TRAINING_MISMATCH = (
        "training_mismatch",
        409,
        "Replicate only: the webhook names another training.",
    )
    TWIN_BUSY = "twin_busy", 409, "Wait until the twin's version on its way ends, or cancel it."
    TWIN_DELETING = "twin_deleting", 409, "The twin is being deleted; create a new one instead."
    TWIN_STATE_CHANGED = "twin_state_changed", 409, "Read the twin again, then decide."
    VERSION_NOT_READY = "version_not_ready", 409, "Only a completed version can be active."
    VERSION_ACTIVE = "version_active", 409, "Activate another version first, or delete the twin."
    NO_ACTIVE_VERSION = (
        "no_active_version",
        409,
        "Wait until a version of the twin has completed training, then ask again.",
    )
    PREVIEWS_OFF = "previews_off", 409, "Pictures on demand are switched off on this deployment."
    PREDICTION_MISMATCH = (
        "prediction_mismatch",
        409,
        "Replicate only: the webhook names another prediction.",
    )
    # 413: too big.
    PAYLOAD_TOO_LARGE = "payload_too_large", 413, "Send less; for large photos use POST /uploads."
    PHOTO_TOO_LARGE = "photo_too_large", 413, "Export the photo smaller and upload it again."
    PHOTOS_TOO_LARGE = "photos_too_large", 413, "Export some photos smaller and upload them again."
    # 415: not a kind of content we take.
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415, "Send the body type the route takes."
    NOT_AN_IMAGE = "not_an_image", 415, "Upload a JPEG, PNG, WebP or HEIC photo."
    UNSUPPORTED_IMAGE_TYPE = "unsupported_image_type", 415, "Upload a JPEG, PNG, WebP or HEIC."
    # 422: well-formed, but not acceptable.
    INVALID_FIELD = "invalid_field", 422, "Fix the field the message names."
    TOO_FEW_PHOTOS = "too_few_photos", 422, "Upload between the minimum and maximum photo count."
    TOO_MANY_PHOTOS = "too_many_photos", 422, "Upload between the minimum and maximum photo count."
    DUPLICATE_PHOTO = "duplicate_photo", 422, "Replace the repeated photo with a different one."
    EMPTY_FILE = "empty_file", 422, "Choose the photo again and re-upload it."
    CORRUPT_IMAGE = "corrupt_image", 422, "Upload the photo again, or export a fresh copy."
    ANIMATED_IMAGE = "animated_image", 422, "Upload a still photo, not an animation."
    PHOTO_TOO_SMALL = "photo_too_small", 422, "Use a photo whose short side is large enough."
    PHOTO_TOO_NARROW = "photo_too_narrow", 422, "Use a photo that is not so long and thin."
    PHOTO_TOO_MANY_PIXELS = "photo_too_many_pixels", 422, "Export the photo at a lower resolution."
    PHOTO_TOO_COMPLEX = "photo_too_complex", 422, "Export the photo again from a photo app."
    PHOTO_TOO_SLOW = "photo_too_slow", 422, "Export the photo again, smaller, as a JPEG."
    # 429: a limit of ours.
    PREVIEW_LIMIT_REACHED = (
        "preview_limit_reached",
        429,
        "Ask for fewer pictures, or again tomorrow (the limit resets at 00:00 UTC).",
    )
    # 500: our fault; nothing the caller can change.
    MISCONFIGURED = (
        "misconfigured",
        500,
        "Nothing to change on your side; the operators are alerted.",
    )
    INTERNAL_ERROR = "internal_error", 500, "Try again; if it keeps failing, report it."
    # 503: a dependency is in trouble; the same request later is fine.
    UPSTREAM_UNAVAILABLE = "upstream_unavailable", 503, "Try again in a little while."
    UPSTREAM_THROTTLED = "upstream_throttled", 503, "Try again in a minute."
    TOKEN_CHECK_UNAVAILABLE = "token_check_unavailable", 503, "Retry shortly with the same token."
    WEBHOOKS_DISABLED = (
        "webhooks_disabled",
        503,
        "Replicate only: this deployment takes no webhooks.",
    )


class AppError(Exception):
    """An answer for the caller: a catalogued code and a sentence that says what to do."""

    def __init__(self, error: ErrorCode, message: str):
        super().__init__(message)
        self.error = error
        self.message = message

    @property
    def code(self) -> str:
        return str(self.error.value)

    @property
    def status(self) -> int:
        return self.error.status


class UpstreamError(AppError):
    """A dependency (Supabase, Replicate) failed after our retries; safe to try again later."""

    def __init__(
        self,
        message: str,
        error: ErrorCode = ErrorCode.UPSTREAM_UNAVAILABLE,
        *,
        retry_after: float | None = None,
    ):
        if error.status < 500:
            raise ValueError(f"{error} is not an upstream failure")
        super().__init__(error, message)
        self.retry_after = retry_after  # seconds the upstream asked us to wait, if it said


class ConfigError(RuntimeError):
    """The function's environment is incomplete or invalid (a deploy problem, not a user one)."""
