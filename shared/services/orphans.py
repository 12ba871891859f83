"""Nothing strands: the sweep's `orphans` task removes what no row knows about.

- Bucket objects (`JobStore.orphan_photo_objects`, one database query over storage.objects): no
  job row for their `{user}/{job}/` folder (a refused upload's late PUT to a URL still valid, a
  deleted account's), or their job's photos were removed already (a late PUT after a delete, a
  cancel or an expiry), or outside any job folder; once older than `ORPHAN_GRACE`, since a
  multipart upload stores its photos a moment before it writes its row.
- Zips on Replicate's Files API: every zip we upload names its job in its metadata
  (`{"job_id": ...}`), so one whose job row is gone, whose job's zip was deleted already, or that
  its job does not record (a start whose answer was lost, or cut short by a delete) is deleted
  once older than `claim_timeout_seconds` (no start still running can be about to record it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import record_deletion_refused, record_orphans_removed
from shared.ports import DeletionRefused, JobFile
from shared.services.common import TaskReport
from shared.services.deps import Deps

logger = Logger(child=True)

# Longer than any invocation (the upload function stores photos, then its row, within 29 s).
ORPHAN_GRACE = timedelta(minutes=15)
ORPHAN_BATCH = 1000
FILES_LISTED = 500


@dataclass
class OrphanReport(TaskReport):
    objects_removed: int = 0
    zips_deleted: int = 0
    deletions_refused: int = 0


def sweep_orphans(deps: Deps, deadline: Deadline) -> OrphanReport:
    now = datetime.now(UTC)
    report = OrphanReport()
    names = deps.jobs.orphan_photo_objects(now - ORPHAN_GRACE, ORPHAN_BATCH)
    report.seen += len(names)
    if names:
        deps.photos.remove(names)
        report.objects_removed = len(names)
        logger.info("orphan objects removed", extra={"count": len(names)})
    if deadline.expired():
        report.skipped += 1
        return report
    files = deps.trainer.list_job_files(FILES_LISTED)
    report.seen += len(files)
    settle = timedelta(seconds=deps.settings.claim_timeout_seconds)
    for listed in files:
        if deadline.expired():
            report.skipped += 1
            break
        try:
            if _stranded(listed, deps, now, settle):
                deps.trainer.delete_file(listed.id)
                report.zips_deleted += 1
        except DeletionRefused as refused:
            report.deletions_refused += 1
            record_deletion_refused()
            logger.error("Replicate refused deleting an orphan zip", extra={"what": refused.what})
        except Exception:
            report.errors += 1
            logger.exception("could not check an uploaded zip", extra={"file_id": listed.id})
    record_orphans_removed(report.objects_removed + report.zips_deleted)
    return report


def _stranded(listed: JobFile, deps: Deps, now: datetime, settle: timedelta) -> bool:
    try:
        job_id = UUID(listed.job_id)
    except ValueError:
        return False  # not a job id of ours: not ours to delete
    if listed.created_at is not None and now - listed.created_at < settle:
        return False  # a start may be about to record it
    job = deps.jobs.get(job_id)
    if job is None:
        return True
    if job.replicate_file_id != listed.id:
        return True
    return job.replicate_file_deleted_at is not None
