"""The route registry, `ROUTES`: per route its function, method, path, auth, bodies, success
statuses and every error code it can answer. Handlers register their routes from it
(`@app.handle(ROUTE)`), and `python -m tools.openapi` writes the OpenAPI documents in docs/openapi/
from it; tests check that the registered routes, the registry and the documents agree, and that
every code a route answers during the test run is declared for it.

A route names its bodies (`"contract.status.StatusResponse"`, from `shared`) rather than holding
the classes: registering a route builds no model, so each function builds only the models of the
routes it serves, when it first serves them (cold start, bench cold_start)."""

from __future__ import annotations

import enum
import importlib
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_snake

from shared.errors import ErrorCode

UPLOAD = "upload_training_photos"
START = "start_ai_training"
STATUS = "check_training_status"


class Auth(enum.Enum):
    USER = "user"  # Authorization: Bearer <the user's Supabase access token>
    WEBHOOK = "webhook"  # Replicate's Standard Webhooks signature over the raw body
    NONE = "none"


@dataclass(frozen=True)
class Param:
    """A query or path parameter; `schema` is its JSON Schema."""

    name: str
    where: str  # "query" or "path"
    description: str
    schema: dict[str, Any]
    required: bool = True


@dataclass(frozen=True)
class Route:
    function: str
    method: str
    path: str  # OpenAPI form: /uploads/{jobId}/complete
    operation_id: str
    summary: str
    auth: Auth
    responses: dict[int, str]  # success status -> the body's model, named from `shared`
    errors: frozenset[ErrorCode]
    body: str | None = None  # the JSON body's model (or the multipart form's when `multipart`)
    multipart: bool = False
    params: tuple[Param, ...] = ()
    # A larger body is refused with 413 payload_too_large. None: no limit of ours (the route
    # reads no body, or, the webhook, takes what Lambda lets through: a training's logs are long).
    body_limit: int | None = None
    polling: bool = False  # a status answer: `retryAfterSeconds` and Retry-After
    description: str = ""

    @property
    def body_model(self) -> type[BaseModel] | None:
        return None if self.body is None else model(self.body)

    @property
    def response_models(self) -> dict[int, type[BaseModel]]:
        return {status: model(name) for status, name in self.responses.items()}

    @property
    def rule(self) -> str:
        """The path as Powertools' resolver takes it: `{jobId}` becomes `<job_id>`."""
        return re.sub(r"\{(\w+)\}", lambda m: f"<{to_snake(m.group(1))}>", self.path)

    def matches(self, path: str) -> bool:
        """Whether a request path is this route's path (any method): `{jobId}` is one segment."""
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(self.path))
        return re.fullmatch(pattern, path) is not None or (
            path.endswith("/") and re.fullmatch(pattern, path.rstrip("/") or "/") is not None
        )


def model(name: str) -> type[BaseModel]:
    """The model a route names: `contract.status.StatusResponse` is `shared.contract.status`'s."""
    module, _, attribute = name.rpartition(".")
    found = getattr(importlib.import_module(f"shared.{module}"), attribute)
    assert isinstance(found, type) and issubclass(found, BaseModel), name
    return found


ROUTES: list[Route] = []


def route(*args: Any, **kwargs: Any) -> Route:
    """Declare a route: it joins `ROUTES` (and so the OpenAPI document and the checks)."""
    declared = Route(*args, **kwargs)
    ROUTES.append(declared)
    return declared


E = ErrorCode
MAX_JSON_BODY_BYTES = 64 * 1024
# A Function URL request carries at most 6 MB including base64 and the event envelope; the decoded
# multipart body that fits is about 4.4 MB; from 4 MB on the handler refuses it, naming the signed
# flow, while the answer can still reach it.
MULTIPART_MAX_BYTES = 4_000_000

