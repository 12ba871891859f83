"""The signed direct-upload flow: photos go from the browser straight to Storage.

A Function URL takes at most 6 MB per request, so phone photos (3-12 MB each) cannot go through
one. Instead:

1. `POST /uploads` (`create_signed_upload`) checks the declared list (3-6 photos, each within the
   per-photo cap, together within the per-job cap; declared types are only hints), creates the
   job (`uploading`, progress 0, `upload_expires_at`) and answers one signed upload URL per photo,
   at `{user}/{job}/upload/NN`: never the final `NN.jpg`, so nothing unchecked is ever trained on.
2. The browser PUTs each photo to its URL.
3. `POST /uploads/{jobId}/complete` (`complete_signed_upload`) reads the objects back one at a
   time, checks each by content, normalises it to `NN.jpg`, moves the job `uploading -> pending`
   (20) and removes the raw uploads. Calling it again on a job past `uploading` returns the job.

What happens to a job when something is wrong:
- a photo not uploaded (yet): 409 `upload_incomplete` naming it; the job waits, the person
  uploads it and calls complete again;
- a bad photo (its documented 4xx from `shared.photos.normalise`), or the photos together over the per-job
  cap: the job's objects and then its row are removed, as the multipart path leaves nothing
  behind; the person starts again with `POST /uploads`. A retried complete then answers 404;
- past the upload window (`upload_expires_at` plus `UPLOAD_GRACE`): the job is failed and its
  objects removed, by complete (409 `upload_expired`) or by the sweep (`shared.services.upload_expiry`).
"""

from __future__ import annotations

import gc
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from shared.contract.upload import DeclaredPhoto, SignedUploadResponse, UploadTarget
from shared.domain.caller import Caller
from shared.domain.job import PROGRESS_UPLOADED, FailureCode, Job, JobStatus, failed
from shared.domain.storage_paths import final_photo_path, raw_photo_path, upload_folder
from shared.errors import AppError, ErrorCode
from shared.photos.rules import (
    ACCEPTED_UPLOAD_CONTENT_TYPES,
    PHOTO_CONTENT_TYPE,
    check_photo_size,
    photo_checksum,
    photo_label,
)
from shared.plumbing.settings import Settings
from shared.plumbing.validation import first_problem
from shared.ports import JobStore, ObjectMissing, PhotoStore
from shared.services.common import job_not_found, owned_job, remove_quietly
from shared.services.deps import Deps
from shared.services.intake import (
    PhotoChecker,
    check_photo_count,
    new_job_row,
    photo_limits,
)
from shared.services.upload_expiry import (
    UPLOAD_EXPIRED_MESSAGE,
    expire_job,
    job_objects,
    upload_window_closed,
)
from shared.services.versions import drop_twin_if_unused, open_twin, plan_version

logger = Logger(child=True)


# The bucket takes only photo MIME types; a browser often declares none (HEIC on Windows) or a
# wrong one, so the PUT is told to send this instead. The content decides at complete anyway.
FALLBACK_UPLOAD_CONTENT_TYPE = "image/jpeg"


def create_signed_upload(caller: Caller, body: dict[str, Any], deps: Deps) -> SignedUploadResponse:
    """A new twin's first version, or with `twinId` the twin's next one: the job (uploading)
    and one signed upload URL per declared photo."""
    settings = deps.settings
    plan = plan_version(caller, body.get, deps)
    declared = parse_declared_photos(body.get("photos"), settings)

    job_id = uuid.uuid4()
    paths = [raw_photo_path(caller.user_id, job_id, i) for i in range(1, len(declared) + 1)]
    # Signing creates nothing in the bucket, so it goes first: a failed insert leaves no trace.
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        signed = list(pool.map(deps.photos.signed_upload, paths))
    now = datetime.now(UTC)
    expires_at = min(
        [now + timedelta(seconds=settings.upload_window_seconds)]
        + [s.expires_at for s in signed if s.expires_at is not None]
    )
    twin, made = open_twin(caller, plan, deps)
    # While uploading, `photo_urls` holds the raw objects; `complete` puts the NN.jpg paths there.
    row = new_job_row(job_id, twin, JobStatus.UPLOADING, paths)
    try:
        job = deps.jobs.insert({**row, "progress": 0, "upload_expires_at": expires_at})
    except Exception:
        if made:
            drop_twin_if_unused(twin.id, deps)
        raise
    uploads = [
        UploadTarget(
            photo=index,
            path=target.path,
            url=target.url,
            token=target.token,
            content_type=_upload_content_type(photo.content_type),
            expires_at=expires_at,
        )
        for index, (photo, target) in enumerate(zip(declared, signed, strict=True), start=1)
    ]
    return SignedUploadResponse(
        job_id=job.id,
        twin_id=twin.id,
        version=job.version,
        status=job.status,
        progress=job.progress,
        expires_at=expires_at,
        uploads=uploads,
    )


