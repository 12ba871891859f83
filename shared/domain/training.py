"""The domain's view of a Replicate training: the parts of the training object we use."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "aborted"})


# Replicate's clock and ours may differ; look a little further back when searching trainings.
CLOCK_SKEW = timedelta(minutes=5)


class TrainingInfo(BaseModel):
    """The parts of Replicate's training object we use."""

    # Built at first use, not at import (cold start): most paths never parse a training.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: str
    status: str
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] | None = None
    logs: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    metrics: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def model_version(self) -> str | None:
        version = (self.output or {}).get("version")
        return str(version) if version else None

    @property
    def predict_time(self) -> float | None:
        value = (self.metrics or {}).get("predict_time")
        return float(value) if isinstance(value, int | float) else None