# Every route: a bug or a broken deployment.
_ANY = frozenset({E.INTERNAL_ERROR, E.MISCONFIGURED})
# Every route a user calls: the token check, and the job table behind it.
_USER = _ANY | {
    E.MISSING_TOKEN,
    E.INVALID_TOKEN,
    E.TOKEN_EXPIRED,
    E.TOKEN_CHECK_UNAVAILABLE,
    E.UPSTREAM_UNAVAILABLE,
}
_JSON = frozenset({E.INVALID_JSON, E.PAYLOAD_TOO_LARGE, E.USER_MISMATCH})
_JOB_BODY = _JSON | {E.MISSING_FIELD, E.INVALID_JOB_ID, E.INVALID_FIELD, E.JOB_NOT_FOUND}
_JOB_QUERY = frozenset({E.INVALID_JOB_ID, E.JOB_NOT_FOUND})
_NEW_JOB = frozenset(
    {E.MISSING_FIELD, E.INVALID_FIELD, E.INVALID_JSON, E.TOO_FEW_PHOTOS, E.TOO_MANY_PHOTOS}
)
# What checking one photo's content can answer (shared/photos).
_PHOTO = frozenset(
    {
        E.PHOTO_TOO_LARGE,
        E.NOT_AN_IMAGE,
        E.UNSUPPORTED_IMAGE_TYPE,
        E.EMPTY_FILE,
        E.CORRUPT_IMAGE,
        E.ANIMATED_IMAGE,
        E.PHOTO_TOO_SMALL,
        E.PHOTO_TOO_NARROW,
        E.PHOTO_TOO_MANY_PIXELS,
        E.PHOTO_TOO_COMPLEX,
        E.PHOTO_TOO_SLOW,
        E.DUPLICATE_PHOTO,
    }
)
_REPLICATE = frozenset({E.UPSTREAM_THROTTLED})
# An upload that retrains a twin (`twinId`), or makes a new one.
_VERSION = frozenset(
    {E.INVALID_TWIN_ID, E.TWIN_NOT_FOUND, E.TWIN_BUSY, E.TWIN_DELETING, E.TWIN_STATE_CHANGED}
)
_TWIN_PATH = frozenset({E.INVALID_TWIN_ID, E.TWIN_NOT_FOUND})

_JOB_ID = {"type": "string", "format": "uuid"}
JOB_ID_QUERY = Param("jobId", "query", "The job's id (a UUID).", _JOB_ID)
HISTORY_QUERY = Param(
    "history",
    "query",
    "`1` (or `true`) adds the progress history (loss and pace per step) to the answer.",
    {"type": "string", "enum": ["0", "1", "false", "true"]},
    required=False,
)
TWIN_ID_PATH = Param("twinId", "path", "The twin's id (a UUID).", _JOB_ID)

