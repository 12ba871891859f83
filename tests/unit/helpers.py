"""Shared builders for unit tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from shared.errors import AppError
from shared.plumbing.settings import Settings, settings_from_env
from shared.ports import Notifier, Trainer
from shared.services.deps import Deps
from tests.fakes import (
    FakePredictor,
    FakeTrainer,
    InMemoryJobStore,
    InMemoryPhotoStore,
    InMemoryPreviewStore,
    InMemoryTrainingQueue,
    InMemoryTwinStore,
    RecordingNotifier,
)

JWT_SECRET = "unit-test-secret-unit-test-secret-0123456789"
SUPABASE_URL = "http://supabase.test"


# A complete environment for the functions (what Lambda would hold).
SETTINGS_ENV = {
    "SUPABASE_URL": SUPABASE_URL,
    "SUPABASE_SERVICE_ROLE_KEY": "service-role-key",
    "SUPABASE_JWT_SECRET": JWT_SECRET,
    "REPLICATE_API_TOKEN": "r8_test",
    "REPLICATE_TRAINER_VERSION": "a" * 64,
    "REPLICATE_DESTINATION_MODEL": "flurrty/flurrty-twins",
    "REPLICATE_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "WEBHOOK_BASE_URL": "https://status.test",
    # Room for every test's trainings: the queue's own tests set the caps they are about.
    "MAX_CONCURRENT_TRAININGS": "1000",
}


def make_settings(**overrides: Any) -> Settings:
    env = {**SETTINGS_ENV, **{k.upper(): str(v) for k, v in overrides.items()}}
    return settings_from_env(env)


def make_deps(
    *, trainer: Trainer | None = None, notifier: Notifier | None = None, **settings: Any
) -> Deps:
    """Deps over in-memory fakes (the database's rules included), `settings` overriding."""
    notices = notifier or RecordingNotifier()
    jobs = InMemoryJobStore()
    photos = InMemoryPhotoStore()
    jobs.photo_store = photos  # the bucket the database's orphan query reads (storage.objects)
    return Deps(
        settings=make_settings(**settings),
        jobs=jobs,
        twins=InMemoryTwinStore(jobs),
        photos=photos,
        trainer=trainer or FakeTrainer(),
        notifier=notices,
        queue=InMemoryTrainingQueue(jobs),
        previews=InMemoryPreviewStore(jobs),
        predictor=FakePredictor(),
    )


@contextlib.contextmanager
def raises_status(status: int) -> Iterator[pytest.ExceptionInfo[AppError]]:
    """The block must raise an `AppError` answering `status`."""
    with pytest.raises(AppError) as info:
        yield info
    assert info.value.status == status, (info.value.code, info.value.message)
