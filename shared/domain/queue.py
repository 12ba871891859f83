"""A queued job's place in line, in words: what keeps it waiting and when it is expected to start,
from the trainings in flight and how long recent trainings took (what admission is bound by:
`shared.domain.admission`)."""

from __future__ import annotations

import enum
import heapq
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # read here only: a status answer needs the place, not admission
    from shared.domain.admission import AdmissionRules, QueueSnapshot
    from shared.plumbing.settings import Settings


class HeldBy(enum.StrEnum):
    """What keeps a queued job waiting (`queue.heldBy` in the status answer)."""

    CAP = "cap"  # every training slot is taken
    BUDGET = "budget"  # today's training budget is spent
    THROTTLE = "throttle"  # Replicate asked us to slow down
    OWN_TRAINING = "own_training"  # the owner's other training(s) go first
    NOTHING = "nothing"  # it starts at the next admission (seconds)


@dataclass(frozen=True)
class QueuePlace:
    position: int
    held_by: HeldBy
    estimated_start: datetime
    estimated_completion: datetime
    message: str


def _slot_free_times(snapshot: QueueSnapshot, rules: AdmissionRules, now: datetime) -> list[float]:
    """Seconds from now at which each of the `max_in_flight` slots is next free."""
    ends = sorted(max(0.0, (end - now).total_seconds()) for end in snapshot.running_ends)
    # Trainings in flight without an estimate yet end last of all, as far as we know.
    ends += [max(ends, default=0.0)] * (snapshot.in_flight - len(ends))
    if len(ends) >= rules.max_in_flight:
        # Over the cap (it was lowered): a slot frees only when enough of them have ended.
        return ends[len(ends) - rules.max_in_flight :]
    return [0.0] * (rules.max_in_flight - len(ends)) + ends


def _nth_start(slots: list[float], n: int, duration: float) -> float:
    """When the n-th job in line starts (seconds from now) if each training takes `duration`."""
    heap = list(slots)
    heapq.heapify(heap)
    start = 0.0
    for _ in range(n):
        start = heapq.heappop(heap)
        heapq.heappush(heap, start + duration)
    return start


def _next_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def place_in_line(
    snapshot: QueueSnapshot, rules: AdmissionRules, settings: Settings, now: datetime
) -> QueuePlace:
    """Where a queued job stands and when it is expected to start and finish, with a sentence."""
    duration = snapshot.median_training_seconds or settings.expected_training_seconds
    position = snapshot.position
    slots = _slot_free_times(snapshot, rules, now)
    start = now + timedelta(seconds=_nth_start(slots, position, duration))
    held = HeldBy.CAP if start > now else HeldBy.NOTHING  # no slot free for it now
    if not snapshot.eligible:
        held = HeldBy.OWN_TRAINING
    if rules.daily_budget_usd is not None:
        per_day = math.floor(rules.daily_budget_usd / rules.cost_estimate_usd)
        left_today = math.floor(
            max(0.0, rules.daily_budget_usd - snapshot.spent_today) / rules.cost_estimate_usd
        )
        if position > left_today:
            # Not today: tomorrow's budget (or a later day's) with every slot free at midnight.
            later = position - left_today
            days, within = divmod(later - 1, max(per_day, 1))
            midnight = _next_midnight(now) + timedelta(days=days)
            empty = [0.0] * rules.max_in_flight
            start = midnight + timedelta(seconds=_nth_start(empty, within + 1, duration))
            held = HeldBy.BUDGET
    if snapshot.held_until is not None and snapshot.held_until > start:
        start = snapshot.held_until
        if held in (HeldBy.NOTHING, HeldBy.CAP):
            held = HeldBy.THROTTLE
    completion = start + timedelta(seconds=duration)
    return QueuePlace(position, held, start, completion, _message(held, position, start, now))


def _in_about(start: datetime, now: datetime) -> str:
    minutes = (start - now).total_seconds() / 60
    if minutes < 1.5:
        return "in a minute or so"
    if minutes < 90:
        return f"in about {round(minutes)} minutes"
    return f"in about {round(minutes / 60)} hours"


def _message(held: HeldBy, position: int, start: datetime, now: datetime) -> str:
    if held is HeldBy.BUDGET:
        when = start.astimezone(UTC).strftime("%H:%M UTC")
        day = "tomorrow" if start < _next_midnight(now) + timedelta(days=1) else "in a few days"
        return (
            f"Today's trainings are all booked; yours is number {position} in line and starts "
            f"{day}, around {when}."
        )
    if held is HeldBy.THROTTLE:
        return (
            f"Replicate asked us to slow down for a moment; yours starts {_in_about(start, now)}."
        )
    if held is HeldBy.OWN_TRAINING:
        return f"Your other twin is training first; this one starts {_in_about(start, now)}."
    if held is HeldBy.CAP:
        return (
            "Lots of people are creating their twins right now; "
            f"yours starts {_in_about(start, now)} (number {position} in line)."
        )
    return "Yours starts in a moment."
