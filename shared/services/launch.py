"""Launching a claimed job: zip its photos, upload the zip, start the fine-tune.

A job reaches this claimed: admission (`shared.services.start`) moved it from the queue to
`training` with a fresh claim token, or a resumer took a dead claim over.

Starting costs money, so each step is written so that a repeat (a double click, twenty concurrent
calls, a retry after a crash) can never create a second training:
1. the claim is a compare-and-set into `training` with a fresh claim token (admission's);
2. the uploaded zip's URL is saved on the row before the training is created;
3. right before creating the training the claim is renewed (a new token, `last_checked_at` now),
   so nobody can take it over for `claim_timeout_seconds`, and the create call sends its last POST
   well within that time (`ReplicateTrainer.create_training`);
4. a later attempt first looks for a training whose input is that zip and adopts it.

A job claimed but never started (the function died or timed out before the training was recorded)
stays in `training` without a training id. Once its claim is `claim_timeout_seconds` old, the next
start call, status call or sweep takes the claim over and resumes it: it adopts the training if
Replicate has one for the zip, else carries on and creates it. After `training_stale_minutes`
without a training, it is failed with `NOT_STARTED_MESSAGE` (a training found even then is still
adopted, never left running unrecorded). It never goes back to `pending`: the database allows no
`training -> pending` move, and a person's repeated start would claim it again anyway.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from aws_lambda_powertools import Logger

from shared.domain.claims import NOT_STARTED_MESSAGE
from shared.domain.eta import RECENT_JOBS, Expected, expected_from, first_estimate
from shared.domain.job import PROGRESS_TRAINING_STARTED, FailureCode, Job, JobStatus, failed
from shared.domain.phases import Phase
from shared.domain.training import CLOCK_SKEW, TrainingInfo
from shared.errors import AppError, ErrorCode, UpstreamError
from shared.photos.rules import JPEG_SIGNATURE, photo_checksum
from shared.photos.training_zip import write_training_zip
from shared.plumbing.observability import (
    record_throttled,
    record_training_finished,
    record_training_started,
)
from shared.plumbing.settings import Settings
from shared.ports import ObjectMissing
from shared.services.common import job_not_found
from shared.services.deps import Deps

logger = Logger(child=True)


PHOTO_FETCH_CONCURRENCY = 6


class ClaimLost(Exception):
    """Another worker owns this job's start now; stop without touching it."""


