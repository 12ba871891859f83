"""The owner's job list: newest first, a page at a time, with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from shared.contract.jobs import JobList, JobSummary
from shared.contract.routes import LIST_JOBS_LIMIT_DEFAULT, LIST_JOBS_LIMIT_MAX
from shared.errors import AppError, ErrorCode
from shared.plumbing import json_input
from shared.ports import JobPosition
from shared.services.deps import Deps


def list_jobs(user_id: UUID, limit: str | None, cursor: str | None, deps: Deps) -> JobList:
    """One page of the user's jobs (as the query string gave `limit` and `cursor`)."""
    size = parse_limit(limit)
    # One more than asked: whether it exists says if there is a next page.
    jobs = deps.jobs.list_owned(user_id, size + 1, decode_cursor(cursor) if cursor else None)
    page = jobs[:size]
    more = len(jobs) > size
    return JobList(
        jobs=[JobSummary.of(job) for job in page],
        next_cursor=encode_cursor(JobPosition(page[-1].created_at, page[-1].id)) if more else None,
    )


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return LIST_JOBS_LIMIT_DEFAULT
    if not raw.isdigit() or not 1 <= int(raw) <= LIST_JOBS_LIMIT_MAX:
        raise AppError(
            ErrorCode.INVALID_FIELD,
            f"limit must be a whole number from 1 to {LIST_JOBS_LIMIT_MAX} (it was {raw[:20]!r}).",
        )
    return int(raw)


def encode_cursor(position: JobPosition) -> str:
    text = json.dumps([position.created_at.isoformat(), str(position.job_id)])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> JobPosition:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, job_id = json_input.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        position = JobPosition(datetime.fromisoformat(created_at), UUID(job_id))
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
        raise AppError(
            ErrorCode.INVALID_CURSOR,
            "cursor is not one this API gave out: send the previous page's nextCursor unchanged.",
        ) from None
    if position.created_at.tzinfo is None:
        raise AppError(ErrorCode.INVALID_CURSOR, "cursor is not one this API gave out.")
    return position