def parse_declared_photos(raw: object, settings: Settings) -> list[DeclaredPhoto]:
    if raw is None:
        raise AppError(
            ErrorCode.MISSING_FIELD,
            "photos is required: one {filename, contentType, size} per photo you will upload.",
        )
    if not isinstance(raw, list):
        raise AppError(
            ErrorCode.INVALID_FIELD, "photos must be a list of {filename, contentType, size}."
        )
    check_photo_count(len(raw), settings)
    declared: list[DeclaredPhoto] = []
    for position, item in enumerate(raw):
        try:
            declared.append(DeclaredPhoto.model_validate(item))
        except ValidationError as exc:
            sentence, _ = first_problem(exc, f"photos[{position}]")
            raise AppError(ErrorCode.INVALID_FIELD, sentence) from None
    limits = photo_limits(settings)
    for index, photo in enumerate(declared, start=1):
        check_photo_size(photo.size, limits, label=photo_label(index, photo.filename))
    _check_total(sum(p.size for p in declared), len(declared), settings)
    return declared


def complete_signed_upload(caller: Caller, job_id: UUID, deps: Deps) -> Job:
    settings, jobs, photos = deps.settings, deps.jobs, deps.photos
    job = owned_job(jobs, job_id, caller.user_id)
    if job.status is JobStatus.FAILED:
        raise _job_failed(job, settings)
    if job.status is not JobStatus.UPLOADING:
        return job  # completed before: the same answer again
    if upload_window_closed(job, settings, datetime.now(UTC)):
        expire_job(job, jobs, photos)
        raise AppError(ErrorCode.UPLOAD_EXPIRED, UPLOAD_EXPIRED_MESSAGE)

    raw_paths = list(job.photo_urls)
    stored = photos.sizes(upload_folder(job.user_id, job.id))
    missing = [index for index, path in enumerate(raw_paths, start=1) if path not in stored]
    if missing:
        raise _not_uploaded(missing)
    checker = PhotoChecker(settings)
    try:
        # Sizes first, from the listing: an oversize photo is refused without downloading it.
        for index, path in enumerate(raw_paths, start=1):
            check_photo_size(stored[path], checker.limits, label=photo_label(index))
        _check_total(sum(stored[p] for p in raw_paths), len(raw_paths), settings)
    except AppError:
        discard_job(job, deps)
        raise

    finals: list[str] = []
    checksums: list[str] = []
    for index, raw_path in enumerate(raw_paths, start=1):
        try:
            final, checksum = _store_normalised(job, index, raw_path, checker, deps)
            finals.append(final)
            checksums.append(checksum)
        except ObjectMissing:
            # Removed since the listing: by a complete that finished first, or by the person.
            current = _as_it_stands(job, jobs, photos, settings, finals)
            if current is not None:
                return current
            raise _not_uploaded([index]) from None
        # httpx keeps each response, body included, in a reference cycle: without a collection
        # every downloaded photo would stay in memory until the collector happened to run
        # (bench.photos_memory: 159 MB instead of 106 for six 12 MB photos). The response is
        # young garbage, so the cheap young-generation pass frees it.
        gc.collect(1)

    moved = jobs.update(
        job.id,
        {
            "status": JobStatus.PENDING,
            "progress": PROGRESS_UPLOADED,
            "photo_urls": finals,
            "photo_checksums": checksums,
        },
        expect_status=JobStatus.UPLOADING,
    )
    if moved is None:
        current = _as_it_stands(job, jobs, photos, settings, finals)
        if current is None:  # still uploading after a refused move: not expected, say so
            raise AppError(
                ErrorCode.JOB_STATE_CHANGED,
                "The job changed while we were completing it; call complete again.",
            )
        return current
    # After the move: if this fails, a retry still finds the job pending, and the leftovers are
    # under the job's folder, where the photo clean-up looks.
    remove_quietly(photos, raw_paths)
    return moved