class PhotoChanged(Exception):
    """A stored photo is not the one the upload checked (its checksum differs, or it is not a
    JPEG at all): the job fails before anything reaches Replicate."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


PHOTOS_CHANGED_MESSAGE = (
    "A stored photo of this job is not the one we checked at upload ({name}), so nothing was "
    "sent for training and nothing was charged; upload your photos again."
)


class Throttled(Exception):
    """Replicate answered 429 to a call after which no training can exist for the job (the
    destination check, the zip upload, the create itself): back in line, everyone waits."""

    def __init__(self, error: UpstreamError):
        self.error = error


T = TypeVar("T")


def _unless_throttled(call: Callable[[], T]) -> T:
    try:
        return call()
    except UpstreamError as exc:
        if exc.error is ErrorCode.UPSTREAM_THROTTLED:
            raise Throttled(exc) from exc
        raise


def webhook_url(settings: Settings, job_id: uuid.UUID) -> str | None:
    if not settings.webhook_base_url:
        return None
    return f"{settings.webhook_base_url}/webhooks/replicate?jobId={quote(str(job_id))}"


def launch(job: Job, token: uuid.UUID, deps: Deps, *, may_create: bool = True) -> Job:
    """Run the start steps for a job we hold the claim of; safe to run again after a crash.

    With `may_create=False` an existing training is still adopted, but none is created: the job
    is failed instead.
    """
    try:
        training: TrainingInfo | None = None
        if job.replicate_file_url is None:
            if not may_create:
                return _fail(job, token, FailureCode.NOT_STARTED, NOT_STARTED_MESSAGE, deps)
            # A fresh zip (its photos checked before any Replicate call): no training can use it
            # yet. Saving its URL also renews the claim.
            job, token = _unless_throttled(lambda: _upload_zip(job, token, deps))
        else:
            if job.claimed_at is not None:
                # An earlier attempt got this far; it may have created the training before dying.
                since = job.claimed_at - CLOCK_SKEW
                training = deps.trainer.find_training(job.replicate_file_url, since)
            if training is None:
                if not may_create:
                    return _fail(job, token, FailureCode.NOT_STARTED, NOT_STARTED_MESSAGE, deps)
                _unless_throttled(deps.trainer.ensure_destination)
                job, token = _renew_claim(job, token, deps)
        assert job.replicate_file_url is not None
        if training is None:
            # The claim was renewed just now (with the zip's URL, or above): create right away.
            zip_url = job.replicate_file_url
            training = _unless_throttled(
                lambda: deps.trainer.create_training(zip_url, webhook_url(deps.settings, job.id))
            )
        return _record_started(job, token, training, deps)
    except Throttled as throttled:
        return back_in_line(job, token, throttled.error, deps)
    except PhotoChanged as changed:
        return _fail(
            job,
            token,
            FailureCode.PHOTOS_CHANGED,
            PHOTOS_CHANGED_MESSAGE.format(name=changed.name),
            deps,
        )
    except ObjectMissing:
        return _fail(
            job,
            token,
            FailureCode.PHOTOS_MISSING,
            "Some of the photos of this job are gone from storage; upload them again.",
            deps,
        )
    except ClaimLost:
        current = deps.jobs.get(job.id)
        if current is None:
            # The row is gone (its owner deleted their account): nothing may start for it.
            raise job_not_found() from None
        return current


# When Replicate's 429 names no Retry-After: its documented "resets in ~30s".
DEFAULT_THROTTLE_SECONDS = 30.0


def back_in_line(job: Job, token: uuid.UUID, error: UpstreamError, deps: Deps) -> Job:
    """Replicate throttled this start: hold every admission back for its Retry-After (capped),
    shared by every Lambda through the database, and put the job back in line in its old place
    (no training exists for it: the database allows the move only then)."""
    wait = min(
        error.retry_after or DEFAULT_THROTTLE_SECONDS, deps.settings.throttle_hold_max_seconds
    )
    now = deps.clock()
    held = deps.queue.hold(now + timedelta(seconds=wait), "replicate_throttled")
    record_throttled()
    logger.warning(
        "Replicate throttled a start; admissions wait",
        extra={"job_id": str(job.id), "held_until": held.isoformat()},
    )
    queued = deps.jobs.update(
        job.id,
        {
            "status": JobStatus.QUEUED,
            "queued_at": job.queued_at or now,
            "claim_token": None,
            "claimed_at": None,
            "admitted_at": None,
            "reserved_cost_usd": None,
        },
        expect_status=JobStatus.TRAINING,
        expect_claim=token,
    )
    return queued or deps.jobs.get(job.id) or job


def _upload_zip(job: Job, token: uuid.UUID, deps: Deps) -> tuple[Job, uuid.UUID]:
    """Zip the photos (each checked against its checksum first), make sure the destination
    model exists, upload the zip, then save the file's URL with the claim's renewal (one write
    instead of two before the paid call)."""
    # A named file: the replicate client reads `.name` for the upload's filename part.
    with tempfile.NamedTemporaryFile(suffix=".zip") as spool:
        photos = fetched_in_order(deps, job.photo_urls)
        write_training_zip(checked(photos, job.photo_checksums), spool)
        deps.trainer.ensure_destination()
        uploaded = deps.trainer.upload_zip(spool.file, f"{job.id}.zip", str(job.id))
    try:
        return _renew_claim(
            job,
            token,
            deps,
            also={"replicate_file_id": uploaded.id, "replicate_file_url": uploaded.url},
        )
    except ClaimLost:
        deps.trainer.delete_file(uploaded.id)  # nobody will use this copy of the photos
        raise


def checked(
    photos: Iterator[tuple[str, bytes]], checksums: list[str] | None
) -> Iterator[tuple[str, bytes]]:
    """The photos, each as it was stored: its checksum recorded at upload (jobs stored before
    checksums existed: a JPEG at least); `PhotoChanged` names the first that is not."""
    index = -1
    for index, (name, data) in enumerate(photos):
        expected = checksums[index] if checksums is not None and index < len(checksums) else None
        if checksums is not None and (expected is None or photo_checksum(data) != expected):
            raise PhotoChanged(name)
        if not data.startswith(JPEG_SIGNATURE):
            raise PhotoChanged(name)
        yield name, data
    if checksums is not None and index + 1 != len(checksums):
        raise PhotoChanged("the photo list")


def fetched_in_order(deps: Deps, paths: list[str]) -> Iterator[tuple[str, bytes]]:
    """`(file name, bytes)` of each photo in order, all fetched in parallel.

    Each photo is streamed into its own temp file (`PhotoStore.fetch_into`) and read
    back when the zip writer reaches it, so memory holds one photo at a time, never the set.
    """

    def to_file(folder: str, index: int, path: str) -> str:
        name = os.path.join(folder, f"{index:02d}")
        with open(name, "wb") as out:
            deps.photos.fetch_into(path, out)
        return name

    with (
        tempfile.TemporaryDirectory(prefix="photos-") as folder,
        ThreadPoolExecutor(max_workers=PHOTO_FETCH_CONCURRENCY) as pool,
    ):
        fetches = [pool.submit(to_file, folder, i, path) for i, path in enumerate(paths)]
        try:
            for path, fetched in zip(paths, fetches, strict=True):
                name = fetched.result()
                with open(name, "rb") as photo:
                    data = photo.read()
                os.remove(name)  # /tmp is small on Lambda: the zip alone takes as much
                yield path.rsplit("/", 1)[-1], data
        finally:
            for fetched in fetches:
                fetched.cancel()  # the zip gave up (a missing photo): fetch no more


def _renew_claim(
    job: Job, token: uuid.UUID, deps: Deps, also: dict[str, Any] | None = None
) -> tuple[Job, uuid.UUID]:
    """A fresh token and a fresh sign of life, right before the call that costs money, written
    together with the fields `also`; the saved row and the new token.

    A resumer that read the row earlier now fails its compare-and-set on the old token, and one
    reading it now sees a live claim for another `claim_timeout_seconds`.
    """
    renewed = uuid.uuid4()
    saved = deps.jobs.update(
        job.id,
        {**(also or {}), "claim_token": renewed, "last_checked_at": datetime.now(UTC)},
        expect_status=JobStatus.TRAINING,
        expect_claim=token,
    )
    if saved is None:
        raise ClaimLost
    return saved, renewed


def _expected_phases(job: Job, deps: Deps) -> Expected:
    """What each phase took in recently completed jobs: the basis of this job's estimate."""
    try:
        return expected_from(deps.jobs.recent_timelines(RECENT_JOBS), deps.settings)
    except UpstreamError:
        # Recording the training matters more: the settings' defaults stand in.
        logger.warning("recent phase times unavailable", extra={"job_id": str(job.id)})
        return Expected.defaults(deps.settings)


