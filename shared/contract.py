"""The HTTP contract: every request and response model (camelCase on the wire), and the route
registry, `ROUTES`: per route its function, method, path, auth, bodies, success statuses and every
error code it can answer. Handlers register their routes from it (`@app.handle(ROUTE)`), and
`python -m tools.openapi` writes the OpenAPI documents in docs/openapi/ from it; tests check that
the registered routes, the registry and the documents agree, and that every code a route answers
during the test run is declared for it.

Each response that shows a job is made from the row by one function, `Model.of(job)`, so a field
means the same on every route. The wire field `fursonaName` is the column `furrsona_name`: both
spellings are fixed by the frontend and the table.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel, to_snake

from shared.domain.history import ProgressPoint
from shared.domain.job import FailureCode, Job, JobStatus
from shared.domain.phases import Phase, phase_text
from shared.domain.previews import (
    STYLES,
    PreviewFailure,
    PreviewKind,
    PreviewSet,
    PreviewStatus,
    SetStatus,
)
from shared.domain.queue import HeldBy, QueuePlace
from shared.domain.training import TrainingInfo
from shared.domain.twin import Twin
from shared.errors import ErrorCode


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        defer_build=True,
        # An answer always carries every field (defaults included): required in its schema.
        json_schema_serialization_defaults_required=True,
    )


class CustomizationData(BaseModel):
    """The frontend's customisation form; known fields are checked, extra ones are kept."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, alias_generator=to_camel, defer_build=True
    )

    type: str | None = Field(default=None, max_length=100)
    hybrid_style: str | None = Field(default=None, max_length=100)
    personality: str | None = Field(default=None, max_length=500)
    voice_tone: str | None = Field(default=None, max_length=100)
    fur_type: str | None = Field(default=None, max_length=100)
    colors: list[str] | None = Field(default=None, max_length=20)


class JobRequest(CamelModel):
    """Body of start_ai_training and of check_training_status's POST."""

    job_id: UUID
    user_id: UUID | None = None


class StatusRequest(JobRequest):
    """Body of check_training_status's POST: `history: true` adds the progress history."""

    history: bool = Field(False, strict=True)


class UploadResponse(CamelModel):
    """The job, its photos stored (pending, 20)."""

    job_id: UUID
    twin_id: UUID | None  # the twin this job is a version of
    version: int | None  # its number within the twin: 1, 2, ...
    photo_urls: list[str]  # object paths in the private bucket, never public URLs
    status: JobStatus
    progress: int

    @classmethod
    def of(cls, job: Job) -> UploadResponse:
        return cls(
            job_id=job.id,
            twin_id=job.twin_id,
            version=job.version,
            photo_urls=job.photo_urls,
            status=job.status,
            progress=job.progress,
        )


class QueueView(CamelModel):
    """A queued job's place in line (batch admission): null for any other job."""

    position: int  # 1 = next to start
    held_by: HeldBy  # what it waits for: cap, budget, throttle, own_training, nothing
    estimated_start_at: datetime
    message: str  # the sentence for the person

    @classmethod
    def of(cls, place: QueuePlace | None) -> QueueView | None:
        if place is None:
            return None
        return cls(
            position=place.position,
            held_by=place.held_by,
            estimated_start_at=place.estimated_start,
            message=place.message,
        )


class StartResponse(CamelModel):
    """The job as the start leaves it: queued (waiting for a training slot), training, or
    completed already."""

    job_id: UUID
    training_id: str | None
    status: JobStatus
    progress: int
    queue: QueueView | None = None

    @classmethod
    def of(cls, job: Job, place: QueuePlace | None = None) -> StartResponse:
        return cls(
            job_id=job.id,
            training_id=job.replicate_training_id,
            status=job.status,
            progress=job.progress,
            queue=QueueView.of(place),
        )


def _significant(value: float | None, digits: int) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


