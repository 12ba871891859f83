"""In-memory stand-ins for the Supabase and Replicate interfaces, for fast unit tests.

The job and twin stores enforce the same rules as the database's constraints and triggers
(status moves, progress, version numbers, one version on its way per twin, the active version),
so logic that Postgres would refuse is refused here too; tests/sql/test_job_store_contract.py
runs the same cases against both.
"""

from __future__ import annotations

import math
import statistics
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import IO, Any
from uuid import UUID

from shared.adapters.postgrest import to_db
from shared.domain.admission import AdmissionRules, Admitted, QueueSnapshot, QueueStats
from shared.domain.erasure import AccountErasure
from shared.domain.eta import FinishedTimeline
from shared.domain.history import ProgressPoint
from shared.domain.job import ACTIVE_STATUSES, ALLOWED_MOVES, Job, JobStatus
from shared.domain.notice import CompletionNotice
from shared.domain.phases import TRAINING_PHASES, Phase, later
from shared.domain.previews import PredictionInfo, Preview, PreviewKind, PreviewStatus
from shared.domain.training import TrainingInfo
from shared.domain.twin import Twin, can_be_active
from shared.errors import AppError, ErrorCode
from shared.ports import (
    DeletionRefused,
    JobFile,
    JobPosition,
    ObjectMissing,
    SignedUpload,
    UploadedFile,
)


