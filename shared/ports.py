"""The ports: what the use cases need from the outside world, and the values that cross.

Read this first. Each interface has one real adapter (`shared/adapters/`, built in
`shared/bootstrap.py`) and one in-memory fake (`tests/fakes.py`), and both are held to the same
behaviour (`tests/sql/test_job_store_contract.py` for the job store).

- `JobStore`: the `ai_training_jobs` rows (a twin's versions; every write that moves a job is a
  compare-and-set) and each job's progress history (`training_progress_points`).
- `TwinStore`: the `twins` rows: names, customisations, which version is active.
- `TrainingQueue`: admission of queued jobs (the database's `admit_trainings`), the shared hold
  after Replicate throttles us, a queued job's place.
- `PhotoStore`: the private photo bucket.
- `Trainer`: Replicate (Files API, the destination model, trainings).
- `Notifier`: the completion notice.
- `PreviewStore`: the `twin_previews` rows (one a picture) and the owner's daily count.
- `Predictor`: Replicate predictions on a trained version, and their outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # only the signatures name them: a function loads what its own code uses
    from shared.domain.admission import AdmissionRules, Admitted, QueueSnapshot, QueueStats
    from shared.domain.erasure import AccountErasure
    from shared.domain.eta import FinishedTimeline
    from shared.domain.history import ProgressPoint
    from shared.domain.job import Job, JobStatus
    from shared.domain.notice import CompletionNotice
    from shared.domain.previews import PredictionInfo, Preview, PreviewStatus
    from shared.domain.training import TrainingInfo
    from shared.domain.twin import Twin


class JobStore(Protocol):
    def insert(self, row: dict[str, Any]) -> Job: ...

    def get(self, job_id: UUID) -> Job | None: ...

    def update(
        self,
        job_id: UUID,
        changes: dict[str, Any],
        *,
        expect_status: JobStatus | Sequence[JobStatus] | None = None,
        expect_claim: UUID | None = None,
    ) -> Job | None:
        """Apply `changes` if the row still matches the expectations; None when it did not."""
        ...

    def list_active(self, statuses: Sequence[JobStatus], limit: int) -> list[Job]:
        """Jobs in `statuses`, least recently checked first."""
        ...

    def list_waiting(self, joined_before: datetime, limit: int) -> list[Job]:
        """Queued jobs that joined the line before `joined_before`, oldest first."""
        ...

    def list_owned(self, user_id: UUID, limit: int, after: JobPosition | None) -> list[Job]:
        """Up to `limit` of the user's jobs, newest first (`created_at`, then id, descending),
        from just after `after`; jobs being deleted are left out."""
        ...

    def compare_and_set(
        self, job_id: UUID, column: str, expected: datetime | None, new: datetime | None
    ) -> bool:
        """Set one timestamp column to `new` if it still holds `expected` (None = null)."""
        ...

    def list_unnotified(self, finished_after: datetime, limit: int) -> list[Job]:
        """Trainings that ended after `finished_after` whose notice is not sent, oldest first."""
        ...

    def list_without_previews(self, completed_after: datetime, limit: int) -> list[Job]:
        """Completed jobs since `completed_after` whose preview set was never made (its maker
        died first), oldest first; jobs being deleted are left out."""
        ...

    def list_cleanup_due(self, retention_cutoff: datetime, limit: int) -> list[Job]:
        """Jobs with something left to remove: an unfinished deletion, a final job's zip on
        Replicate, a final job's photos kept past `retention_cutoff`."""
        ...

    def delete(self, job_id: UUID) -> None: ...

    def list_versions(self, twin_ids: Sequence[UUID]) -> list[Job]:
        """Every job of these twins (deleted ones included), by twin and version."""
        ...

    def recent_timelines(self, limit: int) -> list[FinishedTimeline]:
        """When each of the last `limit` completed jobs entered each phase, newest first."""
        ...

    def add_progress_points(self, job_id: UUID, points: Sequence[ProgressPoint]) -> None:
        """Keep `points` in the job's history (a bucket kept already stays as it is); the
        database drops them unless the job is training. One call, safe to repeat."""
        ...

    def progress_points(self, job_id: UUID) -> list[ProgressPoint]:
        """The job's history in step order."""
        ...

    def delete_progress_points(self, job_id: UUID) -> None: ...

    def orphan_photo_objects(self, older_than: datetime, limit: int) -> list[str]:
        """Bucket objects created before `older_than` that no job row knows (no row for their
        `{user}/{job}/` folder, or its photos were removed already), oldest first."""
        ...

    def list_erasures_due(self, limit: int) -> list[AccountErasure]:
        """Deleted accounts whose erasure is not finished, oldest first."""
        ...

    def update_erasure(self, erasure_id: UUID, changes: dict[str, Any]) -> None: ...


