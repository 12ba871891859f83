"""A deleted account leaves nothing: the sweep's `accounts` task.

Deleting the `auth.users` row cascades the person's job and twin rows away at once; before it
does, the database writes what must be removed into `account_erasures` (a trigger; the table has
no foreign key the cascade could follow). This task works through those records until each is
done, safely repeated as often as needed:
- every training of theirs that may still run is canceled (one a start cut short may have created
  is found by its zip, as crash recovery does; until `claim_timeout_seconds` after the start's last
  sign of life, its absence proves nothing, so the erasure waits);
- every zip is deleted from Replicate's Files API, every trained version (a training that
  finished anyway too) from the destination model;
- every object under their folder `{user}/` in the bucket is removed (their job folders, raw
  uploads, anything else); a signed upload URL still valid could put one back, so the erasure
  is finished only once the last one has expired;
- then the record is anonymised: no user id, no paths, no ids, only counts and times.
Their queued jobs cannot be admitted: the rows are gone, and admission reads only rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from shared.domain.erasure import AccountErasure, ErasedJob, anonymised
from shared.domain.training import CLOCK_SKEW, TrainingInfo
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import record_deletion_refused
from shared.ports import DeletionRefused
from shared.services.common import TaskReport, for_each_job, tally
from shared.services.deps import Deps

logger = Logger(child=True)

ERASURE_BATCH = 100


@dataclass
class ErasureReport(TaskReport):
    finished: int = 0
    waiting: int = 0  # a training still stopping, or a start or signed URL still live


@dataclass
class _Tally:
    trainings_canceled: int = 0
    files_deleted: int = 0
    versions_deleted: int = 0
    objects_removed: int = 0
    deletions_refused: int = 0


def erase(erasure: AccountErasure, deps: Deps, now: datetime) -> bool:
    """One pass over a deleted account's leftovers; True once nothing of the person is left
    (the record is then anonymous)."""
    counts = _Tally(
        **{k: v for k, v in (erasure.summary or {}).items() if k in _Tally.__annotations__}
    )
    settled = True
    left: list[ErasedJob] = []  # what the next pass still has to look at
    for entry in erasure.jobs:
        done, entry = _erase_job(entry, deps, now, counts)
        settled = done and settled
        left.append(entry)
    if erasure.storage_prefix:
        folder = erasure.storage_prefix.rstrip("/")
        names = deps.photos.list_names(folder)
        if names:
            deps.photos.remove(names)
            counts.objects_removed += len(names)
    if erasure.uploads_open_until is not None and now < erasure.uploads_open_until:
        settled = False  # a late PUT could still land: look again once the URLs expired
    summary = {**counts.__dict__, "jobs": len(erasure.jobs), "twins": len(erasure.twin_ids)}
    if settled:
        deps.jobs.update_erasure(erasure.id, anonymised(summary, now))
        logger.info("account erasure finished", extra={"erasure_id": str(erasure.id)})
    else:
        deps.jobs.update_erasure(
            erasure.id,
            {
                "attempts": erasure.attempts + 1,
                "last_attempt_at": now,
                "summary": summary,
                "jobs": [entry.model_dump(mode="json") for entry in left],
            },
        )
    return settled


def _erase_job(
    entry: ErasedJob, deps: Deps, now: datetime, counts: _Tally
) -> tuple[bool, ErasedJob]:
    """Stop the job's training, delete its zip and version; whether nothing of it can still
    appear, and the entry without what is gone now (so a next pass neither repeats nor
    recounts it)."""
    training = _training_of(entry, deps)
    settled = True
    if training is not None and not training.is_terminal:
        training = deps.trainer.cancel_training(training.id) or training
        counts.trainings_canceled += 1
    if training is not None:
        settled = training.is_terminal
    elif entry.file_url is not None and entry.training_id is None:
        # A start cut short by the deletion may still create a training with this zip.
        alive = max((t for t in (entry.claimed_at, entry.last_checked_at) if t), default=None)
        window = timedelta(seconds=deps.settings.claim_timeout_seconds)
        settled = alive is None or now - alive >= window
    version = entry.model_version
    if version is None and training is not None and training.status == "succeeded":
        version = training.model_version  # it finished before the cancel reached it
    gone: dict[str, Any] = {}
    if training is not None and training.is_terminal:
        gone["training_id"] = training.id  # found by its zip: no need to look again
    # Deleted, or refused for good (counted and alarmed): either way never asked again.
    if entry.file_id:
        if _refusable(lambda: deps.trainer.delete_file(entry.file_id or ""), counts):
            counts.files_deleted += 1
        gone["file_id"] = None
    if version and _refusable(lambda: deps.trainer.delete_model_version(version), counts):
        counts.versions_deleted += 1
    gone["model_version"] = None
    return settled, entry.model_copy(update=gone)


def _training_of(entry: ErasedJob, deps: Deps) -> TrainingInfo | None:
    if entry.training_id:
        return deps.trainer.get_training(entry.training_id)
    if entry.file_url and entry.claimed_at:
        return deps.trainer.find_training(entry.file_url, entry.claimed_at - CLOCK_SKEW)
    return None


def _refusable(delete: Any, counts: _Tally) -> bool:
    """Run a Replicate deletion; a refusal for good is counted and alarmed, not retried."""
    try:
        delete()
    except DeletionRefused as refused:
        counts.deletions_refused += 1
        record_deletion_refused()
        logger.error("Replicate refused a deletion for good", extra={"what": refused.what})
        return False
    return True


def sweep_account_erasures(deps: Deps, deadline: Deadline) -> ErasureReport:
    """The sweep task: every unfinished erasure, oldest first, within the deadline."""
    now = datetime.now(UTC)
    due = deps.jobs.list_erasures_due(ERASURE_BATCH)
    outcomes = for_each_job(
        due,
        lambda erasure: erase(erasure, deps, now),
        deadline=deadline,
        workers=deps.settings.sweep_concurrency,
        failure="an account erasure did not finish; the next sweep goes on",
        log_key="erasure_id",
    )

    def count(report: ErasureReport, _: AccountErasure, finished: bool) -> None:
        report.finished += finished
        report.waiting += not finished

    return tally(ErasureReport(seen=len(due)), outcomes, count)
