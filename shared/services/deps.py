"""The one dependency container every use case takes: the settings and the ports.

`shared.bootstrap.deps()` builds it for one invocation, every adapter bound to that invocation's
deadline; `tests/unit/conftest.py` builds it from in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.plumbing.settings import Settings
from shared.ports import (
    JobStore,
    Notifier,
    PhotoStore,
    Predictor,
    PreviewStore,
    Trainer,
    TrainingQueue,
    TwinStore,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    settings: Settings
    jobs: JobStore
    twins: TwinStore
    photos: PhotoStore
    trainer: Trainer
    # Built at the first notice by the composition root, like every adapter: with e-mail on, the
    # notifier loads boto3 and builds an SES client, which most requests never need.
    notifier: Notifier
    queue: TrainingQueue
    previews: PreviewStore
    predictor: Predictor
    # The queue's clock (today's budget, admission times): the system's, or a test's.
    clock: Callable[[], datetime] = field(default=utc_now)