class TwinStore(Protocol):
    def insert(self, row: dict[str, Any]) -> Twin: ...

    def get(self, twin_id: UUID) -> Twin | None: ...

    def list_owned(self, user_id: UUID) -> list[Twin]:
        """The owner's twins that are not being deleted, newest first."""
        ...

    def update(self, twin_id: UUID, changes: dict[str, Any]) -> Twin | None:
        """Apply `changes` (the database refuses an active version that may not be); None when
        the twin is gone."""
        ...

    def list_deletion_due(self, limit: int) -> list[Twin]:
        """Twins whose deletion was asked for and is not finished."""
        ...

    def delete(self, twin_id: UUID) -> None:
        """Remove a twin nothing was made of; refused (`twin_state_changed`) while it has a
        version."""
        ...


@dataclass(frozen=True)
class JobPosition:
    """A place in a user's job list: just after this job (the last one of a page)."""

    created_at: datetime
    job_id: UUID


class TrainingQueue(Protocol):
    def admit(self, rules: AdmissionRules, limit: int, now: datetime) -> list[Admitted]:
        """Let up to `limit` queued jobs train, within `rules`, in fair order (none while a hold
        lasts); each is in `training` now with the claim returned. Atomic across callers."""
        ...

    def hold(self, until: datetime, reason: str) -> datetime:
        """Hold every admission until `until` (a later hold stands); when the hold ends."""
        ...

    def place(self, job_id: UUID, per_user: int, now: datetime) -> QueueSnapshot | None:
        """The queued job's place and what its estimate needs; None unless it is queued."""
        ...

    def stats(self, now: datetime) -> QueueStats: ...

    def refresh_positions(self, per_user: int, now: datetime) -> int:
        """Write every queued job's place in line (the ones that changed); how many."""
        ...


class PhotoStore(Protocol):
    def put(self, path: str, data: bytes, content_type: str) -> None: ...

    def get(self, path: str) -> bytes: ...

    def fetch_into(self, path: str, out: IO[bytes]) -> None:
        """Write the object into `out` as it arrives (one photo never sits in memory whole)."""
        ...

    def remove(self, paths: list[str]) -> None: ...

    def list_names(self, prefix: str) -> list[str]:
        """Every object under the folder `prefix`, at any depth."""
        ...

    def sizes(self, prefix: str) -> dict[str, int]:
        """Path -> size in bytes of every object under the folder `prefix`, at any depth."""
        ...

    def signed_upload(self, path: str) -> SignedUpload:
        """A URL and token with which a browser can put one object at `path`."""
        ...

    def signed_urls(self, paths: Sequence[str], expires_in: int) -> dict[str, str]:
        """Absolute download URLs valid for `expires_in` seconds, one round trip for all; a
        path whose object is missing is left out."""
        ...


@dataclass(frozen=True)
class SignedUpload:
    """Where a browser sends one object straight to Storage (supabase createSignedUploadUrl)."""

    path: str
    url: str  # absolute; PUT the bytes here
    token: str  # the same token alone, for supabase-js uploadToSignedUrl(path, token, file)
    expires_at: datetime | None  # from the token; None when it does not say


class ObjectMissing(Exception):
    """The object is not in the bucket."""


class DeletionRefused(Exception):
    """Replicate refused a deletion for good (403 or 409): asking again cannot help. The caller
    stops retrying, and raises the metric and alarm (`ReplicateDeletionsRefused`)."""

    def __init__(self, what: str, status: int):
        super().__init__(f"Replicate refused deleting {what} ({status})")
        self.what = what
        self.status = status


