"""A person's twins: read them with their versions, rename or re-customise them, choose which
version is active (roll back, or forward again), delete one whole.

The database keeps the rules (twins migration): a completed training becomes its twin's active
version in the same transaction as its completion; the active version is always a completed,
not-deleted version of the same twin and owner; a twin has at most one version on its way. The
checks here come first only to answer with a precise code; a concurrent change that slips past
them is refused by the database (`twin_state_changed`).

Deleting a twin: the request is written first, with the active pointer cleared (from then on the
twin is hidden, takes no new version and cannot be activated); then every version goes through
the job deletion machinery (`services.privacy`: training canceled, photos, zip and model version
removed, row anonymised); last, the twin is anonymised (`deleted_at`). Whatever fails is retried
by the sweep's `twins` task until done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.domain.job import Job, JobStatus, validate_furrsona_name
from shared.domain.twin import Twin
from shared.errors import AppError, ErrorCode
from shared.plumbing.deadline import Deadline
from shared.services.common import TaskReport, for_each_job, tally
from shared.services.deps import Deps
from shared.services.intake import parse_customization
from shared.services.previews import SignedSets, signed_sets
from shared.services.privacy import DELETED_NAME, delete_job_now
from shared.services.versions import owned_twin, twin_not_found

logger = Logger(child=True)

TWIN_DELETION_BATCH = 200


@dataclass(frozen=True)
class TwinView:
    """A twin with its versions (its jobs, not deleted ones), for the answers."""

    twin: Twin
    versions: list[Job]
    previews: SignedSets | None = None  # each version's preview sets, signed


def _views(deps: Deps, twins: list[Twin]) -> list[TwinView]:
    jobs = [
        j for j in deps.jobs.list_versions([t.id for t in twins]) if j.deletion_requested_at is None
    ]
    completed = [j.id for j in jobs if j.status is JobStatus.COMPLETED]
    previews = signed_sets(completed, deps)
    return [TwinView(t, [j for j in jobs if j.twin_id == t.id], previews) for t in twins]


def list_twins(user_id: UUID, deps: Deps) -> list[TwinView]:
    return _views(deps, deps.twins.list_owned(user_id))


def get_twin(user_id: UUID, twin_id: UUID, deps: Deps) -> TwinView:
    return _views(deps, [owned_twin(deps, twin_id, user_id)])[0]


def update_twin(user_id: UUID, twin_id: UUID, body: dict[str, Any], deps: Deps) -> TwinView:
    """Rename it or change its customisation; no retraining needed (the next one uses them)."""
    owned_twin(deps, twin_id, user_id)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = validate_furrsona_name(body["name"], field="name")
    if "customizationData" in body:
        changes["customization_data"] = parse_customization(body["customizationData"])
    unknown = sorted(set(body) - {"name", "customizationData", "userId"})
    if unknown or not changes:
        raise AppError(
            ErrorCode.INVALID_FIELD,
            "Send name and/or customizationData to change"
            + (f" (not {', '.join(unknown)})." if unknown else "."),
        )
    if deps.twins.update(twin_id, changes) is None:
        raise twin_not_found()
    return get_twin(user_id, twin_id, deps)


def activate_version(user_id: UUID, twin_id: UUID, job_id: UUID, deps: Deps) -> TwinView:
    """Make a completed version the active one (roll back, or forward again)."""
    twin = owned_twin(deps, twin_id, user_id)
    job = deps.jobs.get(job_id)
    if job is None or job.twin_id != twin.id or job.deletion_requested_at is not None:
        raise AppError(ErrorCode.VERSION_NOT_FOUND, "This twin has no version with this jobId.")
    if job.status is not JobStatus.COMPLETED:
        raise AppError(
            ErrorCode.VERSION_NOT_READY,
            f"Version {job.version} is {job.status.value}; only a completed version can be active.",
        )
    if twin.active_job_id != job.id and deps.twins.update(twin.id, {"active_job_id": job.id}):
        logger.info(
            "active version changed",
            extra={"twin_id": str(twin.id), "job_id": str(job.id), "version": job.version},
        )
    return get_twin(user_id, twin_id, deps)


# --- delete -------------------------------------------------------------------------------------


def delete_twin(user_id: UUID, twin_id: UUID, deps: Deps) -> Twin:
    """The owner deletes a twin with every version; recorded at once, finished now as far as
    possible, else by the sweep. Repeating it continues (or reports) the same deletion."""
    twin = owned_twin(deps, twin_id, user_id, include_deleted=True)
    if twin.deleted_at is not None:
        return twin
    if not twin.being_deleted:
        now = datetime.now(UTC)
        marked = deps.twins.update(twin.id, {"deletion_requested_at": now, "active_job_id": None})
        if marked is None:
            raise twin_not_found()
        twin = marked
        logger.info("twin deletion requested", extra={"twin_id": str(twin.id)})
    try:
        return finish_twin_deletion(twin, deps)
    except Exception:
        logger.exception("twin deletion left for the sweep", extra={"twin_id": str(twin.id)})
        return deps.twins.get(twin.id) or twin


def finish_twin_deletion(twin: Twin, deps: Deps) -> Twin:
    """Delete every version (the job machinery, each as far as it gets now); anonymise the twin
    once every version is gone."""
    versions = deps.jobs.list_versions([twin.id])
    remaining = [job for job in versions if job.deleted_at is None]
    finished = [delete_job_now(job, deps) for job in remaining]
    if any(job.deleted_at is None for job in finished):
        return twin
    done = deps.twins.update(
        twin.id, {"name": DELETED_NAME, "customization_data": {}, "deleted_at": datetime.now(UTC)}
    )
    logger.info("twin deletion finished", extra={"twin_id": str(twin.id)})
    return done or twin


@dataclass
class TwinCleanupReport(TaskReport):
    deletions_finished: int = 0


def sweep_twin_deletions(deps: Deps, deadline: Deadline) -> TwinCleanupReport:
    """The sweep's task: carry on every twin deletion that is not finished."""
    twins = deps.twins.list_deletion_due(TWIN_DELETION_BATCH)
    outcomes = for_each_job(
        twins,
        lambda twin: finish_twin_deletion(twin, deps),
        deadline=deadline,
        workers=deps.settings.sweep_concurrency,
        failure="a twin's deletion could not go on",
        log_key="twin_id",
    )

    def count(report: TwinCleanupReport, _: Twin, after: Twin) -> None:
        report.deletions_finished += after.deleted_at is not None

    return tally(TwinCleanupReport(seen=len(twins)), outcomes, count)
