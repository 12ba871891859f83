"""`make run`'s progress line: the bar, the phase a person reads, and the time left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devstack.demo import progress_bar

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_the_line_shows_the_phase_and_the_time_left_beside_the_bar() -> None:
    status = {
        "progress": 57,
        "phaseText": "Training, step 450 of 1000",
        "estimatedCompletion": (NOW + timedelta(seconds=250)).isoformat(),
    }
    assert progress_bar(status, NOW) == (
        "[#################.............]  57% Training, step 450 of 1000, about 4 min 10 s left"
    )
    status["estimatedCompletion"] = (NOW + timedelta(seconds=9.6)).isoformat()
    assert progress_bar(status, NOW).endswith("step 450 of 1000, about 10 s left")


def test_a_finished_job_shows_no_time_left() -> None:
    status = {"progress": 100, "phaseText": "Done", "estimatedCompletion": None}
    assert progress_bar(status, NOW) == "[##############################] 100% Done"
