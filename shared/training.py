"""start_ai_training: claim the job, zip its photos, upload the zip, start the fine-tune (DESIGN §5).

Starting costs money, so each step is written so that a repeat (a double click, twenty concurrent
calls, a retry after a crash) can never create a second training:
1. the claim is a compare-and-set `pending -> training` with a fresh claim token;
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from aws_lambda_powertools import Logger

from shared.errors import AppError, Conflict, UpstreamError
from shared.jobs import JobStore, owned_job
from shared.models import PROGRESS_TRAINING_STARTED, Job, JobStatus
from shared.notify import LogNotifier, Notifier
from shared.observability import record_training_finished, record_training_started
from shared.photo_store import ObjectMissing, PhotoStore, storage_body_status, storage_transient
from shared.progress import estimate_completion
from shared.retry import Deadline, call_with_retry, httpx_errors
from shared.settings import Settings
from shared.trainer import CLOCK_SKEW, Trainer, TrainingInfo
from shared.training_zip import write_training_zip

if TYPE_CHECKING:
    import httpx

logger = Logger(child=True)

PHOTO_FETCH_CONCURRENCY = 6
STREAM_CHUNK_BYTES = 256 * 1024
PhotoFetch = Callable[[str, IO[bytes]], Any]  # (object path, file to write it into)
# A failed job stays failed: the way forward is a new job, so the message says so.
NOT_STARTED_MESSAGE = (
    "We could not start your training on Replicate; upload your photos again to start a new one."
)


@dataclass
class StartDeps:
    settings: Settings
    jobs: JobStore
    photos: PhotoStore
    trainer: Trainer
    notifier: Notifier = field(default_factory=LogNotifier)
    # Streams one photo into a file; without it a photo is read whole with `photos.get`.
    fetch_photo: PhotoFetch | None = None


class ClaimLost(Exception):
    """Another worker owns this job's start now; stop without touching it."""


def webhook_url(settings: Settings, job_id: uuid.UUID) -> str | None:
    if not settings.webhook_base_url:
        return None
    return f"{settings.webhook_base_url}/webhooks/replicate?jobId={quote(str(job_id))}"


def start_training(user_id: uuid.UUID, job_id: uuid.UUID, deps: StartDeps) -> Job:
    job = owned_job(deps.jobs, job_id, user_id)
    if job.status is JobStatus.UPLOADING:
        raise Conflict(
            "The photos of this job are not uploaded yet; complete the upload first.",
            code="upload_incomplete",
        )
    now = datetime.now(UTC)
    if stalled_start(job, deps.settings, now):
        return resume_stalled_start(job, deps, now)  # the earlier start died half-way
    if job.status is not JobStatus.PENDING:
        return job  # already started or finished: idempotent answer
    token = uuid.uuid4()
    claimed = deps.jobs.update(
        job_id,
        {
            "status": JobStatus.TRAINING,
            "claim_token": token,
            "claimed_at": now,
            "last_checked_at": now,
        },
        expect_status=JobStatus.PENDING,
    )
    if claimed is None:
        # Lost the race to a concurrent call: answer with the job as it stands.
        return owned_job(deps.jobs, job_id, user_id)
    return launch(claimed, token, deps)


def stalled_start(job: Job, settings: Settings, now: datetime) -> bool:
    """A claim that has not recorded its training, and whose holder has shown no sign of life for
    `claim_timeout_seconds` (longer than the start function may run): the holder is gone."""
    if job.status is not JobStatus.TRAINING or job.replicate_training_id is not None:
        return False
    last = last_sign_of_life(job)
    return last is None or now - last > timedelta(seconds=settings.claim_timeout_seconds)


def last_sign_of_life(job: Job) -> datetime | None:
    """When the claim's holder last showed it was alive (claimed it, or renewed it)."""
    return max((t for t in (job.claimed_at, job.last_checked_at) if t is not None), default=None)


