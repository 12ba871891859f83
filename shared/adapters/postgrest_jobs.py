"""`ai_training_jobs` and `training_progress_points` through PostgREST (the `JobStore` port)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.domain.eta import FinishedTimeline
from shared.domain.history import ProgressPoint
from shared.domain.job import FINAL_STATUSES, Job, JobStatus
from shared.domain.phases import Phase
from shared.errors import AppError, ErrorCode, UpstreamError
from shared.plumbing.deadline import NO_DEADLINE, Deadline
from shared.plumbing.retry import RETRYABLE_STATUS, call_with_retry, httpx_errors, is_transient

logger = Logger(child=True)


TABLE = "ai_training_jobs"


POINTS = "training_progress_points"


_PHASE_NAMES = frozenset(phase.value for phase in Phase)


def to_db(value: Any) -> Any:
    """JSON-ready values for PostgREST."""
    if isinstance(value, dict):
        return {key: to_db(item) for key, item in value.items()}
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, JobStatus):
        return value.value
    return value


def _matches(job: Job, changes: dict[str, Any]) -> bool:
    """Whether the row already holds `changes` (compared as the model's types, not as text)."""
    expected = Job.model_validate({**job.model_dump(), **changes})
    return all(getattr(expected, k) == getattr(job, k) for k in changes if k in Job.model_fields)


# PostgREST's own "database unavailable" codes, and the Postgres classes worth another try:
# connection exceptions, insufficient resources, operator intervention, serialization, deadlock.
_POSTGREST_UNAVAILABLE = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})


_PG_TRANSIENT_PREFIXES = ("08", "53", "57P", "40001", "40P01")


def _db_transient(exc: BaseException) -> bool:
    """Network trouble, a 5xx/429 answer, or a database error that a retry can clear."""
    from postgrest.exceptions import APIError

    if is_transient(exc):
        return True
    if not isinstance(exc, APIError):
        return False
    code = exc.code
    if code is None:
        return True  # not PostgREST's answer: a proxy or gateway error page
    if code.isdigit():  # PostgREST sent no JSON body: the HTTP status stands in for the code
        return int(code) in RETRYABLE_STATUS
    return code in _POSTGREST_UNAVAILABLE or code.startswith(_PG_TRANSIENT_PREFIXES)


class PostgrestJobStore:
    """`ai_training_jobs` through PostgREST with the service role (RLS is bypassed by design).

    Every request goes through our bounded retry (`shared.plumbing.retry`) with the client's own retry
    switched off (it sleeps 1, 2, 4 s on GETs, blind to the invocation's deadline). Each call is
    safe to repeat: reads; an insert with our own primary key (a repeat hits 23505 and reads the
    row back); a compare-and-set PATCH, whose lost answer is recovered by reading the row.
    """

    def __init__(self, connect: Callable[[], Any], deadline: Deadline = NO_DEADLINE):
        self._connect = connect  # builds (once per container) a postgrest.SyncPostgrestClient
        self.deadline = deadline

    @functools.cached_property
    def _client(self) -> Any:
        return self._connect()

    def _run(self, operation: Any) -> Any:
        from postgrest.exceptions import APIError

        try:
            return call_with_retry(operation, deadline=self.deadline, transient=_db_transient)
        except APIError as exc:
            if exc.code in ("23514", "P0001"):
                # The trigger refused a move: someone else moved the job first.
                raise AppError(
                    ErrorCode.JOB_STATE_CHANGED,
                    "The job changed while we were updating it; fetch its status again.",
                ) from exc
            if exc.code in ("PGRST301", "42501") or _db_transient(exc):
                raise UpstreamError("The job database is not available right now.") from exc
            raise
        except httpx_errors("TransportError") as exc:
            raise UpstreamError("The job database is not reachable right now.") from exc

    def insert(self, row: dict[str, Any]) -> Job:
        body = {k: to_db(v) for k, v in row.items()}
        # A plain insert is not safe to repeat, but the primary key is ours: a retry after an
        # ambiguous failure hits 23505 and we read the row back instead.
        from postgrest.exceptions import APIError

        try:
            res = self._run(lambda: self._client.table(TABLE).insert(body).retry(False).execute())
        except (APIError, UpstreamError) as exc:
            # A duplicate key (an earlier attempt landed) or no answer at all: the row may be ours.
            if "id" not in row or (isinstance(exc, APIError) and exc.code != "23505"):
                raise
            if (existing := self.get(UUID(str(row["id"])))) is not None:
                return existing
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
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .in_("status", [s.value for s in statuses])
                .order("last_checked_at", desc=False, nullsfirst=True)
                .order("created_at")
                .limit(limit)
                .retry(False)
                .execute()
            )
        )
        return [Job.model_validate(r) for r in res.data]

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

    def list_cleanup_due(self, retention_cutoff: datetime, limit: int) -> list[Job]:
        # One query; each branch has a partial index (privacy migration).
        cutoff = retention_cutoff.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        final = "status.in.(completed,failed)"
        condition = ",".join(
            (
                "and(deletion_requested_at.not.is.null,deleted_at.is.null)",
                f"and({final},replicate_file_id.not.is.null,replicate_file_deleted_at.is.null)",
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
