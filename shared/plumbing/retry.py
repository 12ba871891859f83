"""Our own bounded retry policy for Supabase and Replicate calls.

The SDKs either never retry (POST/PATCH, Storage) or sleep an uncapped Retry-After; here every call
gets a few attempts, exponential backoff with full jitter, Retry-After honoured but capped, and never
past the invocation's deadline. Only call this with operations that are safe to repeat.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from shared.errors import AppError
from shared.plumbing.deadline import NO_DEADLINE, Deadline

T = TypeVar("T")


RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 520})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 10.0


DEFAULT_POLICY = RetryPolicy()


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind an SDK error, when there is one."""
    if isinstance(exc, AppError):
        return None  # our own answer (e.g. a nested call that already gave up), not upstream's
    for attr in ("status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait: `Retry-After` as seconds or as an HTTP date."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # rare (an HTTP date); ~6 ms of cold start

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def httpx_errors(*names: str) -> Any:
    """The httpx exception classes `names`, for `except` and isinstance, without importing httpx:
    until a client has loaded it no exception can be one of them, so it is `()`, which matches
    nothing (cold starts that never reach the network skip ~30 ms)."""
    httpx_module = sys.modules.get("httpx")
    return tuple(getattr(httpx_module, name) for name in names) if httpx_module else ()


def is_transient(exc: BaseException) -> bool:
    """Network trouble or a status that says "try again"."""
    if isinstance(exc, httpx_errors("TransportError")):
        return True
    status = status_of(exc)
    return status in RETRYABLE_STATUS


# Answers proving the request was not carried out: the server refused it, or it never left us.
REFUSED_STATUS = frozenset({429, 503})


def was_refused(exc: BaseException) -> bool:
    """A failure after which a non-idempotent request certainly did not take effect.

    A timeout, a dropped connection or a 500/502/504 may come after the server acted on it.
    """
    if isinstance(exc, httpx_errors("ConnectError", "ConnectTimeout", "PoolTimeout")):
        return True
    return status_of(exc) in REFUSED_STATUS


def call_with_retry(
    operation: Callable[[], T],
    *,
    deadline: Deadline = NO_DEADLINE,
    policy: RetryPolicy = DEFAULT_POLICY,
    transient: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `operation`, retrying transient failures within the policy and the deadline."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation()
        except Exception as exc:
            if attempt >= policy.attempts or not transient(exc):
                raise
            delay = random.uniform(0, min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)))
            hinted = retry_after_of(exc)
            if hinted is not None:
                delay = max(delay, min(hinted, policy.max_retry_after))
            if delay >= deadline.remaining():
                raise
            sleep(delay)