def launch(job: Job, token: uuid.UUID, deps: StartDeps, *, may_create: bool = True) -> Job:
    """Run the start steps for a job we hold the claim of; safe to run again after a crash.

    With `may_create=False` an existing training is still adopted, but none is created: the job
    is failed instead.
    """
    try:
        training: TrainingInfo | None = None
        if job.replicate_file_url is None:
            if not may_create:
                return _fail(job, token, NOT_STARTED_MESSAGE, deps)
            deps.trainer.ensure_destination()
            # A fresh zip: no training can use it yet. Saving its URL also renews the claim.
            job, token = _upload_zip(job, token, deps)
        else:
            if job.claimed_at is not None:
                # An earlier attempt got this far; it may have created the training before dying.
                since = job.claimed_at - CLOCK_SKEW
                training = deps.trainer.find_training(job.replicate_file_url, since)
            if training is None:
                if not may_create:
                    return _fail(job, token, NOT_STARTED_MESSAGE, deps)
                deps.trainer.ensure_destination()
                job, token = _renew_claim(job, token, deps)
        assert job.replicate_file_url is not None
        if training is None:
            # The claim was renewed just now (with the zip's URL, or above): create right away.
            training = deps.trainer.create_training(
                job.replicate_file_url, webhook_url(deps.settings, job.id)
            )
        return _record_started(job, token, training, deps)
    except ObjectMissing:
        return _fail(
            job,
            token,
            "Some of the photos of this job are gone from storage; upload them again.",
            deps,
        )
    except ClaimLost:
        current = deps.jobs.get(job.id)
        assert current is not None
        return current


def _upload_zip(job: Job, token: uuid.UUID, deps: StartDeps) -> tuple[Job, uuid.UUID]:
    """Zip and upload the photos, then save the file's URL with the claim's renewal (one write
    instead of two before the paid call)."""
    # A named file: the replicate client reads `.name` for the upload's filename part.
    with tempfile.NamedTemporaryFile(suffix=".zip") as spool:
        write_training_zip(fetched_in_order(deps, job.photo_urls), spool)
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


def fetched_in_order(deps: StartDeps, paths: list[str]) -> Iterator[tuple[str, bytes]]:
    """`(file name, bytes)` of each photo in order, all fetched in parallel.

    Each photo is fetched into its own temp file (streamed, with `deps.fetch_photo`) and read
    back when the zip writer reaches it, so memory holds one photo at a time, never the set.
    """
    fetch = deps.fetch_photo or (lambda path, out: out.write(deps.photos.get(path)))

    def to_file(folder: str, index: int, path: str) -> str:
        name = os.path.join(folder, f"{index:02d}")
        with open(name, "wb") as out:
            fetch(path, out)
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


def storage_fetch(http: httpx.Client, bucket_url: str, deadline: Deadline) -> PhotoFetch:
    """Fetch a Storage object into a file in chunks (storage3's `download` buffers it whole).

    Same outcomes as `SupabasePhotoStore.get`: retried while transient within the deadline,
    ObjectMissing for an object that is not there, UpstreamError when Storage stays unreachable.
    """

    def fetch(path: str, out: IO[bytes]) -> None:
        def attempt() -> None:
            out.seek(0)
            out.truncate()
            with http.stream("GET", f"{bucket_url}/{quote(path)}") as response:
                if response.status_code >= 400:
                    response.read()
                    if response.status_code == 404 or storage_body_status(response) == "404":
                        raise ObjectMissing(path)
                    response.raise_for_status()
                for chunk in response.iter_bytes(STREAM_CHUNK_BYTES):
                    out.write(chunk)

        try:
            call_with_retry(attempt, deadline=deadline, transient=storage_transient)
        except httpx_errors("TransportError") as exc:
            raise UpstreamError("Photo storage is not reachable right now.") from exc
        except httpx_errors("HTTPStatusError") as exc:
            if storage_transient(exc) or exc.response.status_code >= 500:
                raise UpstreamError("Photo storage is not available right now.") from exc
            raise

    return fetch


def _renew_claim(
    job: Job, token: uuid.UUID, deps: StartDeps, also: dict[str, Any] | None = None
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


def _record_started(job: Job, token: uuid.UUID, training: TrainingInfo, deps: StartDeps) -> Job:
    now = datetime.now(UTC)
    saved = deps.jobs.update(
        job.id,
        {
            "replicate_training_id": training.id,
            "progress": max(job.progress, PROGRESS_TRAINING_STARTED),
            "estimated_completion": estimate_completion(training, None, now, deps.settings),
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


def _fail(job: Job, token: uuid.UUID, message: str, deps: StartDeps) -> Job:
    failed = deps.jobs.update(
        job.id,
        {"status": JobStatus.FAILED, "error_message": message},
        expect_status=JobStatus.TRAINING,
        expect_claim=token,
    )
    if failed is None:
        raise ClaimLost
    logger.warning("training could not start", extra={"job_id": str(job.id), "reason": message})
    record_training_finished(failed)  # JobsFailed counts jobs that never trained too
    return failed


def resume_stalled_start(job: Job, deps: StartDeps, now: datetime) -> Job:
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
