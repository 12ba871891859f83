"""The training queue through PostgREST (the `TrainingQueue` port): the database functions of the
training-queue migration, called as RPCs with the service role."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from shared.adapters.postgrest import PostgrestTable, db_transient, to_db
from shared.domain.admission import AdmissionRules, Admitted, QueueSnapshot, QueueStats
from shared.errors import AppError, ErrorCode
from shared.plumbing.retry import was_refused

# PostgREST could not reach the database: the call never ran.
_NOT_RUN = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})


def _refused() -> AppError:
    return AppError(ErrorCode.JOB_STATE_CHANGED, "The queue refused the change; try again.")


def _never_ran(exc: BaseException) -> bool:
    from postgrest.exceptions import APIError

    return was_refused(exc) or (isinstance(exc, APIError) and exc.code in _NOT_RUN)


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class PostgrestTrainingQueue(PostgrestTable):
    def _rpc(self, name: str, params: dict[str, Any], transient: Any = db_transient) -> Any:
        body = {key: to_db(value) for key, value in params.items()}
        return self._call(
            lambda: self._client.rpc(name, body).retry(False).execute().data, _refused, transient
        )

    def admit(self, rules: AdmissionRules, limit: int, now: datetime) -> list[Admitted]:
        body = {
            "p_max": rules.max_in_flight,
            "p_per_user": rules.per_user,
            "p_budget": rules.daily_budget_usd,
            "p_estimate": rules.cost_estimate_usd,
            "p_limit": limit,
            "p_now": now,
        }
        # Not repeated after an ambiguous failure: the jobs it may have admitted hold claims we
        # never saw, and the sweep resumes them as stalled starts once those claims time out.
        rows = self._rpc("admit_trainings", body, _never_ran)
        return [Admitted(UUID(r["job_id"]), UUID(r["claim_token"])) for r in rows]

    def hold(self, until: datetime, reason: str) -> datetime:
        held = self._rpc("hold_training_admissions", {"p_until": until, "p_reason": reason})
        return datetime.fromisoformat(held)

    def place(self, job_id: UUID, per_user: int, now: datetime) -> QueueSnapshot | None:
        raw = self._rpc(
            "training_queue_place", {"p_job": job_id, "p_per_user": per_user, "p_now": now}
        )
        if not raw:
            return None
        median = raw["median_training_seconds"]
        return QueueSnapshot(
            position=int(raw["position"]),
            eligible=bool(raw["eligible"]),
            queued_at=datetime.fromisoformat(raw["queued_at"]),
            in_flight=int(raw["in_flight"]),
            owner_in_flight=int(raw["owner_in_flight"]),
            running_ends=[datetime.fromisoformat(t) for t in raw["running_ends"]],
            spent_today=float(raw["spent_today"]),
            held_until=_time(raw["held_until"]),
            median_training_seconds=None if median is None else float(median),
        )

    def refresh_positions(self, per_user: int, now: datetime) -> int:
        written = self._rpc("refresh_queue_positions", {"p_per_user": per_user, "p_now": now})
        return int(written)

    def stats(self, now: datetime) -> QueueStats:
        raw = self._rpc("training_queue_stats", {"p_now": now})
        return QueueStats(
            depth=int(raw["depth"]),
            oldest_queued_at=_time(raw["oldest_queued_at"]),
            in_flight=int(raw["in_flight"]),
            spent_today=float(raw["spent_today"]),
        )