class ProgressHistory(CamelModel):
    """A job's history as parallel arrays (compact: at most 200 entries each, ~5 KB): the
    seconds after `startedAt` (when the training phase began), the step, the mean loss of the
    steps since the previous point, the trainer's steps per second."""

    started_at: datetime | None
    seconds: list[int]
    steps: list[int]
    loss: list[float | None]
    steps_per_second: list[float | None]

    @classmethod
    def of(cls, job: Job, points: list[ProgressPoint]) -> ProgressHistory:
        began = job.phase_times.get(Phase.TRAINING) or (points[0].observed_at if points else None)
        return cls(
            started_at=began,
            seconds=[round((p.observed_at - began).total_seconds()) for p in points if began],
            steps=[p.step for p in points],
            loss=[_significant(p.loss, 4) for p in points],
            steps_per_second=[_significant(p.steps_per_second, 3) for p in points],
        )


class PreviewPicture(CamelModel):
    """One preview: a signed URL to our private copy once ready (never a Replicate URL)."""

    preview_id: UUID
    slot: int
    status: PreviewStatus
    url: str | None  # short-lived (urlExpiresAt); ask the status or twin route again for a new one
    url_expires_at: datetime | None
    content_type: str | None
    prompt: str
    error_code: PreviewFailure | None
    error_message: str | None


class PreviewSetView(CamelModel):
    """A set of previews: the version's first pictures (kind `completion`) or one request."""

    set_id: UUID
    kind: PreviewKind
    style: str | None
    status: SetStatus  # pending, ready, partly_ready or failed
    ready: int
    total: int
    created_at: datetime
    pictures: list[PreviewPicture]

    @classmethod
    def of_set(
        cls, s: PreviewSet | None, urls: Mapping[str, str], expires_at: datetime | None
    ) -> PreviewSetView | None:
        if s is None:
            return None
        pictures = []
        for p in s.pictures:
            url = urls.get(p.storage_path) if p.storage_path else None
            pictures.append(
                PreviewPicture(
                    preview_id=p.id,
                    slot=p.slot,
                    status=p.status,
                    url=url,
                    url_expires_at=expires_at if url else None,
                    content_type=p.content_type,
                    prompt=p.prompt,
                    error_code=p.failure_code,
                    error_message=p.error_message,
                )
            )
        return cls(
            set_id=s.set_id,
            kind=s.kind,
            style=s.style,
            status=s.status,
            ready=sum(p.status is PreviewStatus.READY for p in s.pictures),
            total=len(s.pictures),
            created_at=s.created_at,
            pictures=pictures,
        )


class PreviewRequest(CamelModel):
    """Body of POST /twins/{twinId}/previews: new pictures of the active version."""

    style: str | None = Field(
        default=None,
        max_length=100,
        description="One of " + ", ".join(STYLES) + ", or the twin's own hybridStyle; "
        "none: the twin's hybridStyle.",
    )
    count: int = Field(default=4, ge=1, le=4)
    # The same requestId again (a retry, a double click) answers the same set, counted once.
    request_id: UUID | None = None
    user_id: UUID | None = None


class PreviewWebhookResponse(CamelModel):
    preview_id: UUID
    status: PreviewStatus


def _phase_text(job: Job) -> str:
    return phase_text(
        job.phase, uploaded=job.status is JobStatus.PENDING, step=job.step, total=job.total_steps
    )


