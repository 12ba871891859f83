"""What both PostgREST adapters share: values for the wire, which failures are worth another
try, and a table base with our bounded retry and the error translation."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.errors import AppError, UpstreamError
from shared.plumbing.deadline import NO_DEADLINE, Deadline
from shared.plumbing.retry import RETRYABLE_STATUS, call_with_retry, httpx_errors, is_transient

# The database's rules refused the write: a check constraint or trigger (23514, or a raised
# exception), or a foreign key (23503: a row still referenced, or a reference to nothing).
REFUSED = ("23514", "P0001", "23503")


def to_db(value: Any) -> Any:
    """JSON-ready values for PostgREST (into jsonb objects too, e.g. a job's phase times)."""
    if isinstance(value, dict):
        return {to_db(key): to_db(item) for key, item in value.items()}
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


# PostgREST's own "database unavailable" codes, and the Postgres classes worth another try:
# connection exceptions, insufficient resources, operator intervention, serialization, deadlock.
_POSTGREST_UNAVAILABLE = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})


_PG_TRANSIENT_PREFIXES = ("08", "53", "57P", "40001", "40P01")


def db_transient(exc: BaseException) -> bool:
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


class PostgrestTable:
    """One table through PostgREST with the service role (RLS is bypassed by design).

    Every request goes through our bounded retry (`shared.plumbing.retry`) with the client's own
    retry switched off (it sleeps 1, 2, 4 s on GETs, blind to the invocation's deadline)."""

    def __init__(self, connect: Callable[[], Any], deadline: Deadline = NO_DEADLINE):
        self._connect = connect  # builds (once per container) a postgrest.SyncPostgrestClient
        self.deadline = deadline

    @functools.cached_property
    def _client(self) -> Any:
        return self._connect()

    def _run(self, operation: Callable[[], Any], refused: Callable[[], AppError]) -> Any:
        """`operation` with retries; a refusal by the database's rules becomes `refused()`."""
        return self._call(operation, refused, db_transient)

    def _call(
        self,
        operation: Callable[[], Any],
        refused: Callable[[], AppError],
        transient: Callable[[BaseException], bool],
    ) -> Any:
        """`_run`, retrying only the failures `transient` allows (a call not safe to repeat)."""
        from postgrest.exceptions import APIError

        try:
            return call_with_retry(operation, deadline=self.deadline, transient=transient)
        except APIError as exc:
            if exc.code in REFUSED:
                raise refused() from exc
            if exc.code in ("PGRST301", "42501") or db_transient(exc):
                raise UpstreamError("The database is not available right now.") from exc
            raise
        except httpx_errors("TransportError") as exc:
            raise UpstreamError("The database is not reachable right now.") from exc
