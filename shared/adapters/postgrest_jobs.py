"""`ai_training_jobs` and `training_progress_points` through PostgREST (the `JobStore` port)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.adapters.postgrest import PostgrestTable, to_db
from shared.domain.erasure import AccountErasure
from shared.domain.eta import FinishedTimeline
from shared.domain.history import ProgressPoint
from shared.domain.job import FINAL_STATUSES, Job, JobStatus
from shared.domain.phases import Phase
from shared.errors import AppError, ErrorCode, UpstreamError
from shared.ports import JobPosition

logger = Logger(child=True)


TABLE = "ai_training_jobs"
ERASURES = "account_erasures"
POINTS = "training_progress_points"
PAGE_ROWS = 1000
# The partial unique index that allows one version on its way per twin (twins migration).
IN_FLIGHT_INDEX = "ai_training_jobs_one_in_flight_per_twin"


def _job_changed() -> AppError:
    # The trigger refused a move: someone else moved the job first.
    return AppError(
        ErrorCode.JOB_STATE_CHANGED,
        "The job changed while we were updating it; fetch its status again.",
    )


def _twin_changed() -> AppError:
    # The new version's twin is another owner's, or started being deleted meanwhile.
    return AppError(
        ErrorCode.TWIN_STATE_CHANGED,
        "The twin changed while we were adding this version; fetch it again.",
    )


def _timestamp(value: datetime) -> str:
    """A time for a PostgREST filter value: UTC, microseconds, no `+` to be mangled in a URL."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_PHASE_NAMES = frozenset(phase.value for phase in Phase)


def _matches(job: Job, changes: dict[str, Any]) -> bool:
    """Whether the row already holds `changes` (compared as the model's types, not as text)."""
    expected = Job.model_validate({**job.model_dump(), **changes})
    return all(getattr(expected, k) == getattr(job, k) for k in changes if k in Job.model_fields)


