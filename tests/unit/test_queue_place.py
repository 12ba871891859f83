"""A queued job's place in line as a person reads it: when it starts, from the trainings in
flight and how long recent ones took, and what holds it (shared.domain.queue)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.admission import AdmissionRules, QueueSnapshot
from shared.domain.queue import HeldBy, place_in_line
from tests.unit.helpers import make_settings

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
SETTINGS = make_settings()


def rules(cap: int = 2, budget: float | None = None) -> AdmissionRules:
    return AdmissionRules(
        max_in_flight=cap, per_user=1, daily_budget_usd=budget, cost_estimate_usd=1.5
    )


def snapshot(position: int, ends_in_minutes: list[float], **overrides: object) -> QueueSnapshot:
    values: dict = {
        "position": position,
        "eligible": True,
        "queued_at": NOW - timedelta(minutes=3),
        "in_flight": len(ends_in_minutes),
        "owner_in_flight": 0,
        "running_ends": [NOW + timedelta(minutes=m) for m in ends_in_minutes],
        "spent_today": 0.0,
        "held_until": None,
        "median_training_seconds": 600.0,
    }
    return QueueSnapshot(**{**values, **overrides})


@pytest.mark.parametrize(("position", "starts_in"), [(1, 5), (2, 8), (3, 15), (4, 18)])
def test_each_place_starts_when_a_slot_frees_and_the_slots_keep_turning(position, starts_in):
    # Two slots, freeing in 5 and 8 minutes; each training then takes 10 minutes.
    place = place_in_line(snapshot(position, [5, 8]), rules(), SETTINGS, NOW)
    assert place.estimated_start == NOW + timedelta(minutes=starts_in)
    assert place.estimated_completion == place.estimated_start + timedelta(minutes=10)
    assert place.held_by is HeldBy.CAP
    assert f"in about {starts_in} minutes (number {position} in line)" in place.message


def test_a_free_slot_means_a_start_in_a_moment():
    place = place_in_line(snapshot(1, [5]), rules(), SETTINGS, NOW)
    assert place.estimated_start == NOW and place.held_by is HeldBy.NOTHING
    assert place.message == "Yours starts in a moment."


def test_over_a_lowered_cap_a_slot_frees_only_when_enough_trainings_have_ended():
    place = place_in_line(snapshot(1, [1, 2, 3]), rules(cap=2), SETTINGS, NOW)
    assert place.estimated_start == NOW + timedelta(minutes=2)


def test_without_recent_trainings_the_expected_duration_stands_in():
    place = place_in_line(snapshot(3, [5, 8], median_training_seconds=None), rules(), SETTINGS, NOW)
    expected = timedelta(seconds=SETTINGS.expected_training_seconds)
    assert place.estimated_start == NOW + timedelta(minutes=5) + expected


def test_a_spent_budget_moves_the_start_to_tomorrow_with_every_slot_free():
    # $3 a day at $1.50 each: two a day; $3 spent already today.
    place = place_in_line(snapshot(1, [5], spent_today=3.0), rules(budget=3.0), SETTINGS, NOW)
    midnight = datetime(2026, 12, 8, tzinfo=UTC)
    assert place.held_by is HeldBy.BUDGET and place.estimated_start == midnight
    assert "tomorrow, around 00:00 UTC" in place.message
    third = place_in_line(snapshot(3, [5], spent_today=3.0), rules(budget=3.0), SETTINGS, NOW)
    assert third.estimated_start == midnight + timedelta(days=1)  # two a day: the day after
    assert "in a few days" in third.message
    today = place_in_line(snapshot(1, [5], spent_today=1.5), rules(budget=3.0), SETTINGS, NOW)
    assert today.held_by is HeldBy.NOTHING  # $1.50 left: one more fits today


def test_a_throttle_hold_delays_the_start_and_says_why():
    held = NOW + timedelta(seconds=90)
    place = place_in_line(snapshot(1, [5], held_until=held), rules(), SETTINGS, NOW)
    assert place.estimated_start == held and place.held_by is HeldBy.THROTTLE
    assert place.message.startswith("Replicate asked us to slow down")


def test_a_job_behind_its_owners_own_training_says_so():
    place = place_in_line(snapshot(1, [5], eligible=False), rules(), SETTINGS, NOW)
    assert place.held_by is HeldBy.OWN_TRAINING
    assert place.message.startswith("Your other twin is training first")