def _record_started(job: Job, token: uuid.UUID, training: TrainingInfo, deps: Deps) -> Job:
    now = datetime.now(UTC)
    expected = _expected_phases(job, deps)
    saved = deps.jobs.update(
        job.id,
        {
            "replicate_training_id": training.id,
            "progress": max(job.progress, PROGRESS_TRAINING_STARTED),
            "expected_phase_seconds": expected.as_row(),
            "phase_times": {Phase.PREPARING_GPU: training.created_at or now},
            "estimated_completion": first_estimate(training, expected, now, deps.settings),
            "last_replicate_status": training.status,
            "last_checked_at": now,
        },
        expect_status=JobStatus.TRAINING,
        expect_claim=token,
    )
    if saved is None:
        raise ClaimLost
    record_training_started()
    return saved


def _fail(job: Job, token: uuid.UUID, code: FailureCode, message: str, deps: Deps) -> Job:
    # No training exists (a found one is adopted before this): nothing is charged, so the
    # day's budget gets its reservation back.
    ended = deps.jobs.update(
        job.id,
        {**failed(code, message), "reserved_cost_usd": None},
        expect_status=JobStatus.TRAINING,
        expect_claim=token,
    )
    if ended is None:
        raise ClaimLost
    logger.warning("training could not start", extra={"job_id": str(job.id), "reason": message})
    record_training_finished(ended)  # JobsFailed counts jobs that never trained too
    return ended


def resume_stalled_start(job: Job, deps: Deps, now: datetime) -> Job:
    """The repair for a claim whose start never finished (the function died or timed out).

    Takes the claim over with a compare-and-set on the token we read, then runs the same
    idempotent steps. A claim older than `training_stale_minutes` may only adopt a training that
    exists; without one the job is failed.
    """
    token = uuid.uuid4()
    taken = deps.jobs.update(
        job.id,
        {"claim_token": token, "last_checked_at": now},
        expect_status=JobStatus.TRAINING,
        expect_claim=job.claim_token,
    )
    if taken is None:
        return deps.jobs.get(job.id) or job
    claimed_at = job.claimed_at or now
    given_up = now - claimed_at > timedelta(minutes=deps.settings.training_stale_minutes)
    try:
        return launch(taken, token, deps, may_create=not given_up)
    except AppError:
        return taken  # still transient: the next attempt after the claim timeout tries again