class PostgrestJobStore(PostgrestTable):
    """`ai_training_jobs` through PostgREST. Each call is safe to repeat: reads; an insert with
    our own primary key (a repeat hits 23505 and reads the row back); a compare-and-set PATCH,
    whose lost answer is recovered by reading the row."""

    def _run(
        self, operation: Callable[[], Any], refused: Callable[[], AppError] | None = None
    ) -> Any:
        return super()._run(operation, refused or _job_changed)

    def insert(self, row: dict[str, Any]) -> Job:
        body = {k: to_db(v) for k, v in row.items()}
        # A plain insert is not safe to repeat, but the primary key is ours: a retry after an
        # ambiguous failure hits 23505 and we read the row back instead.
        from postgrest.exceptions import APIError

        try:
            res = self._run(
                lambda: self._client.table(TABLE).insert(body).retry(False).execute(),
                _twin_changed,
            )
        except (APIError, UpstreamError) as exc:
            # A duplicate key (an earlier attempt landed) or no answer at all: the row may be
            # ours. Only once it is not does a full twin mean the twin is busy.
            if "id" not in row or (isinstance(exc, APIError) and exc.code != "23505"):
                raise
            if (existing := self.get(UUID(str(row["id"])))) is not None:
                return existing
            if isinstance(exc, APIError) and IN_FLIGHT_INDEX in (exc.message or ""):
                raise AppError(
                    ErrorCode.TWIN_BUSY,
                    "This twin already has a version on its way; wait for it to finish (or "
                    "cancel it) before training another.",
                ) from exc
            raise
        return Job.model_validate(res.data[0])

    def get(self, job_id: UUID) -> Job | None:
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .eq("id", str(job_id))
                .limit(1)
                .retry(False)
                .execute()
            )
        )
        return Job.model_validate(res.data[0]) if res.data else None

    def update(
        self,
        job_id: UUID,
        changes: dict[str, Any],
        *,
        expect_status: JobStatus | Sequence[JobStatus] | None = None,
        expect_claim: UUID | None = None,
    ) -> Job | None:
        body = {k: to_db(v) for k, v in changes.items()}

        def query() -> Any:
            query = self._client.table(TABLE).update(body).eq("id", str(job_id))
            if isinstance(expect_status, JobStatus):
                query = query.eq("status", expect_status.value)
            elif expect_status is not None:
                query = query.in_("status", [s.value for s in expect_status])
            if expect_claim is not None:
                query = query.eq("claim_token", str(expect_claim))
            return query

        return self._conditional_patch(job_id, query, lambda row: _matches(row, changes))

    def _conditional_patch(
        self, job_id: UUID, query: Callable[[], Any], landed: Callable[[Job], bool]
    ) -> Job | None:
        """Run a PATCH whose filters make it a compare-and-set; the row it wrote, or None.

        Repeating it is safe, but an answer can be lost: a broken connection after the commit,
        or a repeat that then finds the row no longer as expected. The row itself says then
        whether our change is in (`landed`)."""
        attempts = 0

        def patch() -> Any:
            nonlocal attempts
            attempts += 1
            return query().retry(False).execute()

        try:
            res = self._run(patch)
        except UpstreamError:
            if (current := self.get(job_id)) is not None and landed(current):
                return current
            raise
        if res.data:
            return Job.model_validate(res.data[0])
        if attempts > 1 and (current := self.get(job_id)) is not None and landed(current):
            return current
        return None

    def list_active(self, statuses: Sequence[JobStatus], limit: int) -> list[Job]:
        def page(start: int, end: int) -> Any:
            return (
                self._client.table(TABLE)
                .select("*")
                .in_("status", [s.value for s in statuses])
                .order("last_checked_at", desc=False, nullsfirst=True)
                .order("created_at")
                .order("id")
                .range(start, end)
                .retry(False)
                .execute()
            )

        return self._pages(page, limit)

    def _pages(self, page: Callable[[int, int], Any], limit: int) -> list[Job]:
        """Up to `limit` rows, `PAGE_ROWS` a request: hosted Supabase answers at most 1,000 rows
        a request (the API's "max rows" setting) whatever the limit asks."""
        jobs: list[Job] = []
        while len(jobs) < limit:
            start = len(jobs)
            end = min(limit, start + PAGE_ROWS) - 1
            rows = self._run(functools.partial(page, start, end)).data
            jobs += [Job.model_validate(r) for r in rows]
            if len(rows) < end - start + 1:
                break
        return jobs

    def list_waiting(self, joined_before: datetime, limit: int) -> list[Job]:
        def page(start: int, end: int) -> Any:
            return (
                self._client.table(TABLE)
                .select("*")
                .eq("status", JobStatus.QUEUED.value)
                .lt("queued_at", _timestamp(joined_before))
                .order("queued_at")
                .order("id")
                .range(start, end)
                .retry(False)
                .execute()
            )

        return self._pages(page, limit)

    def list_owned(self, user_id: UUID, limit: int, after: JobPosition | None) -> list[Job]:
        def query() -> Any:
            query = (
                self._client.table(TABLE)
                .select("*")
                .eq("user_id", str(user_id))
                .is_("deletion_requested_at", "null")
            )
            if after is not None:
                # Keyset: older than the last job shown, or as old with a smaller id (the
                # (user_id, created_at desc) index serves it).
                at = _timestamp(after.created_at)
                query = query.or_(
                    f'created_at.lt."{at}",and(created_at.eq."{at}",id.lt.{after.job_id})'
                )
            return (
                query.order("created_at", desc=True)
                .order("id", desc=True)
                .limit(limit)
                .retry(False)
                .execute()
            )

        return [Job.model_validate(r) for r in self._run(query).data]

    def compare_and_set(
        self, job_id: UUID, column: str, expected: datetime | None, new: datetime | None
    ) -> bool:

        def query() -> Any:
            query = self._client.table(TABLE).update({column: to_db(new)}).eq("id", str(job_id))
            if expected is None:
                return query.is_(column, "null")
            return query.eq(column, to_db(expected))

        landed = self._conditional_patch(job_id, query, lambda row: getattr(row, column) == new)
        return landed is not None

    def list_unnotified(self, finished_after: datetime, limit: int) -> list[Job]:
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .in_("status", [s.value for s in FINAL_STATUSES])
                .is_("notified_at", "null")
                .is_("deletion_requested_at", "null")
                .not_.is_("replicate_training_id", "null")
                .gte("completed_at", finished_after.isoformat())
                .order("completed_at")
                .limit(limit)
                .retry(False)
                .execute()
            )
        )
        return [Job.model_validate(r) for r in res.data]

    def list_without_previews(self, completed_after: datetime, limit: int) -> list[Job]:
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .eq("status", JobStatus.COMPLETED.value)
                .is_("previews_requested_at", "null")
                .is_("deletion_requested_at", "null")
                .gte("completed_at", completed_after.isoformat())
                .order("completed_at")
                .limit(limit)
                .retry(False)
                .execute()
            )
        )
        return [Job.model_validate(r) for r in res.data]

    def list_cleanup_due(self, retention_cutoff: datetime, limit: int) -> list[Job]:
        # One query; each branch has a partial index (privacy migration).
        cutoff = _timestamp(retention_cutoff)
        final = "status.in.(completed,failed)"
        condition = ",".join(
            (
                "and(deletion_requested_at.not.is.null,deleted_at.is.null)",
                f"and({final},replicate_file_id.not.is.null,replicate_file_deleted_at.is.null,"
                "replicate_deletion_refused_at.is.null)",
                f'and({final},photos_deleted_at.is.null,completed_at.lt."{cutoff}")',
            )
        )
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .or_(condition)
                .order("completed_at", nullsfirst=True)
                .limit(limit)
                .retry(False)
                .execute()
            )
        )
        return [Job.model_validate(r) for r in res.data]

    def delete(self, job_id: UUID) -> None:
        self._run(
            lambda: self._client.table(TABLE).delete().eq("id", str(job_id)).retry(False).execute()
        )

    def list_versions(self, twin_ids: Sequence[UUID]) -> list[Job]:
        if not twin_ids:
            return []
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .in_("twin_id", [str(t) for t in twin_ids])
                .order("twin_id")
                .order("version")
                .retry(False)
                .execute()
            )
        )
        return [Job.model_validate(r) for r in res.data]

    def recent_timelines(self, limit: int) -> list[FinishedTimeline]:
        # The partial index on completed jobs by completed_at (visible progress migration).
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("phase_times,total_steps")
                .eq("status", JobStatus.COMPLETED.value)
                .order("completed_at", desc=True)
                .limit(limit)
                .retry(False)
                .execute()
            )
        )
        return [
            FinishedTimeline(
                phase_times={
                    Phase(name): datetime.fromisoformat(at)
                    for name, at in (row["phase_times"] or {}).items()
                    if name in _PHASE_NAMES
                },
                total_steps=row["total_steps"],
            )
            for row in res.data
        ]

    def add_progress_points(self, job_id: UUID, points: Sequence[ProgressPoint]) -> None:
        from postgrest.types import ReturnMethod

        rows = [
            {
                "job_id": str(job_id),
                "bucket": point.bucket,
                "step": point.step,
                "observed_at": point.observed_at.isoformat(),
                "loss": point.loss,
                "steps_per_second": point.steps_per_second,
            }
            for point in points
        ]
        self._run(
            lambda: (
                self._client.table(POINTS)
                .upsert(
                    rows,
                    on_conflict="job_id,bucket",
                    ignore_duplicates=True,
                    returning=ReturnMethod.minimal,
                )
                .retry(False)
                .execute()
            )
        )

    def progress_points(self, job_id: UUID) -> list[ProgressPoint]:
        res = self._run(
            lambda: (
                self._client.table(POINTS)
                .select("bucket,step,observed_at,loss,steps_per_second")
                .eq("job_id", str(job_id))
                .order("bucket")
                .retry(False)
                .execute()
            )
        )
        return [
            ProgressPoint(
                bucket=row["bucket"],
                step=row["step"],
                observed_at=datetime.fromisoformat(row["observed_at"]),
                loss=row["loss"],
                steps_per_second=row["steps_per_second"],
            )
            for row in res.data
        ]

    def delete_progress_points(self, job_id: UUID) -> None:
        self._run(
            lambda: (
                self._client.table(POINTS).delete().eq("job_id", str(job_id)).retry(False).execute()
            )
        )

    def orphan_photo_objects(self, older_than: datetime, limit: int) -> list[str]:
        body = {"p_older_than": older_than.isoformat(), "p_limit": limit}
        res = self._run(
            lambda: self._client.rpc("orphan_photo_objects", body).retry(False).execute()
        )
        return [row["name"] for row in res.data]

    def list_erasures_due(self, limit: int) -> list[AccountErasure]:
        res = self._run(
            lambda: (
                self._client.table(ERASURES)
                .select("*")
                .is_("finished_at", "null")
                .order("requested_at")
                .limit(limit)
                .retry(False)
                .execute()
            )
        )
        return [AccountErasure.model_validate(row) for row in res.data]

    def update_erasure(self, erasure_id: UUID, changes: dict[str, Any]) -> None:
        from postgrest.types import ReturnMethod

        body = {k: to_db(v) for k, v in changes.items()}
        self._run(
            lambda: (
                self._client.table(ERASURES)
                .update(body, returning=ReturnMethod.minimal)
                .eq("id", str(erasure_id))
                .retry(False)
                .execute()
            )
        )
