"""`ai_training_jobs` through PostgREST (the `JobStore` port)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.domain.job import FINAL_STATUSES, Job, JobStatus
from shared.errors import AppError, ErrorCode, UpstreamError
from shared.plumbing.deadline import NO_DEADLINE, Deadline
from shared.plumbing.retry import RETRYABLE_STATUS, call_with_retry, httpx_errors, is_transient
from shared.ports import JobPosition

logger = Logger(child=True)


TABLE = "ai_training_jobs"


def to_db(value: Any) -> Any:
    """JSON-ready values for PostgREST."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, JobStatus):
        return value.value
    return value


def _timestamp(value: datetime) -> str:
    """A time for a PostgREST filter value: UTC, microseconds, no `+` to be mangled in a URL."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

    def list_cleanup_due(self, retention_cutoff: datetime, limit: int) -> list[Job]:
        # One query; each branch has a partial index (privacy migration).
        cutoff = _timestamp(retention_cutoff)
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
