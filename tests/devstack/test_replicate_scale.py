"""What benchmarks lean on: exact run lengths, fast seeding, constant-cost reads, counters of
trainings in flight."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest
import replicate

from devstack.replicate_emulator import ReplicateEmulator
from devstack.replicate_emulator.runs import TrainingRecord
from shared.domain.progress import trainer_steps
from tests.devstack.replicate_fixtures import (
    TOKEN,
    FakeClock,
    Receiver,
    client,
    clock,
    emu,
    raw,
    start_training,
    upload_zip,
)

__all__ = ["client", "clock", "emu", "raw"]  # fixtures


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_fixed_training_time_is_exact_from_started_at() -> None:
    clock = FakeClock()
    with ReplicateEmulator(api_token=TOKEN, clock=clock) as emu:
        emu.add_model("twins")
        emu.boot_seconds, emu.train_seconds = 7.25, 123.456789
        client = replicate.Client(api_token=TOKEN, base_url=emu.base_url)
        url = upload_zip(client)
        ids = []
        for k in range(40):  # creation times with every kind of fraction
            clock.now = 1_750_000_000 + k * 0.1234567
            ids.append(start_training(client, url).id)
        clock.advance(1000)
        for training_id in ids:
            body = emu.training(training_id)
            started, completed = stamp(body["started_at"]), stamp(body["completed_at"])
            assert (completed - started).total_seconds() == 123.456789
            assert (started - stamp(body["created_at"])).total_seconds() == 7.25
            assert body["metrics"]["predict_time"] == 123.456789


def test_seeded_trainings_behave_like_created_ones(
    emu: ReplicateEmulator, clock: FakeClock
) -> None:
    with Receiver() as receiver:
        ids = emu.seed_trainings(
            3, started_ago=50, train_seconds=100, webhook=receiver.url, input={"steps": 200}
        )
        # Already processing: their `start` webhooks go out on seeding (completed stays due).
        deadline = time.monotonic() + 5
        while len(emu.webhook_deliveries) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sorted(d["training_id"] for d in emu.webhook_deliveries) == sorted(ids)
        body = emu.training(ids[0])
        assert body["status"] == "processing" and body["input"]["steps"] == 200
        steps = trainer_steps(body["logs"])
        assert steps is not None and 0 < steps[0] < 200
        clock.advance(51)
        assert emu.training(ids[0])["status"] == "succeeded"
        assert emu.wait_for_webhooks(5)
    assert [d["event"] for d in emu.webhook_deliveries].count("completed") == 3
    with pytest.raises(ValueError, match="not valid"):
        emu.seed_trainings(1, input={"steps": 1})
    assert emu.stats()["trainings"] == 3


def test_one_get_costs_the_same_with_ten_thousand_trainings(
    emu: ReplicateEmulator, raw: httpx.Client, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = "http://127.0.0.1:9/hook"
    ids = emu.seed_trainings(
        10_000, train_seconds=3600, webhook=hook, webhook_events_filter=["completed"]
    )
    assert len(set(ids)) == 10_000
    clock.advance(60)
    assert raw.get(f"/v1/trainings/{ids[0]}").json()["status"] == "processing"
    calls = 0
    real = TrainingRecord.terminal

    def counting(self: TrainingRecord) -> tuple[float, str, str | None]:
        nonlocal calls
        calls += 1
        return real(self)

    monkeypatch.setattr(TrainingRecord, "terminal", counting)
    clock.advance(1)
    assert raw.get(f"/v1/trainings/{ids[-1]}").json()["status"] == "processing"
    assert calls < 10  # one training looked at, not every one
    calls = 0
    emu.state.collect_webhook_events()  # nothing due: the webhook thread touches nothing
    assert calls < 10


def test_trainings_in_flight_now_and_at_most(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock
) -> None:
    emu.train_seconds = 100
    url = upload_zip(client)
    first = [start_training(client, url).id for _ in range(3)]
    assert emu.stats()["trainings_in_flight"] == 3
    client.trainings.cancel(first[0])
    assert emu.stats()["trainings_in_flight"] == 2
    clock.advance(200)  # both end, with no request in between
    start_training(client, url)
    stats = emu.stats()
    assert (stats["trainings_in_flight"], stats["max_trainings_in_flight"]) == (1, 3)
    emu.seed_trainings(4, started_ago=10)
    assert emu.stats()["max_trainings_in_flight"] == 5
    emu.reset_stats()
    assert emu.stats()["max_trainings_in_flight"] == 5  # nothing ended yet
    clock.advance(200)
    control = f"{emu.base_url}/_emulator/stats"
    assert httpx.get(control).json()["trainings_in_flight"] == 0
    reset = httpx.delete(control).json()
    assert (reset["trainings_in_flight"], reset["max_trainings_in_flight"]) == (0, 0)
    assert reset["trainings"] == 8