class StatusResponse(CamelModel):
    """The job's status, progress and result, and when to ask again."""

    job_id: UUID
    twin_id: UUID | None
    version: int | None
    active: bool  # this version is the twin's active one (the one pictures are made with)
    status: JobStatus
    progress: int
    model_version: str | None
    error_code: FailureCode | None  # why a failed job failed; null unless failed
    error_message: str | None
    estimated_completion: datetime | None
    # What the job is doing, for a person.
    phase: Phase
    phase_text: str
    step: int | None
    total_steps: int | None
    # When to ask again (also the Retry-After header); null once the job is final.
    retry_after_seconds: int | None
    history: ProgressHistory | None = None  # only when asked for (`history=1`)
    queue: QueueView | None = None  # a queued job's place in line
    previews: PreviewSetView | None = None  # a completed version's first pictures

    @classmethod
    def of(
        cls,
        job: Job,
        twin: Twin | None,
        retry_after_seconds: int | None,
        history: list[ProgressPoint] | None = None,
        place: QueuePlace | None = None,
        previews: PreviewSetView | None = None,
    ) -> StatusResponse:
        return cls(
            job_id=job.id,
            twin_id=job.twin_id,
            version=job.version,
            active=twin is not None and twin.active_job_id == job.id,
            status=job.status,
            progress=job.progress,
            model_version=job.replicate_model_version,
            error_code=job.failure_code,
            error_message=job.error_message,
            estimated_completion=place.estimated_completion if place else job.estimated_completion,
            retry_after_seconds=retry_after_seconds,
            phase=job.phase,
            phase_text=_phase_text(job),
            step=job.step,
            total_steps=job.total_steps,
            history=None if history is None else ProgressHistory.of(job, history),
            queue=QueueView.of(place),
            previews=previews,
        )


class VersionResponse(CamelModel):
    """One version of a twin: one training job."""

    job_id: UUID
    version: int | None
    active: bool
    status: JobStatus
    phase: Phase
    phase_text: str
    progress: int
    created_at: datetime
    completed_at: datetime | None
    model_version: str | None
    error_code: FailureCode | None
    error_message: str | None
    # Its preview sets, newest first (the first pictures are the oldest set).
    previews: list[PreviewSetView] = Field(default_factory=list)

    @classmethod
    def of(
        cls, job: Job, twin: Twin, previews: list[PreviewSetView] | None = None
    ) -> VersionResponse:
        return cls(
            job_id=job.id,
            version=job.version,
            active=twin.active_job_id == job.id,
            status=job.status,
            phase=job.phase,
            phase_text=_phase_text(job),
            progress=job.progress,
            created_at=job.created_at,
            completed_at=job.completed_at,
            model_version=job.replicate_model_version,
            error_code=job.failure_code,
            error_message=job.error_message,
            previews=previews or [],
        )


class TwinResponse(CamelModel):
    twin_id: UUID
    name: str
    customization_data: dict[str, Any]
    active_job_id: UUID | None
    active_version: int | None
    created_at: datetime
    updated_at: datetime
    versions: list[VersionResponse]  # oldest first

    @classmethod
    def of(
        cls,
        twin: Twin,
        versions: list[Job],
        sets: Mapping[UUID, list[PreviewSet]] | None = None,
        urls: Mapping[str, str] | None = None,
        expires_at: datetime | None = None,
    ) -> TwinResponse:
        active = next((j for j in versions if j.id == twin.active_job_id), None)

        def previews(job: Job) -> list[PreviewSetView]:
            views = [
                PreviewSetView.of_set(s, urls or {}, expires_at)
                for s in (sets or {}).get(job.id, [])
            ]
            return [v for v in views if v is not None]

        return cls(
            twin_id=twin.id,
            name=twin.name,
            customization_data=twin.customization_data,
            active_job_id=twin.active_job_id,
            active_version=active.version if active else None,
            created_at=twin.created_at,
            updated_at=twin.updated_at,
            versions=[VersionResponse.of(job, twin, previews(job)) for job in versions],
        )


class TwinListResponse(CamelModel):
    twins: list[TwinResponse]  # newest first


class TwinUpdate(CamelModel):
    """Body of PATCH /twins/{twinId}: what to change (at least one); no retraining needed."""

    name: str | None = Field(None, max_length=100)
    customization_data: CustomizationData | None = None
    user_id: UUID | None = None


class ActivateRequest(CamelModel):
    """Body of PUT /twins/{twinId}/active."""

    job_id: UUID
    user_id: UUID | None = None


