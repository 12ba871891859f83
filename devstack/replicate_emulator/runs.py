"""Trainings and predictions as records on the emulator's clock, and their JSON bodies.

A run's state is a pure function of the clock and a few stored times (created, boot, run
length, a forced end, a deadline); nothing ticks in the background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from devstack.replicate_emulator import common
from devstack.replicate_emulator import predictor as pr
from devstack.replicate_emulator import trainer as tr
from devstack.replicate_emulator.common import JSON

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
# A bad input fails about 5 ms after create (replicate-python#308); a trainer-raised error
# (bad zip) right after `train()` starts.
VALIDATION_FAIL_SECONDS = 0.005
TRAINER_FAIL_SECONDS = 0.05
CANCEL_BEFORE_START_PREDICT_TIME = 3e-06  # as recorded for a cancel right after create
DEFAULT_FAILURE = common.TRAINED_IMAGE_FAILED


@dataclass
class Moment:
    """Where a run stands at one instant."""

    status: str
    started: float | None
    end: float  # when it ends (or ended), as decided so far
    error: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class Run:
    """What trainings and predictions share: the timeline and the webhook bookkeeping."""

    id: str
    seq: int
    model: str
    version: str
    input: JSON
    webhook: str | None
    events: tuple[str, ...]
    created: float
    boot: float
    early_error: str | None = None  # Cog input validation: never starts
    forced: tuple[str, float, str | None] | None = None  # (status, at, error)
    deadline: float | None = None  # Cancel-After: canceled (or aborted) when it passes
    materialized: bool = False  # its end has been applied to the world
    # webhook bookkeeping, only touched by State.collect_webhook_events()
    sent: set[str] = field(default_factory=set)
    last_logs_at: float | None = None
    last_logs_len: int = -1
    webhook_done: bool = False

    def natural_end(self) -> tuple[float, str, str | None]:
        raise NotImplementedError

    def body(
        self, at: float, base: str, *, with_logs: bool = True, run_start: bool = False
    ) -> JSON:
        """The GET body as it stood at emulator time `at`."""
        raise NotImplementedError

    def logs_text(self, at: float, now: Moment) -> str | None:
        raise NotImplementedError

    def terminal(self) -> tuple[float, str, str | None]:
        """When the run ends, and how, given what has been decided so far."""
        end = self.natural_end()
        if self.deadline is not None and self.deadline < end[0]:
            # SPEC: past the deadline a running prediction is canceled, a waiting one aborted.
            before_start = self.deadline <= self.created + self.boot
            end = (self.deadline, "aborted" if before_start else "canceled", None)
        if self.forced is not None and self.forced[1] < end[0]:
            return self.forced[1], self.forced[0], self.forced[2]
        return end

    def started_at(self, at: float) -> float | None:
        if self.early_error is not None:
            return None
        start = self.created + self.boot
        end, status, _ = self.terminal()
        if at < start or start > end or (status == "aborted" and start >= end):
            return None
        return start

    def moment(self, at: float, *, run_start: bool = False) -> Moment:
        """The state at emulator time `at`; `run_start` gives the instant the run began, even
        when a settle made it take no time (the `start` webhook always shows `processing`)."""
        end, final_status, final_error = self.terminal()
        started = self.started_at(at)
        if run_start and started is not None:
            return Moment("processing", started, math.inf, None)
        if at >= end:
            return Moment(final_status, started, end, final_error)
        return Moment("processing" if started is not None else "starting", started, end, None)

    def ran_to_end(self, now: Moment) -> bool:
        """Finished its whole run (not stopped by a cancel or a deadline)."""
        return now.status in ("succeeded", "failed")

    def metrics(self, now: Moment) -> JSON:
        if not now.terminal:
            return {}
        ran = now.end - now.started if now.started is not None else CANCEL_BEFORE_START_PREDICT_TIME
        return {"predict_time": round(ran, 6), "total_time": round(now.end - self.created, 6)}


@dataclass
class TrainingRecord(Run):
    destination: str = ""
    train: float = 0.0
    outcome: str = "succeeded"
    error: str | None = None
    trainer_error: str | None = None  # raised by train() once it runs
    logs: tr.TrainerLogs | None = None
    new_version: str = field(default_factory=common.new_version_id)

    def natural_end(self) -> tuple[float, str, str | None]:
        start = self.created + self.boot
        if self.early_error is not None:
            return self.created + VALIDATION_FAIL_SECONDS, "failed", self.early_error
        if self.outcome == "aborted":
            return start, "aborted", None
        if self.trainer_error is not None:
            return start + min(TRAINER_FAIL_SECONDS, self.train), "failed", self.trainer_error
        if self.outcome == "canceled":
            return start + self.train / 2, "canceled", None
        if self.outcome == "failed":
            return start + self.train, "failed", self.error or DEFAULT_FAILURE
        return start + self.train, "succeeded", None

    def shrink_to(self, now: float) -> None:
        """Move the natural end to `now` (settle): the rest of the run happens instantly."""
        if self.early_error is not None:
            # Validation failures already end 5 ms after create; move create back if needed.
            self.created = min(self.created, now - VALIDATION_FAIL_SECONDS)
            return
        start = self.created + self.boot
        if now <= start or self.outcome == "aborted" or self.trainer_error is not None:
            self.boot = max(0.0, min(self.boot, now - self.created))
            self.train = 0.0
            return
        elapsed = now - start
        self.train = elapsed * 2 if self.outcome == "canceled" else elapsed

    def body(
        self, at: float, base: str, *, with_logs: bool = True, run_start: bool = False
    ) -> JSON:
        """The GET body of the training as it stood at emulator time `at`."""
        now = self.moment(at, run_start=run_start)
        body: JSON = {"id": self.id, "model": self.model, "version": self.version}
        body["input"] = self.input
        if with_logs:
            body["logs"] = "" if run_start else self.logs_text(at, now)
        output = None
        if now.status == "succeeded":
            weights = f"{base}/delivery/xezq/{self.id}/trained_model.tar"
            output = {"version": f"{self.destination}:{self.new_version}", "weights": weights}
        body.update(
            {
                "output": output,
                "data_removed": False,
                "error": now.error,
                "status": now.status,
                "source": "api",
                "created_at": common.iso(self.created),
                "started_at": common.iso(now.started) if now.started is not None else None,
                "completed_at": common.iso(now.end) if now.terminal else None,
                "urls": {
                    "get": f"{base}/v1/trainings/{self.id}",
                    "cancel": f"{base}/v1/trainings/{self.id}/cancel",
                },
                "metrics": self.metrics(now),
            }
        )
        return body

    def logs_text(self, at: float, now: Moment) -> str | None:
        if now.started is None:
            # Never ran: "" while queued, null once canceled/aborted (as recorded).
            return None if now.status in ("canceled", "aborted") else ""
        lines: list[str] = []
        if self.trainer_error is not None:
            if self.logs is not None and self.logs.facts.files:
                lines.append(f"Extracted {self.logs.facts.files} files from zip to input_images")
        elif self.logs is not None:
            ran = min(at, now.end) - now.started
            progress = 1.0 if self.ran_to_end(now) or self.train <= 0 else ran / self.train
            lines = self.logs.lines(min(max(progress, 0.0), 1.0), self.train)
        if now.status == "failed" and now.error:
            lines.append(now.error)
        return "".join(line + "\n" for line in lines)


@dataclass
class PredictionRecord(Run):
    predict: float = 0.0
    retention: float = pr.OUTPUT_RETENTION_SECONDS
    run: pr.PredictorRun | None = None  # None when the input failed validation
    hang: bool = False  # stays processing until canceled or its deadline passes

    def natural_end(self) -> tuple[float, str, str | None]:
        start = self.created + self.boot
        if self.early_error is not None or self.run is None:
            return self.created + VALIDATION_FAIL_SECONDS, "failed", self.early_error
        if self.hang:
            return math.inf, "processing", None
        if self.run.error is not None:
            return start + min(pr.PREDICT_FAIL_SECONDS, self.predict), "failed", self.run.error
        status, error = self.run.outcome()
        return start + self.predict, status, error

    def data_removed(self, now: Moment, at: float) -> bool:
        """Input, output and logs go after the retention (SPEC: an hour for API predictions;
        counting from completion is our choice, the SPEC does not say from when)."""
        return now.terminal and at >= now.end + self.retention

    def output_names(self) -> list[str]:
        return self.run.output_names() if self.run is not None else []

    def body(
        self, at: float, base: str, *, with_logs: bool = True, run_start: bool = False
    ) -> JSON:
        now = self.moment(at, run_start=run_start)
        removed = self.data_removed(now, at)
        url = f"{base}/v1/predictions/{self.id}"
        body: JSON = {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "input": {} if removed else self.input,
        }
        if with_logs:
            body["logs"] = "" if removed or run_start else self.logs_text(at, now)
        output = None
        if now.status == "succeeded" and not removed:
            output = [f"{base}/delivery/xezq/{self.id}/{name}" for name in self.output_names()]
        body.update(
            {
                "output": output,
                "data_removed": removed,
                "error": now.error,
                "status": now.status,
                "source": "api",
                "created_at": common.iso(self.created),
                "started_at": common.iso(now.started) if now.started is not None else None,
                "completed_at": common.iso(now.end) if now.terminal else None,
                # `web` is required by the SPEC; the emulator serves no web pages (404).
                "urls": {"get": url, "cancel": f"{url}/cancel", "web": f"{base}/p/{self.id}"},
                "metrics": self.metrics(now),
            }
        )
        if self.deadline is not None:
            body["deadline"] = common.iso(self.deadline)
        return body

    def created_body(self, base: str) -> JSON:
        """The create answer: the prediction as queued. A `Prefer: wait` that runs out returns
        it too (SPEC: "returned in a `starting` state")."""
        body = self.body(self.created, base)
        body.update(status="starting", started_at=None, completed_at=None, logs="", metrics={})
        body.update(output=None, error=None)
        return body

    def logs_text(self, at: float, now: Moment) -> str | None:
        if now.started is None:
            return None if now.status in ("canceled", "aborted") else ""
        lines: list[str] = []
        if self.run is not None and self.run.error is None:  # that error comes before any print
            ran = min(at, now.end) - now.started
            progress = 1.0 if self.ran_to_end(now) or self.predict <= 0 else ran / self.predict
            progress = min(max(progress, 0.0), 1.0)
            lines = self.run.lines(progress, self.predict, stalled=self.hang)
        if now.status == "failed" and now.error:
            lines.append(now.error)
        return "".join(line + "\n" for line in lines)