@dataclass(frozen=True)
class JobFile:
    """A zip on Replicate's Files API and the job its metadata names."""

    id: str
    job_id: str
    created_at: datetime | None


class UploadedFile(BaseModel):
    model_config = ConfigDict(defer_build=True)

    id: str
    url: str


class Trainer(Protocol):
    def upload_zip(self, fileobj: IO[bytes], filename: str, job_id: str) -> UploadedFile: ...

    def ensure_destination(self) -> None: ...

    def create_training(self, zip_url: str, webhook: str | None) -> TrainingInfo: ...

    def get_training(self, training_id: str) -> TrainingInfo | None:
        """None when Replicate does not know the id (404)."""
        ...

    def find_training(self, zip_url: str, created_after: datetime) -> TrainingInfo | None:
        """The training whose input is this zip, if one was created (crash recovery)."""
        ...

    def cancel_training(self, training_id: str) -> TrainingInfo | None: ...

    def delete_file(self, file_id: str) -> None: ...

    def list_job_files(self, limit: int) -> list[JobFile]:
        """Our zips on Replicate's Files API (the ones whose metadata names a job), newest first,
        at most `limit`."""
        ...

    def delete_model_version(self, model_version: str) -> None:
        """Delete `owner/name:version_id` (a training's `output.version`); one already gone is fine."""
        ...


class NoticeUndeliverable(Exception):
    """The notice can never be delivered (no address, rejected): do not try again."""


class Notifier(Protocol):
    def send(self, notice: CompletionNotice) -> None:
        """Deliver the notice; NoticeUndeliverable when retrying cannot help."""
        ...


class PreviewStore(Protocol):
    def insert_set(self, rows: Sequence[dict[str, Any]]) -> list[Preview]:
        """Insert the pictures of a set (our own ids: rows already there stay as they are);
        every row of the set as it stands."""
        ...

    def request_on_demand(
        self, user_id: UUID, rows: Sequence[dict[str, Any]], per_day: int, now: datetime
    ) -> tuple[bool, int]:
        """Insert an on-demand set if the owner's pictures today (UTC) plus these stay within
        `per_day` (atomic across callers; a set inserted already is not counted twice);
        (inserted or there already, pictures today)."""
        ...

    def get(self, preview_id: UUID) -> Preview | None: ...

    def claim(
        self, preview_id: UUID, expected: UUID | None, token: UUID, now: datetime
    ) -> Preview | None:
        """Take a pending picture's claim if its token is still `expected`; None otherwise."""
        ...

    def update(
        self,
        preview_id: UUID,
        changes: dict[str, Any],
        *,
        expect_status: PreviewStatus | None = ...,
        expect_claim: UUID | None = None,
    ) -> Preview | None:
        """Apply `changes` if the row still matches (`expect_status`: pending unless given; None:
        any); None when it did not (or is gone)."""
        ...

    def for_jobs(self, job_ids: Sequence[UUID]) -> list[Preview]:
        """The pictures of these versions that are not deleted."""
        ...

    def list_unfinished(self, limit: int) -> list[Preview]:
        """Pending pictures not deleted, least recently touched first."""
        ...


class Predictor(Protocol):
    def create_prediction(
        self,
        version: str,
        input: dict[str, Any],
        webhook: str | None,
        *,
        wait_seconds: int,
        cancel_after_seconds: int,
    ) -> PredictionInfo:
        """Start a prediction on `version` (owner/name:id); with `wait_seconds`, Replicate
        holds the answer until it is done or that time passes. Repeated only after a refusal
        that proves it did not land."""
        ...

    def get_prediction(self, prediction_id: str) -> PredictionInfo | None:
        """None when Replicate does not know the id (404)."""
        ...

    def find_prediction(
        self, version: str, input: dict[str, Any], created_after: datetime
    ) -> PredictionInfo | None:
        """The prediction on `version` with this seed and prompt, if one was created (crash
        recovery)."""
        ...

    def cancel_prediction(self, prediction_id: str) -> PredictionInfo | None: ...

    def fetch_output(self, url: str) -> bytes:
        """The bytes of an output file (a replicate.delivery URL, gone after an hour)."""
        ...