class TwinDeletionResponse(CamelModel):
    twin_id: UUID
    deleted: bool  # false while something is still left for the sweep to remove
    deletion_requested_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, twin: Twin) -> TwinDeletionResponse:
        return cls(
            twin_id=twin.id,
            deleted=twin.deleted_at is not None,
            deletion_requested_at=twin.deletion_requested_at,
            deleted_at=twin.deleted_at,
        )


class JobSummary(CamelModel):
    """One of the caller's jobs in their list: the public fields, none of the bookkeeping."""

    job_id: UUID
    twin_id: UUID | None
    version: int | None
    fursona_name: str
    status: JobStatus
    phase: Phase
    phase_text: str
    progress: int
    model_version: str | None
    error_code: FailureCode | None
    error_message: str | None
    estimated_completion: datetime | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobSummary:
        return cls(
            job_id=job.id,
            twin_id=job.twin_id,
            version=job.version,
            fursona_name=job.furrsona_name,
            status=job.status,
            phase=job.phase,
            phase_text=_phase_text(job),
            progress=job.progress,
            model_version=job.replicate_model_version,
            error_code=job.failure_code,
            error_message=job.error_message,
            estimated_completion=job.estimated_completion,
            created_at=job.created_at,
            completed_at=job.completed_at,
        )


class JobList(CamelModel):
    """A page of the caller's jobs, newest first."""

    jobs: list[JobSummary]  # newest first
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


