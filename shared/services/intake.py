"""What both upload flows share: the customisation, the photo count, checking and normalising
each photo, storing them, and the new job's row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.contract.upload import CustomizationData
from shared.domain.job import JobStatus
from shared.domain.storage_paths import final_photo_path
from shared.domain.twin import Twin
from shared.errors import AppError, ErrorCode
from shared.photos.rules import (
    PHOTO_CONTENT_TYPE,
    PhotoLimits,
    photo_checksum,
    photo_label,
)
from shared.plumbing import json_input
from shared.plumbing.settings import Settings
from shared.plumbing.validation import first_problem
from shared.ports import PhotoStore
from shared.services.common import remove_quietly

MAX_CUSTOMIZATION_BYTES = 16_384


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
            raise AppError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"customizationData is larger than {MAX_CUSTOMIZATION_BYTES} bytes.",
            )
        try:
            raw = json_input.loads(raw)
        except json_input.JsonRefused as refused:
            raise AppError(
                ErrorCode.INVALID_JSON,
                f'customizationData {refused.reason}; send a JSON object, e.g. {{"type": "fox"}}.',
            ) from None
    else:
        try:
            json_input.check_value(raw)
        except json_input.JsonRefused as refused:
            raise AppError(
                ErrorCode.INVALID_FIELD, f"customizationData {refused.reason}."
            ) from None
    if not isinstance(raw, dict):
        raise AppError(ErrorCode.INVALID_FIELD, "customizationData must be a JSON object.")
    try:
        return CustomizationData.model_validate(raw).model_dump(by_alias=True, exclude_none=True)
    except ValidationError as exc:
        sentence, _ = first_problem(exc, "customizationData")
        raise AppError(ErrorCode.INVALID_FIELD, sentence) from None


def check_photo_count(count: int, settings: Settings) -> None:
    if count < settings.photos_min or count > settings.photos_max:
        few = count < settings.photos_min
        raise AppError(
            ErrorCode.TOO_FEW_PHOTOS if few else ErrorCode.TOO_MANY_PHOTOS,
            f"Upload between {settings.photos_min} and {settings.photos_max} photos "
            f"(you sent {count}).",
        )


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
        from shared.photos.normalise import normalise_photo

        label = photo_label(index, filename)
        photo = normalise_photo(data, self.limits, label=label)
        if photo.fingerprint in self._seen:
            raise AppError(
                ErrorCode.DUPLICATE_PHOTO,
                f"{label} is the same picture as photo {self._seen[photo.fingerprint]}; "
                "use different photos.",
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


def photo_checksums(jpegs: list[bytes]) -> list[str]:
    """What start checks each stored photo against (`Job.photo_checksums`)."""
    return [photo_checksum(jpeg) for jpeg in jpegs]


def new_job_row(
    job_id: uuid.UUID, twin: Twin, status: JobStatus, photo_paths: list[str]
) -> dict[str, Any]:
    """The row a new job (the next version of `twin`) starts as, either flow; the database gives
    it its version number. The caller adds what its flow needs."""
    return {
        "id": job_id,
        "user_id": twin.user_id,
        "twin_id": twin.id,
        "furrsona_name": twin.name,
        "status": status,
        "photo_urls": photo_paths,
        "customization_data": twin.customization_data,
        "created_at": datetime.now(UTC),
    }
