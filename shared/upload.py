"""upload_training_photos: validate and store the photos, create the job (DESIGN §3)."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.auth import Caller, check_claimed_user
from shared.errors import AppError, BadRequest, PayloadTooLarge, Unprocessable
from shared.jobs import JobStore
from shared.models import (
    PROGRESS_UPLOADED,
    CustomizationData,
    Job,
    JobStatus,
    validate_furrsona_name,
)
from shared.multipart import Form, parse_form
from shared.photo_rules import (
    PHOTO_CONTENT_TYPE,
    PhotoLimits,
    PhotoRejected,
    photo_label,
    photo_object_name,
)
from shared.photo_store import PhotoStore
from shared.settings import Settings

# A Function URL request carries at most 6 MB including base64 and the event envelope; the decoded
# multipart body that fits is about 4.4 MB (reference/serverless.md §0.1); refuse from 4 MB on so
# the answer names the signed flow while it can still reach the handler.
MULTIPART_MAX_BYTES = 4_000_000
MAX_CUSTOMIZATION_BYTES = 16_384
SIGNED_FLOW_HINT = (
    "Photos this large cannot go through this URL: create the job with POST /uploads, "
    "upload each photo to its signed URL, then call POST /uploads/{jobId}/complete."
)


def photo_limits(settings: Settings) -> PhotoLimits:
    return PhotoLimits(
        min_short_side=settings.photo_min_short_side,
        max_long_side=settings.photo_max_long_side,
        max_pixels=settings.photo_max_pixels,
        max_bytes=settings.photo_max_bytes,
        max_decode_seconds=settings.photo_decode_seconds,
    )


def parse_customization(raw: object) -> dict[str, Any]:
    """`customizationData` is a JSON object sent as a string (or already parsed in JSON bodies)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        if len(raw.encode()) > MAX_CUSTOMIZATION_BYTES:
            raise PayloadTooLarge(
                f"customizationData is larger than {MAX_CUSTOMIZATION_BYTES} bytes.",
                code="invalid_field",
            )
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadRequest(
                'customizationData must be a JSON object, e.g. {"type": "fox"}.',
                code="invalid_json",
            ) from None
    if not isinstance(raw, dict):
        raise Unprocessable("customizationData must be a JSON object.", code="invalid_field")
    try:
        return CustomizationData.model_validate(raw).model_dump(by_alias=True, exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Unprocessable(
            f"customizationData.{where}: {first['msg']}.", code="invalid_field"
        ) from None


def check_photo_count(count: int, settings: Settings) -> None:
    if count < settings.photos_min or count > settings.photos_max:
        code = "too_few_photos" if count < settings.photos_min else "too_many_photos"
        raise Unprocessable(
            f"Upload between {settings.photos_min} and {settings.photos_max} photos "
            f"(you sent {count}).",
            code=code,
        )


def refused(exc: PhotoRejected) -> AppError:
    """A photo's rejection as the HTTP answer (its status, code and message)."""
    return AppError(exc.message, code=exc.code, status=exc.status)


class PhotoChecker:
    """Checks and normalises a job's photos one at a time; the same picture twice is refused.

    Holds only the fingerprints of the photos seen, so a caller that drops each photo's bytes
    after `normalise` keeps about one photo in memory.
    """

    def __init__(self, settings: Settings) -> None:
        self.limits = photo_limits(settings)
        self._seen: dict[str, int] = {}

    def normalise(self, index: int, filename: str | None, data: bytes) -> bytes:
        """The photo as a normalised JPEG, or an `AppError` naming it (its status is a 4xx)."""
        from shared.photos import normalise_photo  # Pillow loads with the first photo, not before

        label = photo_label(index, filename)
        try:
            photo = normalise_photo(data, self.limits, label=label)
        except PhotoRejected as exc:
            raise refused(exc) from None
        if photo.fingerprint in self._seen:
            raise Unprocessable(
                f"{label} is the same picture as photo {self._seen[photo.fingerprint]}; "
                "use different photos.",
                code="duplicate_photo",
            )
        self._seen[photo.fingerprint] = index
        return photo.jpeg


def normalise_all(files: list[tuple[str, bytes]], settings: Settings) -> list[bytes]:
    """Decode, check and normalise every photo before anything is stored (no orphans)."""
    checker = PhotoChecker(settings)
    return [
        checker.normalise(index, filename, data)
        for index, (filename, data) in enumerate(files, start=1)
    ]


def final_photo_path(user_id: uuid.UUID, job_id: uuid.UUID, index: int) -> str:
    """Where the `index`-th normalised photo lives: `{user}/{job}/NN.jpg`."""
    return f"{user_id}/{job_id}/{photo_object_name(index)}"


def store_photos(
    photos: PhotoStore, user_id: uuid.UUID, job_id: uuid.UUID, jpegs: list[bytes]
) -> list[str]:
    """Put the photos at `{user}/{job}/NN.jpg`; on any failure remove what was stored."""
    paths: list[str] = []
    try:
        for index, jpeg in enumerate(jpegs, start=1):
            path = final_photo_path(user_id, job_id, index)
            paths.append(path)
            photos.put(path, jpeg, PHOTO_CONTENT_TYPE)
    except Exception:
        remove_quietly(photos, paths)
        raise
    return paths


def remove_quietly(photos: PhotoStore, paths: list[str]) -> None:
    # The original error matters more than a failed clean-up.
    with contextlib.suppress(Exception):
        photos.remove(paths)


def create_job_with_photos(
    *,
    caller: Caller,
    name: str,
    customization: dict[str, Any],
    jpegs: list[bytes],
    jobs: JobStore,
    photos: PhotoStore,
) -> Job:
    job_id = uuid.uuid4()
    paths = store_photos(photos, caller.user_id, job_id, jpegs)
    try:
        return jobs.insert(
            {
                "id": job_id,
                "user_id": caller.user_id,
                "furrsona_name": name,
                "status": JobStatus.PENDING,
                "progress": PROGRESS_UPLOADED,
                "photo_urls": paths,
                "customization_data": customization,
                "created_at": datetime.now(UTC),
            }
        )
    except Exception:
        remove_quietly(photos, paths)
        raise


def upload_multipart(
    *,
    caller: Caller,
    content_type: str | None,
    body: bytes,
    settings: Settings,
    jobs: JobStore,
    photos: PhotoStore,
) -> Job:
    if len(body) > MULTIPART_MAX_BYTES:
        raise PayloadTooLarge(SIGNED_FLOW_HINT, code="payload_too_large")
    form: Form = parse_form(content_type, body)
    check_claimed_user(caller, form.field("userId"))
    name = validate_furrsona_name(form.field("fursonaName"))
    customization = parse_customization(form.field("customizationData"))
    files = form.files("photos", "photos[]")
    check_photo_count(len(files), settings)
    jpegs = normalise_all([(f.filename or "", bytes(f.data)) for f in files], settings)
    return create_job_with_photos(
        caller=caller, name=name, customization=customization, jpegs=jpegs, jobs=jobs, photos=photos
    )
