"""The `ai_training_jobs` table behind a small interface: PostgREST in production, fakes in tests.

Every write that moves a job is a compare-and-set (`expect_status`, `expect_claim`) so that two
callers racing on one job cannot both win; the database trigger enforces the same moves again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import httpx

from shared.errors import Conflict, UpstreamError
from shared.models import Job, JobStatus
from shared.retry import NO_DEADLINE, Deadline, call_with_retry, is_transient

TABLE = "ai_training_jobs"


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

    def delete(self, job_id: UUID) -> None: ...


def to_db(value: Any) -> Any:
    """JSON-ready values for PostgREST."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, JobStatus):
        return value.value
    return value


def _matches(job: Job, changes: dict[str, Any]) -> bool:
    row = job.model_dump(mode="json")
    return all(
        row.get(k) == to_db(v) or str(row.get(k)) == str(to_db(v)) for k, v in changes.items()
    )


class PostgrestJobStore:
    """`ai_training_jobs` through PostgREST with the service role (RLS is bypassed by design)."""

    def __init__(self, client: Any, deadline: Deadline = NO_DEADLINE):
        self._client = client  # postgrest.SyncPostgrestClient
        self.deadline = deadline

    def _run(self, operation: Any) -> Any:
        from postgrest.exceptions import APIError

        try:
            return call_with_retry(operation, deadline=self.deadline)
        except APIError as exc:
            if exc.code in ("23514", "P0001"):
                # The trigger refused a move: someone else moved the job first.
                raise Conflict(
                    "The job changed while we were updating it; fetch its status again.",
                    code="job_state_changed",
                ) from exc
            if exc.code in ("PGRST301", "42501") or not exc.code or exc.code.startswith("5"):
                raise UpstreamError("The job database is not available right now.") from exc
            raise
        except httpx.TransportError as exc:
            raise UpstreamError("The job database is not reachable right now.") from exc

    def insert(self, row: dict[str, Any]) -> Job:
        body = {k: to_db(v) for k, v in row.items()}
        # A plain insert is not safe to repeat, but the primary key is ours: a retry after an
        # ambiguous failure hits 23505 and we read the row back instead.
        from postgrest.exceptions import APIError

        try:
            res = self._run(lambda: self._client.table(TABLE).insert(body).execute())
        except APIError as exc:
            if exc.code == "23505" and "id" in row:
                existing = self.get(UUID(str(row["id"])))
                if existing is not None:
                    return existing
            raise
        return Job.model_validate(res.data[0])

    def get(self, job_id: UUID) -> Job | None:
        res = self._run(
            lambda: self._client.table(TABLE).select("*").eq("id", str(job_id)).limit(1).execute()
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

        def patch() -> Any:
            query = self._client.table(TABLE).update(body).eq("id", str(job_id))
            if isinstance(expect_status, JobStatus):
                query = query.eq("status", expect_status.value)
            elif expect_status is not None:
                query = query.in_("status", [s.value for s in expect_status])
            if expect_claim is not None:
                query = query.eq("claim_token", str(expect_claim))
            return query.execute()

        try:
            res = self._run(patch)
        except UpstreamError as exc:
            # PATCH may have committed before the connection broke: read back before giving up.
            if exc.__cause__ is None or not is_transient(exc.__cause__):
                raise
            current = self.get(job_id)
            if current is not None and _matches(current, changes):
                return current
            raise
        return Job.model_validate(res.data[0]) if res.data else None

    def list_active(self, statuses: Sequence[JobStatus], limit: int) -> list[Job]:
        res = self._run(
            lambda: (
                self._client.table(TABLE)
                .select("*")
                .in_("status", [s.value for s in statuses])
                .order("last_checked_at", desc=False, nullsfirst=True)
                .order("created_at")
                .limit(limit)
                .execute()
            )
        )
        return [Job.model_validate(r) for r in res.data]

    def delete(self, job_id: UUID) -> None:
        self._run(lambda: self._client.table(TABLE).delete().eq("id", str(job_id)).execute())


def owned_job(jobs: JobStore, job_id: UUID, user_id: UUID) -> Job:
    """The caller's job; someone else's job is reported exactly like a missing one."""
    job = jobs.get(job_id)
    if job is None or job.user_id != user_id:
        from shared.errors import NotFound

        raise NotFound("No training job with this id belongs to you.", code="job_not_found")
    return job