def _track_phase(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """Like the trigger `ai_training_jobs_track_phase`: the phase follows the status and never
    goes back within a training; `step` never goes down; a phase's entry time stays."""
    status, phase = JobStatus(new["status"]), Phase(new["phase"])
    if status in (JobStatus.UPLOADING, JobStatus.PENDING):
        phase = Phase.UPLOADING
    elif status is JobStatus.QUEUED:
        phase = Phase.WAITING
    elif status is JobStatus.COMPLETED:
        phase = Phase.DONE
    elif status is JobStatus.FAILED:
        phase = Phase.CANCELED if phase is Phase.CANCELED else Phase.FAILED
    elif phase not in TRAINING_PHASES:
        phase = Phase.PREPARING_GPU
    if old is not None:
        if status is JobStatus.TRAINING and old["status"] == JobStatus.TRAINING:
            phase = later(Phase(old["phase"]), phase)
        steps = [s for s in (old["step"], new["step"]) if s is not None]
        new["step"] = max(steps) if steps else None
        new["phase_times"] = {**new["phase_times"], **old["phase_times"]}
    new["phase"] = phase


class InMemoryJobStore:
    def __init__(self) -> None:
        self.rows: dict[UUID, dict[str, Any]] = {}
        self.lock = threading.RLock()  # shared with the twin store, which calls back in
        self.history: list[tuple[UUID, str, int]] = []
        self.twins: InMemoryTwinStore | None = None  # set by InMemoryTwinStore(jobs)
        self.points: dict[UUID, dict[int, ProgressPoint]] = {}
        self.erasures: dict[UUID, dict[str, Any]] = {}
        self.photo_store: InMemoryPhotoStore | None = None  # storage.objects, for the orphan query
        self.preview_store: InMemoryPreviewStore | None = None  # set by InMemoryPreviewStore(jobs)

    def orphan_photo_objects(self, older_than: datetime, limit: int) -> list[str]:
        """Like the database's `orphan_photo_objects`: bucket objects with no job row for their
        folder (or whose job's photos were removed), created before `older_than`."""
        if self.photo_store is None:
            return []
        with self.lock:
            live = {
                (str(r["user_id"]), str(r["id"]))
                for r in self.rows.values()
                if r["photos_deleted_at"] is None
            }
        pictures = self.preview_store.stored_paths() if self.preview_store else set()
        store = self.photo_store
        long_ago = datetime.min.replace(tzinfo=UTC)  # put straight into `objects` by a test

        def created(name: str) -> datetime:
            return store.created.get(name, long_ago)

        names = [
            name
            for name in sorted(store.objects, key=created)
            if created(name) < older_than
            and tuple(name.split("/")[:2]) not in live
            and name not in pictures
        ]
        return names[:limit]

    def delete_account(self, user_id: UUID) -> None:
        """What deleting the auth.users row does: the trigger records the erasure, then the
        cascade takes the person's jobs (with their points) and twins."""
        with self.lock:
            mine = sorted(
                (r for r in self.rows.values() if r["user_id"] == user_id),
                key=lambda r: r["created_at"],
            )
            entry: dict[str, Any] = {
                "id": uuid.uuid4(),
                "user_id": user_id,
                "storage_prefix": f"{user_id}/",
                "jobs": [
                    {
                        "job_id": r["id"],
                        "training_id": r["replicate_training_id"],
                        "file_id": None
                        if r["replicate_file_deleted_at"]
                        else r["replicate_file_id"],
                        "file_url": None
                        if r["replicate_file_deleted_at"]
                        else r["replicate_file_url"],
                        "model_version": None
                        if r["model_version_deleted_at"]
                        else r["replicate_model_version"],
                        "claimed_at": r["claimed_at"],
                        "last_checked_at": r["last_checked_at"],
                        "status": str(r["status"]),
                    }
                    for r in mine
                ],
                "twin_ids": [],
                "uploads_open_until": max(
                    (r["upload_expires_at"] for r in mine if r["upload_expires_at"]), default=None
                ),
                "requested_at": datetime.now(UTC),
                "attempts": 0,
                "last_attempt_at": None,
                "finished_at": None,
                "summary": None,
            }
            if self.twins is not None:
                entry["twin_ids"] = [
                    t["id"] for t in self.twins.rows.values() if t["user_id"] == user_id
                ]
                for twin_id in entry["twin_ids"]:
                    self.twins.rows.pop(twin_id, None)
            self.erasures[entry["id"]] = entry
            for r in mine:
                self.delete(r["id"])

    def list_erasures_due(self, limit: int) -> list[AccountErasure]:
        with self.lock:
            due = [e for e in self.erasures.values() if e["finished_at"] is None]
            due.sort(key=lambda e: e["requested_at"])
            return [AccountErasure.model_validate(e) for e in due[:limit]]

    def update_erasure(self, erasure_id: UUID, changes: dict[str, Any]) -> None:
        with self.lock:
            row = self.erasures.get(erasure_id)
            if row is None:
                return
            merged = {**row, **changes}
            if merged["finished_at"] is not None:
                # account_erasures_anonymous_when_finished
                assert merged["user_id"] is None and merged["storage_prefix"] is None
                assert merged["jobs"] == [] and merged["twin_ids"] == []
            self.erasures[erasure_id] = merged

    def insert(self, row: dict[str, Any]) -> Job:
        with self.lock:
            now = datetime.now(UTC)
            data = {"created_at": now, "updated_at": now, "progress_changed_at": now, **row}
            assert JobStatus(data["status"]) in (JobStatus.PENDING, JobStatus.UPLOADING)
            if (existing := self.rows.get(data["id"])) is not None:
                return Job.model_validate(existing)  # our own key again: the row it made
            if self.twins is not None:
                data.update(self.twins.take_version(data))
            job = Job.model_validate(data)
            row = job.model_dump()
            _track_phase(None, row)
            self.rows[job.id] = row
            return Job.model_validate(row)

    def get(self, job_id: UUID) -> Job | None:
        with self.lock:
            row = self.rows.get(job_id)
            return Job.model_validate(row) if row else None

    def update(
        self,
        job_id: UUID,
        changes: dict[str, Any],
        *,
        expect_status: JobStatus | Sequence[JobStatus] | None = None,
        expect_claim: UUID | None = None,
    ) -> Job | None:
        with self.lock:
            row = self.rows.get(job_id)
            if row is None:
                return None
            if isinstance(expect_status, JobStatus) and row["status"] != expect_status:
                return None
            if (
                isinstance(expect_status, Sequence)
                and not isinstance(expect_status, JobStatus)
                and row["status"] not in expect_status
            ):
                return None
            if expect_claim is not None and row["claim_token"] != expect_claim:
                return None
            new = {**row, **{k: v for k, v in changes.items()}}
            if any(new[k] != row[k] for k in ("twin_id", "version", "user_id")):
                raise AppError(ErrorCode.JOB_STATE_CHANGED, "a job's twin and owner never change")
            if (
                new.get("deletion_requested_at") is not None
                and row.get("deletion_requested_at") is None
                and self.twins is not None
                and self.twins.active_twin_of(job_id) is not None
            ):
                raise AppError(ErrorCode.JOB_STATE_CHANGED, "the active version is not deleted")
            old_status, new_status = JobStatus(row["status"]), JobStatus(new["status"])
            back_in_line = (old_status, new_status) == (JobStatus.TRAINING, JobStatus.QUEUED)
            if (old_status != new_status and (old_status, new_status) not in ALLOWED_MOVES) or (
                back_in_line and (row["replicate_training_id"] or new["replicate_training_id"])
            ):
                raise AppError(
                    ErrorCode.JOB_STATE_CHANGED,
                    f"status move {old_status} -> {new_status} is not allowed",
                )
            if new_status is JobStatus.QUEUED and new.get("queued_at") is None:
                raise AppError(ErrorCode.JOB_STATE_CHANGED, "a queued job needs its queued_at")
            if new_status is not JobStatus.QUEUED:
                new["queue_position"] = None  # like the trigger: out of line, no place
            if new["progress"] < row["progress"]:
                raise AppError(ErrorCode.JOB_STATE_CHANGED, "progress may not decrease")
            if new.get("failure_code") is not None and new_status is not JobStatus.FAILED:
                raise AppError(ErrorCode.JOB_STATE_CHANGED, "a failure code on a job not failed")
            if new_status.is_final and not old_status.is_final:
                new["completed_at"] = new.get("completed_at") or datetime.now(UTC)
            # Like the database trigger: the no-progress clock moves only when the job does.
            moved = old_status != new_status or any(
                new[k] != row[k] for k in ("progress", "last_replicate_status")
            )
            new["progress_changed_at"] = datetime.now(UTC) if moved else row["progress_changed_at"]
            new["updated_at"] = datetime.now(UTC)
            _track_phase(row, new)
            job = Job.model_validate(
                {k: to_db(v) if isinstance(v, JobStatus) else v for k, v in new.items()}
            )
            self.rows[job_id] = job.model_dump()
            self.history.append((job_id, job.status.value, job.progress))
            completed_now = new_status is JobStatus.COMPLETED and old_status is not new_status
            if self.twins is not None and completed_now:
                self.twins.activate_completed(job)
            return job

    def list_active(self, statuses: Sequence[JobStatus], limit: int) -> list[Job]:
        with self.lock:
            jobs = [Job.model_validate(r) for r in self.rows.values() if r["status"] in statuses]
        epoch = datetime.min.replace(tzinfo=UTC)
        jobs.sort(key=lambda j: (j.last_checked_at or epoch, j.created_at))
        return jobs[:limit]

    def list_waiting(self, joined_before: datetime, limit: int) -> list[Job]:
        with self.lock:
            jobs = [
                Job.model_validate(r)
                for r in self.rows.values()
                if r["status"] == JobStatus.QUEUED and r["queued_at"] < joined_before
            ]
        jobs.sort(key=lambda j: (j.queued_at, j.id))
        return jobs[:limit]

    def list_owned(self, user_id: UUID, limit: int, after: JobPosition | None) -> list[Job]:
        with self.lock:
            jobs = [
                Job.model_validate(r)
                for r in self.rows.values()
                if r["user_id"] == user_id and r["deletion_requested_at"] is None
            ]
        jobs.sort(key=lambda j: (j.created_at, j.id), reverse=True)
        if after is not None:
            jobs = [j for j in jobs if (j.created_at, j.id) < (after.created_at, after.job_id)]
        return jobs[:limit]

    def compare_and_set(
        self, job_id: UUID, column: str, expected: datetime | None, new: datetime | None
    ) -> bool:
        with self.lock:
            row = self.rows.get(job_id)
            if row is None or row[column] != expected:
                return False
            row[column] = new
            row["updated_at"] = datetime.now(UTC)
            return True

    def list_cleanup_due(self, retention_cutoff: datetime, limit: int) -> list[Job]:
        with self.lock:
            jobs = [Job.model_validate(r) for r in self.rows.values()]

        def owes(job: Job) -> bool:
            if job.deletion_requested_at is not None:
                return job.deleted_at is None
            if not job.status.is_final:
                return False
            zip_kept = (
                job.replicate_file_id is not None
                and job.replicate_file_deleted_at is None
                and job.replicate_deletion_refused_at is None
            )
            ended = job.completed_at or retention_cutoff
            return zip_kept or (job.photos_deleted_at is None and ended < retention_cutoff)

        return [job for job in jobs if owes(job)][:limit]

    def list_without_previews(self, completed_after: datetime, limit: int) -> list[Job]:
        with self.lock:
            jobs = [Job.model_validate(r) for r in self.rows.values()]
        due = [
            j
            for j in jobs
            if j.status is JobStatus.COMPLETED
            and j.previews_requested_at is None
            and j.deletion_requested_at is None
            and j.completed_at is not None
            and j.completed_at >= completed_after
        ]
        due.sort(key=lambda j: j.completed_at or completed_after)
        return due[:limit]

    def list_unnotified(self, finished_after: datetime, limit: int) -> list[Job]:
        with self.lock:
            jobs = [Job.model_validate(r) for r in self.rows.values()]
        pending = [
            j
            for j in jobs
            if j.status.is_final
            and j.notified_at is None
            and j.deletion_requested_at is None
            and j.replicate_training_id
            and j.completed_at is not None
            and j.completed_at >= finished_after
        ]
        pending.sort(key=lambda j: j.completed_at or finished_after)
        return pending[:limit]

    def delete(self, job_id: UUID) -> None:
        with self.lock:
            self.rows.pop(job_id, None)
            self.points.pop(job_id, None)  # on delete cascade
            if self.preview_store is not None:
                self.preview_store.cascade({job_id})

    def recent_timelines(self, limit: int) -> list[FinishedTimeline]:
        with self.lock:
            done = [Job.model_validate(r) for r in self.rows.values()]
        done = [j for j in done if j.status is JobStatus.COMPLETED and j.completed_at]
        done.sort(key=lambda j: j.completed_at or j.created_at, reverse=True)
        return [FinishedTimeline(j.phase_times, j.total_steps) for j in done[:limit]]

    def add_progress_points(self, job_id: UUID, points: Sequence[ProgressPoint]) -> None:
        with self.lock:
            row = self.rows.get(job_id)
            if row is None or row["status"] != JobStatus.TRAINING:
                return  # like the trigger: points only while the job trains
            kept = self.points.setdefault(job_id, {})
            for point in points:
                kept.setdefault(point.bucket, point)

    def progress_points(self, job_id: UUID) -> list[ProgressPoint]:
        with self.lock:
            return [p for _, p in sorted(self.points.get(job_id, {}).items())]

    def delete_progress_points(self, job_id: UUID) -> None:
        with self.lock:
            self.points.pop(job_id, None)

    def list_versions(self, twin_ids: Sequence[UUID]) -> list[Job]:
        with self.lock:
            jobs = [Job.model_validate(r) for r in self.rows.values() if r["twin_id"] in twin_ids]
        return sorted(jobs, key=lambda j: (str(j.twin_id), j.version or 0))


class InMemoryTwinStore:
    """`twins` as a dict; with its job store it keeps the database's rules (twins migration)."""

    def __init__(self, jobs: InMemoryJobStore) -> None:
        self.rows: dict[UUID, dict[str, Any]] = {}
        self.jobs = jobs
        self.lock = jobs.lock
        jobs.twins = self

    def insert(self, row: dict[str, Any]) -> Twin:
        with self.lock:
            now = datetime.now(UTC)
            data = {"created_at": now, "updated_at": now, "next_version": 1, **row}
            data.setdefault("id", uuid.uuid4())
            if (existing := self.rows.get(data["id"])) is not None:
                return Twin.model_validate(existing)
            twin = Twin.model_validate(data)
            self._check(twin, None)
            self.rows[twin.id] = twin.model_dump()
            return twin

    def get(self, twin_id: UUID) -> Twin | None:
        with self.lock:
            row = self.rows.get(twin_id)
            return Twin.model_validate(row) if row else None

    def list_owned(self, user_id: UUID) -> list[Twin]:
        with self.lock:
            twins = [Twin.model_validate(r) for r in self.rows.values()]
        owned = [t for t in twins if t.user_id == user_id and t.deletion_requested_at is None]
        return sorted(owned, key=lambda t: (-t.created_at.timestamp(), str(t.id)))

    def update(self, twin_id: UUID, changes: dict[str, Any]) -> Twin | None:
        with self.lock:
            row = self.rows.get(twin_id)
            if row is None:
                return None
            before = Twin.model_validate(row)
            new = {**row, **changes, "updated_at": datetime.now(UTC)}
            # A deletion is never withdrawn; the first request time stands.
            for stamp in ("deletion_requested_at", "deleted_at"):
                if row[stamp] is not None and new[stamp] is None:
                    raise AppError(ErrorCode.TWIN_STATE_CHANGED, "a deletion is not withdrawn")
                new[stamp] = row[stamp] or new[stamp]
            twin = Twin.model_validate(new)
            self._check(twin, before)
            self.rows[twin_id] = twin.model_dump()
            return twin

    def list_deletion_due(self, limit: int) -> list[Twin]:
        with self.lock:
            twins = [Twin.model_validate(r) for r in self.rows.values()]
        due = [t for t in twins if t.deletion_requested_at is not None and t.deleted_at is None]
        return sorted(due, key=lambda t: t.deletion_requested_at or t.created_at)[:limit]

    def delete(self, twin_id: UUID) -> None:
        with self.lock:
            if any(r["twin_id"] == twin_id for r in self.jobs.rows.values()):
                raise AppError(ErrorCode.TWIN_STATE_CHANGED, "the twin still has versions")
            self.rows.pop(twin_id, None)

    # --- the database's rules ----------------------------------------------------------------

    def _check(self, twin: Twin, before: Twin | None) -> None:
        refused = AppError(ErrorCode.TWIN_STATE_CHANGED, "the twin's rules refused this write")
        if before is not None and (
            twin.user_id != before.user_id or twin.next_version < before.next_version
        ):
            raise refused
        if twin.deletion_requested_at is not None and twin.active_job_id is not None:
            raise refused
        if twin.active_job_id is not None and (
            before is None or twin.active_job_id != before.active_job_id
        ):
            row = self.jobs.rows.get(twin.active_job_id)
            if row is None or not can_be_active(Job.model_validate(row), twin):
                raise refused

    def take_version(self, job: dict[str, Any]) -> dict[str, Any]:
        """The insert trigger: the job's twin (a new one if none is named) and its next number."""
        if job.get("twin_id") is None:
            twin = self.insert(
                {
                    "user_id": job["user_id"],
                    "name": job["furrsona_name"],
                    "customization_data": job.get("customization_data") or {},
                }
            )
            job = {**job, "twin_id": twin.id}
        row = self.rows.get(job["twin_id"])
        if row is None or row["user_id"] != job["user_id"] or row["deletion_requested_at"]:
            raise AppError(ErrorCode.TWIN_STATE_CHANGED, "the twin is not this owner's, or going")
        busy = [
            r
            for r in self.jobs.rows.values()
            if r["twin_id"] == row["id"] and JobStatus(r["status"]) in ACTIVE_STATUSES
        ]
        if busy:
            raise AppError(ErrorCode.TWIN_BUSY, "this twin already has a version on its way")
        row["next_version"] += 1
        row["updated_at"] = datetime.now(UTC)
        return {"twin_id": row["id"], "version": row["next_version"] - 1}

    def active_twin_of(self, job_id: UUID) -> UUID | None:
        return next((t for t, r in self.rows.items() if r["active_job_id"] == job_id), None)

    def activate_completed(self, job: Job) -> None:
        row = self.rows.get(job.twin_id) if job.twin_id else None
        if row is not None and row["deletion_requested_at"] is None:
            row["active_job_id"] = job.id
            row["updated_at"] = datetime.now(UTC)


def _day_of(now: datetime) -> datetime:
    """Midnight (UTC) of `now`'s day: the budget's and the turns' day."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class InMemoryTrainingQueue:
    """The training-queue migration's functions over the in-memory rows: the same rules, the same
    order (`tests/sql/test_queue_admission.py` holds both to them)."""

    def __init__(self, jobs: InMemoryJobStore) -> None:
        self.jobs = jobs
        self.held_until: datetime | None = None
        self.reason: str | None = None

    def _rows(self, status: JobStatus) -> list[dict[str, Any]]:
        return [r for r in self.jobs.rows.values() if r["status"] == status]

    def _order(self, per_user: int, now: datetime) -> list[tuple[dict[str, Any], int, bool]]:
        """(row, place, eligible) like `training_queue`: owners take turns (fewest trainings
        today first), each owner's oldest first."""
        day = _day_of(now)
        busy = Counter(r["user_id"] for r in self._rows(JobStatus.TRAINING))
        served = Counter(
            r["user_id"]
            for r in self.jobs.rows.values()
            if r["status"] == JobStatus.TRAINING
            or (
                r["status"] != JobStatus.QUEUED
                and r["admitted_at"] is not None
                and r["admitted_at"] >= day
            )
        )
        nth: Counter[UUID] = Counter()
        turns = []
        for row in sorted(self._rows(JobStatus.QUEUED), key=lambda r: (r["queued_at"], r["id"])):
            owner = row["user_id"]
            nth[owner] += 1
            eligible = busy[owner] + nth[owner] <= per_user
            turns.append((served[owner] + nth[owner], row["queued_at"], row["id"], row, eligible))
        turns.sort(key=lambda t: t[:3])
        return [(t[3], place, t[4]) for place, t in enumerate(turns, 1)]

    def _spent(self, now: datetime) -> float:
        day = _day_of(now)
        return sum(
            r["cost_usd"] if r["cost_usd"] is not None else (r["reserved_cost_usd"] or 0.0)
            for r in self.jobs.rows.values()
            if r["admitted_at"] is not None and day <= r["admitted_at"] < day + timedelta(days=1)
        )

    def admit(self, rules: AdmissionRules, limit: int, now: datetime) -> list[Admitted]:
        with self.jobs.lock:
            if self.held_until is not None and self.held_until > now:
                return []
            room = min(rules.max_in_flight - len(self._rows(JobStatus.TRAINING)), limit)
            if rules.daily_budget_usd is not None:
                left = rules.daily_budget_usd - self._spent(now)
                room = min(room, math.floor(left / rules.cost_estimate_usd))
            chosen = [row for row, _, eligible in self._order(rules.per_user, now) if eligible]
            admitted = []
            for row in chosen[: max(room, 0)]:
                token = uuid.uuid4()
                self.jobs.update(
                    row["id"],
                    {
                        "status": JobStatus.TRAINING,
                        "claim_token": token,
                        # The claim's times are the real ones (the database's now()).
                        "claimed_at": datetime.now(UTC),
                        "last_checked_at": datetime.now(UTC),
                        "admitted_at": now,
                        "reserved_cost_usd": rules.cost_estimate_usd,
                    },
                    expect_status=JobStatus.QUEUED,
                )
                admitted.append(Admitted(row["id"], token))
            return admitted

    def _positions(self, per_user: int, now: datetime) -> dict[UUID, tuple[int, bool]]:
        """job -> (place in line, eligible), like `training_queue_positions`."""
        places, eligible_ahead = {}, 0
        for row, _, eligible in self._order(per_user, now):
            places[row["id"]] = (eligible_ahead + 1, eligible)
            eligible_ahead += eligible
        return places

    def refresh_positions(self, per_user: int, now: datetime) -> int:
        with self.jobs.lock:
            written = 0
            for job_id, (position, _) in self._positions(per_user, now).items():
                row = self.jobs.rows[job_id]
                if row["queue_position"] != position:
                    row["queue_position"] = position
                    written += 1
            return written

    def hold(self, until: datetime, reason: str) -> datetime:
        with self.jobs.lock:
            if self.held_until is None or until > self.held_until:
                self.held_until, self.reason = until, reason
            return self.held_until

    def place(self, job_id: UUID, per_user: int, now: datetime) -> QueueSnapshot | None:
        with self.jobs.lock:
            row = self.jobs.rows.get(job_id)
            if row is None or row["status"] != JobStatus.QUEUED:
                return None
            position, eligible = self._positions(per_user, now)[job_id]
            if row["queue_position"] is not None:
                position = row["queue_position"]  # the sweep's last refresh
            flying = self._rows(JobStatus.TRAINING)
            recent = sorted(
                (r for r in self._rows(JobStatus.COMPLETED) if r["admitted_at"] or r["claimed_at"]),
                key=lambda r: r["completed_at"],
                reverse=True,
            )[:20]
            durations = [
                (r["completed_at"] - (r["admitted_at"] or r["claimed_at"])).total_seconds()
                for r in recent
            ]
            return QueueSnapshot(
                position=position,
                eligible=eligible,
                queued_at=row["queued_at"],
                in_flight=len(flying),
                owner_in_flight=sum(1 for r in flying if r["user_id"] == row["user_id"]),
                running_ends=sorted(
                    r["estimated_completion"] for r in flying if r["estimated_completion"]
                ),
                spent_today=self._spent(now),
                held_until=self.held_until,
                median_training_seconds=statistics.median(durations) if durations else None,
            )

    def stats(self, now: datetime) -> QueueStats:
        with self.jobs.lock:
            queued = self._rows(JobStatus.QUEUED)
            return QueueStats(
                depth=len(queued),
                oldest_queued_at=min((r["queued_at"] for r in queued), default=None),
                in_flight=len(self._rows(JobStatus.TRAINING)),
                spent_today=self._spent(now),
            )


class InMemoryPhotoStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail_puts_after: int | None = None
        self.puts = 0
        self.signed: dict[str, str] = {}  # upload token -> path
        self.created: dict[str, datetime] = {}  # path -> when the object was created

    def put(self, path: str, data: bytes, content_type: str) -> None:
        self.puts += 1
        if self.fail_puts_after is not None and self.puts > self.fail_puts_after:
            raise RuntimeError("storage down")
        self._store(path, data)

    def _store(self, path: str, data: bytes) -> None:
        self.objects[path] = bytes(data)
        self.created.setdefault(path, datetime.now(UTC))

    def get(self, path: str) -> bytes:
        if path not in self.objects:
            raise ObjectMissing(path)
        return self.objects[path]

    def fetch_into(self, path: str, out: IO[bytes]) -> None:
        out.write(self.get(path))

    def remove(self, paths: list[str]) -> None:
        for path in paths:
            self.objects.pop(path, None)
            self.created.pop(path, None)

    def list_names(self, prefix: str) -> list[str]:
        return sorted(self.sizes(prefix))

    def sizes(self, prefix: str) -> dict[str, int]:
        folder = prefix.strip("/") + "/"
        return {p: len(data) for p, data in self.objects.items() if p.startswith(folder)}

    def signed_upload(self, path: str) -> SignedUpload:
        token = uuid.uuid4().hex
        self.signed[token] = path
        return SignedUpload(
            path=path,
            url=f"memory://training-photos/{path}?token={token}",
            token=token,
            expires_at=datetime.now(UTC) + timedelta(hours=2),
        )

    def signed_urls(self, paths: Sequence[str], expires_in: int) -> dict[str, str]:
        expires = int((datetime.now(UTC) + timedelta(seconds=expires_in)).timestamp())
        return {
            p: f"memory://training-photos/{p}?token=signed&exp={expires}"
            for p in paths
            if p in self.objects
        }

    def put_signed(self, token: str, data: bytes) -> None:
        """What a browser's PUT to a signed upload URL does."""
        self._store(self.signed[token], data)


class RecordingNotifier:
    """Keeps every notice it is asked to send (in the order they came)."""

    def __init__(self) -> None:
        self.sent: list[CompletionNotice] = []
        self.lock = threading.Lock()

    def send(self, notice: CompletionNotice) -> None:
        with self.lock:
            self.sent.append(notice)


class FakeTrainer:
    """Replicate as a dict; `trainings_created` is what a bill would count."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.trainings: dict[str, TrainingInfo] = {}
        self.trainings_created = 0
        self.destination_checks = 0
        self.lock = threading.Lock()
        self.fail_create_with: Exception | None = None
        self.deleted_versions: list[str] = []
        self.file_jobs: dict[
            str, tuple[str, datetime]
        ] = {}  # file id -> (metadata job_id, created)
        self.refuse_deletions_with: int | None = None  # 403 / 409: refused for good

    def upload_zip(self, fileobj: IO[bytes], filename: str, job_id: str) -> UploadedFile:
        fileobj.seek(0)
        file_id = uuid.uuid4().hex
        with self.lock:
            self.files[file_id] = fileobj.read()
            self.file_jobs[file_id] = (job_id, datetime.now(UTC))
        return UploadedFile(id=file_id, url=f"https://replicate.test/v1/files/{file_id}")

    def ensure_destination(self) -> None:
        self.destination_checks += 1

    def create_training(self, zip_url: str, webhook: str | None) -> TrainingInfo:
        if self.fail_create_with is not None:
            raise self.fail_create_with
        with self.lock:
            self.trainings_created += 1
            training = TrainingInfo(
                id=uuid.uuid4().hex[:26],
                status="starting",
                input={"input_images": zip_url},
                created_at=datetime.now(UTC),
                logs="",
            )
            self.trainings[training.id] = training
            return training

    def get_training(self, training_id: str) -> TrainingInfo | None:
        return self.trainings.get(training_id)

    def find_training(self, zip_url: str, created_after: datetime) -> TrainingInfo | None:
        for training in self.trainings.values():
            if training.input.get("input_images") == zip_url:
                return training
        return None

    def cancel_training(self, training_id: str) -> TrainingInfo | None:
        training = self.trainings.get(training_id)
        if training is None:
            return None
        if not training.is_terminal:
            training = training.model_copy(
                update={"status": "canceled", "completed_at": datetime.now(UTC)}
            )
            self.trainings[training_id] = training
        return training

    def delete_file(self, file_id: str) -> None:
        if self.refuse_deletions_with is not None:
            raise DeletionRefused(f"file {file_id}", self.refuse_deletions_with)
        self.files.pop(file_id, None)
        self.file_jobs.pop(file_id, None)

    def list_job_files(self, limit: int) -> list[JobFile]:
        with self.lock:
            listed = [JobFile(fid, job, at) for fid, (job, at) in self.file_jobs.items()]
        listed.sort(key=lambda f: f.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        return listed[:limit]

    def delete_model_version(self, model_version: str) -> None:
        if self.refuse_deletions_with is not None:
            raise DeletionRefused(f"model version {model_version}", self.refuse_deletions_with)
        self.deleted_versions.append(model_version)

    def set(self, training_id: str, **fields: Any) -> None:
        self.trainings[training_id] = self.trainings[training_id].model_copy(update=fields)


_PREVIEW_IDENTITY = ("id", "job_id", "user_id", "set_id", "slot", "kind", "model_version", "seed")


class InMemoryPreviewStore:
    """`twin_previews` with the database's rules: identity never changes, a final status stays,
    a recorded prediction stays, a ready picture has its object; the owner's daily count."""

    def __init__(self, jobs: InMemoryJobStore) -> None:
        self.jobs = jobs
        self.rows: dict[UUID, dict[str, Any]] = {}
        self.lock = threading.RLock()
        jobs.preview_store = self  # the orphan query and the account cascade read these rows

    def stored_paths(self) -> set[str]:
        with self.lock:
            return {
                r["storage_path"]
                for r in self.rows.values()
                if r["storage_path"] and r["deleted_at"] is None
            }

    def cascade(self, job_ids: set[UUID]) -> None:
        """The foreign key's `on delete cascade`: the jobs' rows went, so do their pictures."""
        with self.lock:
            for pid in [p for p, r in self.rows.items() if r["job_id"] in job_ids]:
                del self.rows[pid]

    def _make(self, row: dict[str, Any], now: datetime) -> dict[str, Any]:
        data = {"created_at": now, "updated_at": now, "status": PreviewStatus.PENDING, **row}
        return Preview.model_validate(data).model_dump()

    def insert_set(self, rows: Sequence[dict[str, Any]]) -> list[Preview]:
        with self.lock:
            now = datetime.now(UTC)
            for row in rows:
                if row["id"] not in self.rows:
                    assert row["job_id"] in self.jobs.rows, "foreign key: no such job"
                    self.rows[row["id"]] = self._make(row, now)
            return [Preview.model_validate(self.rows[r["id"]]) for r in rows]

    def request_on_demand(
        self, user_id: UUID, rows: Sequence[dict[str, Any]], per_day: int, now: datetime
    ) -> tuple[bool, int]:
        with self.lock:
            day = _day_of(now)
            used = sum(
                1
                for r in self.rows.values()
                if r["user_id"] == user_id
                and r["kind"] is PreviewKind.ON_DEMAND
                and day <= r["created_at"] < day + timedelta(days=1)
            )
            if any(r["set_id"] == rows[0]["set_id"] for r in self.rows.values()):
                return True, used
            if used + len(rows) > per_day:
                return False, used
            for row in rows:
                self.rows[row["id"]] = self._make({**row, "created_at": now}, now)
            return True, used + len(rows)

    def get(self, preview_id: UUID) -> Preview | None:
        with self.lock:
            row = self.rows.get(preview_id)
            return Preview.model_validate(row) if row else None

    def claim(
        self, preview_id: UUID, expected: UUID | None, token: UUID, now: datetime
    ) -> Preview | None:
        with self.lock:
            row = self.rows.get(preview_id)
            if (
                row is None
                or row["status"] is not PreviewStatus.PENDING
                or row["prediction_id"] is not None
                or row["deleted_at"] is not None
                or row["claim_token"] != expected
            ):
                return None
            return self._write(row, {"claim_token": token, "claimed_at": now})

    def _write(self, row: dict[str, Any], changes: dict[str, Any]) -> Preview:
        new = {**row, **changes, "updated_at": datetime.now(UTC)}
        if any(new[k] != row[k] for k in _PREVIEW_IDENTITY):
            raise AppError(ErrorCode.JOB_STATE_CHANGED, "a preview's identity never changes")
        if row["status"] is not PreviewStatus.PENDING and new["status"] != row["status"]:
            raise AppError(ErrorCode.JOB_STATE_CHANGED, "a preview's final status stays")
        if row["prediction_id"] is not None and new["prediction_id"] != row["prediction_id"]:
            raise AppError(ErrorCode.JOB_STATE_CHANGED, "a preview's prediction never changes")
        preview = Preview.model_validate(new)
        if (
            preview.status is PreviewStatus.READY
            and preview.storage_path is None
            and preview.deleted_at is None
        ):
            raise AppError(ErrorCode.JOB_STATE_CHANGED, "a ready preview is stored")
        if (preview.status is PreviewStatus.FAILED) != (preview.failure_code is not None):
            raise AppError(ErrorCode.JOB_STATE_CHANGED, "a failed preview says why")
        self.rows[preview.id] = preview.model_dump()
        return preview

    def update(
        self,
        preview_id: UUID,
        changes: dict[str, Any],
        *,
        expect_status: PreviewStatus | None = PreviewStatus.PENDING,
        expect_claim: UUID | None = None,
    ) -> Preview | None:
        with self.lock:
            row = self.rows.get(preview_id)
            if row is None:
                return None
            if expect_status is not None and row["status"] != expect_status:
                return None
            if expect_claim is not None and row["claim_token"] != expect_claim:
                return None
            return self._write(row, changes)

    def for_jobs(self, job_ids: Sequence[UUID]) -> list[Preview]:
        with self.lock:
            rows = [
                r for r in self.rows.values() if r["job_id"] in job_ids and r["deleted_at"] is None
            ]
            rows.sort(key=lambda r: (r["created_at"], r["slot"]))
            return [Preview.model_validate(r) for r in rows]

    def list_unfinished(self, limit: int) -> list[Preview]:
        with self.lock:
            rows = [
                r
                for r in self.rows.values()
                if r["status"] is PreviewStatus.PENDING and r["deleted_at"] is None
            ]
            rows.sort(key=lambda r: r["updated_at"])
            return [Preview.model_validate(r) for r in rows[:limit]]


# A tiny valid WebP (RIFF....WEBP) a fake prediction "returns".
FAKE_WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"


class FakePredictor:
    """Replicate predictions as a dict; `created` is what a bill would count. By default a
    prediction succeeds at once (as a create with `Prefer: wait` returns it); `mode` switches
    the next ones to "running" (still processing), "nsfw" or "fail"."""

    def __init__(self) -> None:
        self.predictions: dict[str, PredictionInfo] = {}
        self.created = 0
        self.canceled: list[str] = []
        self.fetched = 0
        self.lock = threading.Lock()
        self.mode = "succeed"
        self.fail_create_with: Exception | None = None
        self.outputs: dict[str, bytes] = {}

    def create_prediction(
        self,
        version: str,
        input: dict[str, Any],
        webhook: str | None,
        *,
        wait_seconds: int,
        cancel_after_seconds: int,
    ) -> PredictionInfo:
        if self.fail_create_with is not None:
            raise self.fail_create_with
        with self.lock:
            self.created += 1
            pid = uuid.uuid4().hex[:26]
            now = datetime.now(UTC)
            status = {"succeed": "succeeded", "running": "processing"}.get(self.mode, "failed")
            error = {
                "nsfw": "All generated images contained NSFW content. Try running it again "
                "with a different prompt.",
                "fail": "CUDA out of memory",
            }.get(self.mode)
            url = f"https://replicate.delivery/fake/{pid}/out-0.webp"
            self.outputs[url] = FAKE_WEBP
            prediction = PredictionInfo(
                id=pid,
                status=status,
                version=version.rsplit(":", 1)[-1],
                input=dict(input),
                output=[url] if status == "succeeded" else None,
                error=error,
                created_at=now,
                completed_at=now if status != "processing" else None,
                metrics={"predict_time": 8.0} if status != "processing" else {},
            )
            self.predictions[pid] = prediction
            return prediction

    def get_prediction(self, prediction_id: str) -> PredictionInfo | None:
        return self.predictions.get(prediction_id)

    def find_prediction(
        self, version: str, input: dict[str, Any], created_after: datetime
    ) -> PredictionInfo | None:
        for p in self.predictions.values():
            if p.input.get("seed") == input.get("seed") and p.input.get("prompt") == input.get(
                "prompt"
            ):
                return p
        return None

    def cancel_prediction(self, prediction_id: str) -> PredictionInfo | None:
        p = self.predictions.get(prediction_id)
        if p is None:
            return None
        self.canceled.append(prediction_id)
        if not p.is_terminal:
            p = p.model_copy(update={"status": "canceled", "completed_at": datetime.now(UTC)})
            self.predictions[prediction_id] = p
        return p

    def fetch_output(self, url: str) -> bytes:
        self.fetched += 1
        return self.outputs[url]

    def finish(self, prediction_id: str, status: str = "succeeded", **fields: Any) -> None:
        """A running prediction ends now."""
        p = self.predictions[prediction_id]
        url = f"https://replicate.delivery/fake/{prediction_id}/out-0.webp"
        self.outputs[url] = FAKE_WEBP
        update = {
            "status": status,
            "completed_at": datetime.now(UTC),
            "metrics": {"predict_time": 8.0},
            "output": [url] if status == "succeeded" else None,
            **fields,
        }
        self.predictions[prediction_id] = p.model_copy(update=update)