UPLOAD_MULTIPART = route(
    UPLOAD,
    "POST",
    "/",
    "uploadPhotos",
    "Create a job from 3-6 small photos in one multipart request",
    Auth.USER,
    {201: "contract.upload.UploadResponse"},
    _USER
    | _NEW_JOB
    | _PHOTO
    | _VERSION
    | {
        E.PAYLOAD_TOO_LARGE,
        E.USER_MISMATCH,
        E.UNSUPPORTED_MEDIA_TYPE,
        E.BAD_MULTIPART,
    },
    body="contract.upload.UploadForm",
    multipart=True,
    body_limit=MULTIPART_MAX_BYTES,
    description="Every photo is checked by content and normalised before anything is stored; a "
    "refused upload leaves no job and no object. Larger photos: `POST /uploads`.",
)
CREATE_SIGNED_UPLOAD = route(
    UPLOAD,
    "POST",
    "/uploads",
    "createSignedUpload",
    "Create a job and one signed upload URL per photo (phone-sized photos)",
    Auth.USER,
    {201: "contract.upload.SignedUploadResponse"},
    _USER | _JSON | _NEW_JOB | _VERSION | {E.PHOTO_TOO_LARGE, E.EMPTY_FILE, E.PHOTOS_TOO_LARGE},
    body="contract.upload.SignedUploadRequest",
    body_limit=MAX_JSON_BODY_BYTES,
    description="PUT each photo to its `url` with `Content-Type: contentType` (no Authorization "
    "header), before `expiresAt`, then call `POST /uploads/{jobId}/complete`.",
)
COMPLETE_SIGNED_UPLOAD = route(
    UPLOAD,
    "POST",
    "/uploads/{jobId}/complete",
    "completeSignedUpload",
    "Check and store the uploaded photos; the job becomes pending (repeatable)",
    Auth.USER,
    {200: "contract.upload.UploadResponse"},
    _USER
    | _JSON
    | _JOB_QUERY
    | _PHOTO
    | {E.UPLOAD_INCOMPLETE, E.UPLOAD_EXPIRED, E.UPLOAD_FAILED, E.PHOTOS_TOO_LARGE}
    | {E.JOB_STATE_CHANGED},
    body="contract.upload.CompleteRequest",
    params=(Param("jobId", "path", "The job's id from `POST /uploads`.", _JOB_ID),),
    body_limit=MAX_JSON_BODY_BYTES,
    description="A photo not uploaded yet: 409 `upload_incomplete` (upload it, call again). A "
    "refused photo: its 4xx, and the job and its objects are removed.",
)
START_TRAINING = route(
    START,
    "POST",
    "/",
    "startTraining",
    "Start a pending job: it joins the training queue and starts at once when it is its turn "
    "(idempotent)",
    Auth.USER,
    {202: "contract.start.StartResponse"},
    _USER | _JOB_BODY | _REPLICATE | {E.UPLOAD_INCOMPLETE, E.JOB_FAILED, E.JOB_STATE_CHANGED},
    body="contract.base.JobRequest",
    body_limit=MAX_JSON_BODY_BYTES,
    description="202 with `status: queued` and `queue` (place, expected start, a sentence) while "
    "it waits for a training slot, `training` once started. A queued, started or completed job "
    "answers 202 as it stands; a failed one 409 `job_failed` (start a new job).",
)
GET_STATUS = route(
    STATUS,
    "GET",
    "/",
    "getStatus",
    "A job's status and progress",
    Auth.USER,
    {200: "contract.status.StatusResponse"},
    _USER | _JOB_QUERY | {E.INVALID_FIELD, E.JOB_STATE_CHANGED},
    params=(JOB_ID_QUERY, HISTORY_QUERY),
    polling=True,
    description="Reads Replicate at most once per refresh interval per job; between reads it "
    "answers from the row.",
)
POST_STATUS = route(
    STATUS,
    "POST",
    "/",
    "postStatus",
    "A job's status and progress (the same as GET, the job in the body)",
    Auth.USER,
    {200: "contract.status.StatusResponse"},
    _USER | _JOB_BODY | {E.JOB_STATE_CHANGED},
    body="contract.status.StatusRequest",
    body_limit=MAX_JSON_BODY_BYTES,
    polling=True,
)
CANCEL_JOB = route(
    STATUS,
    "POST",
    "/cancel",
    "cancelJob",
    "Stop an active job: it fails with errorCode canceled_by_user",
    Auth.USER,
    {200: "contract.status.StatusResponse"},
    _USER | _JOB_BODY | _REPLICATE | {E.JOB_FINISHED, E.JOB_STATE_CHANGED},
    body="contract.base.JobRequest",
    body_limit=MAX_JSON_BODY_BYTES,
    polling=True,
)
_DELETE_DESCRIPTION = (
    "200 with `deleted: true` once everything is gone; 202 with `deleted: false` while the "
    "sweep removes the rest. Repeating it is safe. A twin's active version is not deleted on "
    "its own (409 `version_active`): activate another, or delete the twin."
)
DELETE_JOB = route(
    STATUS,
    "DELETE",
    "/",
    "deleteJob",
    "Delete a job and everything of it",
    Auth.USER,
    {200: "contract.jobs.DeletionResponse", 202: "contract.jobs.DeletionResponse"},
    _USER | _JOB_QUERY | _REPLICATE | {E.JOB_STATE_CHANGED, E.VERSION_ACTIVE},
    params=(JOB_ID_QUERY,),
    description=_DELETE_DESCRIPTION,
)
DELETE_JOB_POST = route(
    STATUS,
    "POST",
    "/delete",
    "deleteJobPost",
    "Delete a job (for clients that cannot send DELETE)",
    Auth.USER,
    {200: "contract.jobs.DeletionResponse", 202: "contract.jobs.DeletionResponse"},
    _USER | _JOB_BODY | _REPLICATE | {E.JOB_STATE_CHANGED, E.VERSION_ACTIVE},
    body="contract.base.JobRequest",
    body_limit=MAX_JSON_BODY_BYTES,
    description=_DELETE_DESCRIPTION,
)
LIST_JOBS_LIMIT_DEFAULT = 20
LIST_JOBS_LIMIT_MAX = 100
LIST_JOBS = route(
    STATUS,
    "GET",
    "/jobs",
    "listJobs",
    "The caller's jobs, newest first, a page at a time",
    Auth.USER,
    {200: "contract.jobs.JobList"},
    _USER | {E.INVALID_CURSOR, E.INVALID_FIELD},
    params=(
        Param(
            "limit",
            "query",
            f"Jobs per page, 1-{LIST_JOBS_LIMIT_MAX}.",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": LIST_JOBS_LIMIT_MAX,
                "default": LIST_JOBS_LIMIT_DEFAULT,
            },
            required=False,
        ),
        Param(
            "cursor",
            "query",
            "The previous page's `nextCursor`, unchanged; none for the first page.",
            {"type": "string"},
            required=False,
        ),
    ),
    description="Answers from the rows (no Replicate read): ask a job's status for a live "
    "refresh. Deleted jobs are never listed.",
)
LIST_TWINS = route(
    STATUS,
    "GET",
    "/twins",
    "listTwins",
    "The caller's twins, newest first, each with its versions",
    Auth.USER,
    {200: "contract.twins.TwinListResponse"},
    _USER,
)
GET_TWIN = route(
    STATUS,
    "GET",
    "/twins/{twinId}",
    "getTwin",
    "One twin with its versions",
    Auth.USER,
    {200: "contract.twins.TwinResponse"},
    _USER | _TWIN_PATH,
    params=(TWIN_ID_PATH,),
)
UPDATE_TWIN = route(
    STATUS,
    "PATCH",
    "/twins/{twinId}",
    "updateTwin",
    "Rename a twin or change its customisation (no retraining: the next version uses them)",
    Auth.USER,
    {200: "contract.twins.TwinResponse"},
    _USER | _JSON | _TWIN_PATH | {E.MISSING_FIELD, E.INVALID_FIELD, E.TWIN_STATE_CHANGED},
    body="contract.twins.TwinUpdate",
    params=(TWIN_ID_PATH,),
    body_limit=MAX_JSON_BODY_BYTES,
)
ACTIVATE_VERSION = route(
    STATUS,
    "PUT",
    "/twins/{twinId}/active",
    "activateVersion",
    "Make a completed version the active one (roll back, or forward again)",
    Auth.USER,
    {200: "contract.twins.TwinResponse"},
    _USER
    | _JSON
    | _TWIN_PATH
    | {E.MISSING_FIELD, E.INVALID_JOB_ID, E.INVALID_FIELD}
    | {E.VERSION_NOT_FOUND, E.VERSION_NOT_READY, E.TWIN_STATE_CHANGED},
    body="contract.twins.ActivateRequest",
    params=(TWIN_ID_PATH,),
    body_limit=MAX_JSON_BODY_BYTES,
    description="Concurrent activations leave one of them active, and every reader agrees.",
)
DELETE_TWIN = route(
    STATUS,
    "DELETE",
    "/twins/{twinId}",
    "deleteTwin",
    "Delete a twin with every version (photos, zips and model versions)",
    Auth.USER,
    {200: "contract.twins.TwinDeletionResponse", 202: "contract.twins.TwinDeletionResponse"},
    _USER | _TWIN_PATH | _REPLICATE | {E.JOB_STATE_CHANGED, E.TWIN_STATE_CHANGED},
    params=(TWIN_ID_PATH,),
    description="200 with `deleted: true` once every version is gone and the twin anonymised; "
    "202 with `deleted: false` while the sweep finishes. Repeating it is safe.",
)
REQUEST_PREVIEWS = route(
    STATUS,
    "POST",
    "/twins/{twinId}/previews",
    "requestPreviews",
    "New pictures of the twin's active version, in a style (at most PREVIEWS_PER_DAY a day)",
    Auth.USER,
    {200: "contract.previews.PreviewSetView", 202: "contract.previews.PreviewSetView"},
    _USER
    | _JSON
    | _TWIN_PATH
    | _REPLICATE
    | {E.INVALID_FIELD, E.NO_ACTIVE_VERSION, E.PREVIEWS_OFF, E.PREVIEW_LIMIT_REACHED},
    body="contract.previews.PreviewRequest",
    params=(TWIN_ID_PATH,),
    body_limit=MAX_JSON_BODY_BYTES,
    description="200 when every picture is made already, 202 while some are still coming (read "
    "them in GET /twins/{twinId}: versions[].previews). A repeated requestId answers the same "
    "set and counts once. Each picture counts toward the owner's daily limit.",
)
PREVIEW_ID_QUERY = Param("previewId", "query", "The preview's id (a UUID).", _JOB_ID)
PREVIEW_WEBHOOK = route(
    STATUS,
    "POST",
    "/webhooks/replicate/previews",
    "replicatePreviewWebhook",
    "Replicate's prediction webhook for one preview (Replicate only)",
    Auth.WEBHOOK,
    {200: "contract.previews.PreviewWebhookResponse"},
    _ANY
    | {E.INVALID_FIELD, E.MISSING_FIELD, E.PREVIEW_NOT_FOUND}
    | {E.WEBHOOKS_DISABLED, E.BAD_WEBHOOK, E.BAD_SIGNATURE, E.STALE_WEBHOOK}
    | {E.PREDICTION_MISMATCH, E.UPSTREAM_UNAVAILABLE},
    params=(PREVIEW_ID_QUERY,),
    description="Standard Webhooks signature over the raw body; the prediction must be the "
    "preview's (or match its version, seed and prompt).",
)
REPLICATE_WEBHOOK = route(
    STATUS,
    "POST",
    "/webhooks/replicate",
    "replicateWebhook",
    "Replicate's training webhook (Replicate only)",
    Auth.WEBHOOK,
    {200: "contract.status.StatusResponse"},
    _ANY
    | _JOB_QUERY
    | {E.WEBHOOKS_DISABLED, E.BAD_WEBHOOK, E.BAD_SIGNATURE, E.STALE_WEBHOOK}
    | {E.TRAINING_MISMATCH, E.UPSTREAM_UNAVAILABLE, E.JOB_STATE_CHANGED},
    body="domain.training.TrainingInfo",
    params=(JOB_ID_QUERY,),
    polling=True,
    description="Standard Webhooks signature over the raw body (webhook-id, webhook-timestamp, "
    "webhook-signature), 5-minute tolerance; the training must be the job's.",
)