class DeclaredPhoto(BaseModel):
    """One photo the browser is about to upload, as it describes it (not trusted)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", defer_build=True
    )

    filename: str = Field("", max_length=1024)
    content_type: str | None = Field(None, max_length=255)
    size: int = Field(strict=True, ge=0)


class UploadTarget(CamelModel):
    """Where and how to send one photo: `PUT url` with `Content-Type: contentType` (or
    supabase-js `uploadToSignedUrl(path, token, file)`), before `expiresAt`."""

    photo: int  # 1-based, in the order declared
    path: str  # the object path in the bucket
    url: str
    method: str = "PUT"
    token: str
    content_type: str
    expires_at: datetime


class SignedUploadResponse(CamelModel):
    """The job (uploading) and where to PUT each photo."""

    job_id: UUID
    twin_id: UUID
    version: int | None
    status: JobStatus
    progress: int
    expires_at: datetime
    uploads: list[UploadTarget]


class DeletionResponse(CamelModel):
    """How far the deletion is: `deleted` once nothing of the job is left."""

    job_id: UUID
    deleted: bool  # false while something is still left for the sweep to remove
    deletion_requested_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> DeletionResponse:
        return cls(
            job_id=job.id,
            deleted=job.deleted_at is not None,
            deletion_requested_at=job.deletion_requested_at,
            deleted_at=job.deleted_at,
        )


class SignedUploadRequest(CamelModel):
    """Body of `POST /uploads`: the photos to come, and either a new twin's name and
    customisation or the `twinId` of the twin this job retrains."""

    fursona_name: str | None = Field(None, max_length=100)  # a new twin's name
    customization_data: CustomizationData | None = None
    twin_id: UUID | None = None  # retrain this twin: leave out the name and customisation
    photos: list[DeclaredPhoto]
    user_id: UUID | None = None


class CompleteRequest(CamelModel):
    """Body of `POST /uploads/{jobId}/complete`; it may also be empty."""

    user_id: UUID | None = None


class UploadForm(CamelModel):
    """The multipart form of `POST /` on the upload URL (a browser's FormData)."""

    photos: list[bytes]  # 3-6 files, each a JPEG, PNG, WebP or HEIC photo
    fursona_name: str | None = Field(None, max_length=100)  # a new twin's name
    customization_data: str | None = None  # a JSON object, as a string
    twin_id: UUID | None = None  # retrain this twin: leave out the name and customisation
    user_id: UUID | None = None


# --------------------------------------------------------------------------- the route registry

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
    responses: dict[int, type[BaseModel]]  # success status -> body
    errors: frozenset[ErrorCode]
    body: type[BaseModel] | None = None  # JSON body (or the multipart form when `multipart`)
    multipart: bool = False
    params: tuple[Param, ...] = ()
    # A larger body is refused with 413 payload_too_large. None: no limit of ours (the route
    # reads no body, or, the webhook, takes what Lambda lets through: a training's logs are long).
    body_limit: int | None = None
    polling: bool = False  # a status answer: `retryAfterSeconds` and Retry-After
    description: str = ""

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
    {201: UploadResponse},
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
    body=UploadForm,
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
    {201: SignedUploadResponse},
    _USER | _JSON | _NEW_JOB | _VERSION | {E.PHOTO_TOO_LARGE, E.EMPTY_FILE, E.PHOTOS_TOO_LARGE},
    body=SignedUploadRequest,
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
    {200: UploadResponse},
    _USER
    | _JSON
    | _JOB_QUERY
    | _PHOTO
    | {E.UPLOAD_INCOMPLETE, E.UPLOAD_EXPIRED, E.UPLOAD_FAILED, E.PHOTOS_TOO_LARGE}
    | {E.JOB_STATE_CHANGED},
    body=CompleteRequest,
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
    {202: StartResponse},
    _USER | _JOB_BODY | _REPLICATE | {E.UPLOAD_INCOMPLETE, E.JOB_FAILED, E.JOB_STATE_CHANGED},
    body=JobRequest,
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
    {200: StatusResponse},
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
    {200: StatusResponse},
    _USER | _JOB_BODY | {E.JOB_STATE_CHANGED},
    body=StatusRequest,
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
    {200: StatusResponse},
    _USER | _JOB_BODY | _REPLICATE | {E.JOB_FINISHED, E.JOB_STATE_CHANGED},
    body=JobRequest,
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
    {200: DeletionResponse, 202: DeletionResponse},
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
    {200: DeletionResponse, 202: DeletionResponse},
    _USER | _JOB_BODY | _REPLICATE | {E.JOB_STATE_CHANGED, E.VERSION_ACTIVE},
    body=JobRequest,
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
    {200: JobList},
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
    {200: TwinListResponse},
    _USER,
)
GET_TWIN = route(
    STATUS,
    "GET",
    "/twins/{twinId}",
    "getTwin",
    "One twin with its versions",
    Auth.USER,
    {200: TwinResponse},
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
    {200: TwinResponse},
    _USER | _JSON | _TWIN_PATH | {E.MISSING_FIELD, E.INVALID_FIELD, E.TWIN_STATE_CHANGED},
    body=TwinUpdate,
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
    {200: TwinResponse},
    _USER
    | _JSON
    | _TWIN_PATH
    | {E.MISSING_FIELD, E.INVALID_JOB_ID, E.INVALID_FIELD}
    | {E.VERSION_NOT_FOUND, E.VERSION_NOT_READY, E.TWIN_STATE_CHANGED},
    body=ActivateRequest,
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
    {200: TwinDeletionResponse, 202: TwinDeletionResponse},
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
    {200: PreviewSetView, 202: PreviewSetView},
    _USER
    | _JSON
    | _TWIN_PATH
    | _REPLICATE
    | {E.INVALID_FIELD, E.NO_ACTIVE_VERSION, E.PREVIEWS_OFF, E.PREVIEW_LIMIT_REACHED},
    body=PreviewRequest,
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
    {200: PreviewWebhookResponse},
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
    {200: StatusResponse},
    _ANY
    | _JOB_QUERY
    | {E.WEBHOOKS_DISABLED, E.BAD_WEBHOOK, E.BAD_SIGNATURE, E.STALE_WEBHOOK}
    | {E.TRAINING_MISMATCH, E.UPSTREAM_UNAVAILABLE, E.JOB_STATE_CHANGED},
    body=TrainingInfo,
    params=(JOB_ID_QUERY,),
    polling=True,
    description="Standard Webhooks signature over the raw body (webhook-id, webhook-timestamp, "
    "webhook-signature), 5-minute tolerance; the training must be the job's.",
)
