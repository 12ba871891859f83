"""The sweep's own metrics (SweepRuns, SweepErrors, SweepSkipped): what its alarms watch."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.domain.job import Job
from shared.errors import UpstreamError
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import metrics, record_sweep
from shared.services.sweep import sweep_all
from tests.unit.helpers import make_deps


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Flush the recorded metrics and return the one EMF line's values."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()

    def flush() -> dict[str, Any]:
        capsys.readouterr()
        metrics.flush_metrics()
        [emf] = [
            json.loads(line)
            for line in capsys.readouterr().out.splitlines()
            if line.startswith("{") and '"_aws"' in line
        ]
        return emf

    return flush


def test_a_clean_sweep_counts_one_run_and_nothing_else(emitted) -> None:
    sweep_all(make_deps(), Deadline(30))
    emf = emitted()
    assert (
        emf["SweepRuns"] == [1.0] and emf["SweepErrors"] == [0.0] and emf["SweepSkipped"] == [0.0]
    )
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "FlurrtyTwin"


def test_a_failing_task_is_a_sweep_error(emitted) -> None:
    deps = make_deps()

    def down(statuses: Any, limit: int) -> list[Job]:
        raise UpstreamError("The job database is not available right now.")

    deps.jobs.list_active = down  # type: ignore[method-assign]
    report = sweep_all(deps, Deadline(30))
    # The trainings, uploads and unstarted tasks list active jobs: three failed outright.
    assert report["trainings"] == report["uploads"] == report["unstarted"] == {"error": True}
    assert emitted()["SweepErrors"] == [3.0]


def test_job_errors_and_skips_of_every_task_add_up(emitted) -> None:
    record_sweep(
        {
            "trainings": {"seen": 9, "checked": 4, "errors": 2, "skipped": 3},
            "uploads": {"seen": 1, "expired": 0, "errors": 1, "skipped": 0},
            "cleanup": {"skipped": "deadline"},
            "notices": {"pending": 2, "sent": 1},
        }
    )
    emf = emitted()
    assert (
        emf["SweepErrors"] == [3.0] and emf["SweepSkipped"] == [4.0] and emf["SweepRuns"] == [1.0]
    )


def test_the_alarms_watch_the_metrics_the_sweep_emits(emitted) -> None:
    template = (Path(__file__).resolve().parents[2] / "template.yaml").read_text()
    record_sweep({})
    emitted_names = {m["Name"] for m in emitted()["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    watched = set()
    for alarm in re.findall(r"\n  Sweep\w+Alarm:\n(?:    .*\n|      .*\n)+", template):
        if "Namespace: FlurrtyTwin" in alarm:
            # Powertools adds the function's POWERTOOLS_SERVICE_NAME as the `service` dimension.
            assert "- Name: service\n          Value: check_training_status" in alarm
            watched.update(re.findall(r"MetricName: (\w+)", alarm))
    assert watched == emitted_names == {"SweepRuns", "SweepErrors", "SweepSkipped"}
    assert "POWERTOOLS_SERVICE_NAME: check_training_status" in template