def discard_job(job: Job, deps: Deps) -> None:
    """A refused upload leaves nothing behind: the job's objects, then its row (and its twin if
    it was made for this upload)."""
    jobs, photos = deps.jobs, deps.photos
    try:
        photos.remove(job_objects(job, photos))
    except Exception:
        # Keep the row (failed), so the photo clean-up can still find the objects.
        logger.exception(
            "could not remove a refused upload's photos", extra={"job_id": str(job.id)}
        )
        try:
            jobs.update(
                job.id,
                failed(FailureCode.PHOTOS_REFUSED, "The photos were refused."),
                expect_status=JobStatus.UPLOADING,
            )
        except Exception:
            logger.exception("could not fail a refused upload", extra={"job_id": str(job.id)})
        return
    try:
        jobs.delete(job.id)
    except Exception:
        # Still `uploading`: the sweep fails it once its window closes.
        logger.exception("could not delete a refused upload's job", extra={"job_id": str(job.id)})
        return
    drop_twin_if_unused(job.twin_id, deps)


def _store_normalised(
    job: Job, index: int, raw_path: str, checker: PhotoChecker, deps: Deps
) -> tuple[str, str]:
    """Download one raw upload, check and normalise it, store it as `NN.jpg`; its path and
    checksum. A refused photo discards the job. The photo's bytes live only in this call."""
    photos = deps.photos
    data = photos.get(raw_path)
    try:
        jpeg = checker.normalise(index, None, data)
    except AppError:
        discard_job(job, deps)
        raise
    del data  # before the upload of the result
    final = final_photo_path(job.user_id, job.id, index)
    photos.put(final, jpeg, PHOTO_CONTENT_TYPE)
    return final, photo_checksum(jpeg)


def _as_it_stands(
    job: Job, jobs: JobStore, photos: PhotoStore, settings: Settings, stored: list[str]
) -> Job | None:
    """After our complete was overtaken: the job if another complete finished it; an error if
    it failed or is gone (the photos we stored are then removed); None if still uploading."""
    current = jobs.get(job.id)
    if current is not None and current.status is JobStatus.UPLOADING:
        return None
    if current is not None and current.status is not JobStatus.FAILED:
        return current
    remove_quietly(photos, stored)
    if current is None:
        raise job_not_found()
    raise _job_failed(current, settings)


def _job_failed(job: Job, settings: Settings) -> AppError:
    expired = upload_window_closed(job, settings, datetime.now(UTC))
    return AppError(
        ErrorCode.UPLOAD_EXPIRED if expired else ErrorCode.UPLOAD_FAILED,
        job.error_message or "This upload has failed; start a new one with POST /uploads.",
    )


def _not_uploaded(indexes: list[int]) -> AppError:
    names = [f"photo {i}" for i in indexes]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "has" if len(names) == 1 else "have"
    return AppError(
        ErrorCode.UPLOAD_INCOMPLETE,
        f"{listed[0].upper()}{listed[1:]} {verb} not been uploaded yet; PUT each photo to its "
        "signed URL, then call complete again.",
    )


def _check_total(total: int, count: int, settings: Settings) -> None:
    if total > settings.photos_max_total_bytes:
        cap = settings.photos_max_total_bytes / (1024 * 1024)
        raise AppError(
            ErrorCode.PHOTOS_TOO_LARGE,
            f"Your {count} photos are {total / (1024 * 1024):.1f} MB together; one job can take "
            f"at most {cap:.0f} MB. Export some at a smaller size and upload them again.",
        )


def _upload_content_type(declared: str | None) -> str:
    base = (declared or "").split(";", 1)[0].strip().lower()
    return base if base in ACCEPTED_UPLOAD_CONTENT_TYPES else FALLBACK_UPLOAD_CONTENT_TYPE
