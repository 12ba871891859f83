"""Time left in this invocation: every upstream call and sweep is bounded by it."""

from __future__ import annotations

import time


class Deadline:
    """Time left in this invocation (Lambda's remaining time minus a safety margin)."""

    def __init__(self, seconds: float | None):
        self._end = None if seconds is None else time.monotonic() + seconds

    @classmethod
    def from_context(cls, context: object, margin_seconds: float = 3.0) -> Deadline:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return cls(None)
        return cls(max(0.0, remaining() / 1000.0 - margin_seconds))

    def remaining(self) -> float:
        return float("inf") if self._end is None else self._end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def within(self, seconds: float) -> Deadline:
        """The sooner of this deadline and `seconds` from now."""
        return Deadline(min(self.remaining(), seconds))


NO_DEADLINE = Deadline(None)
