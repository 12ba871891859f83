"""The `JobStore` port's contract, run against both implementations: the in-memory fake the unit
tests use and `PostgrestJobStore` over the real PostgREST and Postgres (triggers included). When
the fake drifts from the database, a case here fails for one of them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from postgrest import SyncPostgrestClient

from devstack.postgres import LocalPostgres
from devstack.postgrest import LocalPostgrest
from devstack.schema import create_user
from devstack.tokens import service_role_key
from shared.adapters.postgrest_jobs import PostgrestJobStore
from shared.adapters.postgrest_twins import PostgrestTwinStore
from shared.domain.history import ProgressPoint
from shared.domain.job import FailureCode, JobStatus, failed
from shared.domain.phases import Phase
from shared.errors import AppError
from shared.ports import JobPosition, JobStore, TwinStore
from tests.fakes import InMemoryJobStore, InMemoryTwinStore

pytestmark = pytest.mark.stack

NewUser = Callable[[], uuid.UUID]


@pytest.fixture(params=["memory", "postgrest"])
def store(
    request: pytest.FixtureRequest, pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str
) -> Iterator[tuple[JobStore, NewUser]]:
    if request.param == "memory":
        yield InMemoryJobStore(), uuid.uuid4
        return
    key = service_role_key(jwt_secret)
    client = SyncPostgrestClient(
        rest.url, headers={"apikey": key, "Authorization": f"Bearer {key}"}, retry_enabled=False
    )
    yield PostgrestJobStore(lambda: client), lambda: uuid.UUID(create_user(pg.dsn()))


def new_job(store: JobStore, user: uuid.UUID, **values: Any) -> Any:
    row = {
        "id": uuid.uuid4(),
        "user_id": user,
        "furrsona_name": "Ember",
        "status": JobStatus.PENDING,
        "progress": 20,
        "photo_urls": [f"{user}/x/01.jpg"],
        "customization_data": {"type": "fox"},
        **values,
    }
    return store.insert(row)


def walk(store: JobStore, job: Any, *moves: tuple[JobStatus, int]) -> Any:
    for status, progress in moves:
        if status is JobStatus.TRAINING and job.status is JobStatus.PENDING:
            job = store.update(  # through the queue, as admission moves it
                job.id,
                {"status": JobStatus.QUEUED, "queued_at": datetime.now(UTC)},
                expect_status=JobStatus.PENDING,
            )
        changes: dict[str, Any] = {"status": status, "progress": progress}
        if status is JobStatus.QUEUED:
            changes["queued_at"] = datetime.now(UTC)
        job = store.update(job.id, changes, expect_status=job.status)
        assert job is not None
    return job


def test_an_inserted_job_reads_back_the_same(store: tuple[JobStore, NewUser]) -> None:
    jobs, user = store
    job = new_job(jobs, user())
    assert jobs.get(job.id) == job
    assert job.customization_data == {"type": "fox"} and job.status is JobStatus.PENDING
    assert job.created_at is not None and job.progress_changed_at is not None
    assert jobs.get(uuid.uuid4()) is None


def test_inserting_the_same_id_again_answers_the_row_it_made(
    store: tuple[JobStore, NewUser],
) -> None:
    jobs, user = store
    job = new_job(jobs, user())
    again = jobs.insert({"id": job.id, "user_id": job.user_id, "furrsona_name": "Other",
                         "status": JobStatus.PENDING, "progress": 20})  # fmt: skip
    assert again.furrsona_name == "Ember"
    assert jobs.get(job.id) == job


def test_a_new_job_starts_pending_or_uploading(store: tuple[JobStore, NewUser]) -> None:
    jobs, user = store
    with pytest.raises((AppError, AssertionError)):
        new_job(jobs, user(), status=JobStatus.TRAINING)


def test_update_is_a_compare_and_set_on_status_and_claim(
    store: tuple[JobStore, NewUser],
) -> None:
    jobs, user = store
    job = new_job(jobs, user())
    token = uuid.uuid4()
    assert jobs.update(job.id, {"error_message": "x"}, expect_status=JobStatus.TRAINING) is None
    job = walk(jobs, job, (JobStatus.QUEUED, 20))
    claimed = jobs.update(
        job.id,
        {"status": JobStatus.TRAINING, "claim_token": token},
        expect_status=[JobStatus.QUEUED, JobStatus.UPLOADING],
    )
    assert claimed is not None and claimed.status is JobStatus.TRAINING
    assert jobs.update(job.id, {"progress": 31}, expect_claim=uuid.uuid4()) is None
    moved = jobs.update(job.id, {"progress": 31}, expect_claim=token)
    assert moved is not None and moved.progress == 31
    assert jobs.get(job.id) == moved
    assert jobs.update(uuid.uuid4(), {"progress": 50}) is None


@pytest.mark.parametrize(
    ("moves", "refused"),
    [
        ([], (JobStatus.COMPLETED, 100)),  # pending -> completed skips training
        ([(JobStatus.TRAINING, 30)], (JobStatus.PENDING, 30)),  # never back
        ([(JobStatus.FAILED, 20)], (JobStatus.TRAINING, 30)),  # failed is final
        ([(JobStatus.TRAINING, 50)], (JobStatus.TRAINING, 40)),  # progress never goes down
    ],
)
def test_the_database_rules_refuse_a_wrong_move(
    store: tuple[JobStore, NewUser],
    moves: list[tuple[JobStatus, int]],
    refused: tuple[JobStatus, int],
) -> None:
    jobs, user = store
    job = walk(jobs, new_job(jobs, user()), *moves)
    status, progress = refused
    with pytest.raises(AppError) as info:
        jobs.update(job.id, {"status": status, "progress": progress})
    assert info.value.code == "job_state_changed"
    assert jobs.get(job.id) == job


def test_ending_a_job_stamps_its_end_and_the_progress_clock(
    store: tuple[JobStore, NewUser],
) -> None:
    jobs, user = store
    job = walk(jobs, new_job(jobs, user()), (JobStatus.TRAINING, 30))
    checked = jobs.update(job.id, {"last_checked_at": datetime.now(UTC)})
    assert checked is not None and checked.progress_changed_at == job.progress_changed_at
    failed = jobs.update(job.id, {"status": JobStatus.FAILED, "error_message": "x"})
    assert failed is not None and failed.completed_at is not None
    assert failed.progress_changed_at is not None
    assert failed.progress_changed_at > job.progress_changed_at


def test_compare_and_set_of_one_timestamp(store: tuple[JobStore, NewUser]) -> None:
    jobs, user = store
    job = new_job(jobs, user())
    now = datetime.now(UTC).replace(microsecond=0)
    assert jobs.compare_and_set(job.id, "notified_at", None, now) is True
    assert jobs.compare_and_set(job.id, "notified_at", None, now) is False
    assert jobs.compare_and_set(job.id, "notified_at", now + timedelta(1), None) is False
    assert jobs.compare_and_set(job.id, "notified_at", now, None) is True
    assert jobs.get(job.id).notified_at is None  # type: ignore[union-attr]
    assert jobs.compare_and_set(uuid.uuid4(), "notified_at", None, now) is False


def test_active_jobs_come_least_recently_checked_first(store: tuple[JobStore, NewUser]) -> None:
    jobs, user = store
    owner = user()
    now = datetime.now(UTC)
    made = [walk(jobs, new_job(jobs, owner), (JobStatus.TRAINING, 30)) for _ in range(4)]
    jobs.update(made[0].id, {"last_checked_at": now - timedelta(minutes=1)})
    jobs.update(made[1].id, {"last_checked_at": now - timedelta(minutes=5)})
    walk(jobs, made[2], (JobStatus.FAILED, 30))  # no longer active
    listed = [j.id for j in jobs.list_active([JobStatus.TRAINING], 1000) if j.user_id == owner]
    assert listed == [made[3].id, made[1].id, made[0].id]  # never checked, oldest, newest
    assert len(jobs.list_active([JobStatus.TRAINING], 1)) == 1


def test_unnotified_trainings_are_the_finished_ones_still_owed_a_notice(
    store: tuple[JobStore, NewUser],
) -> None:
    jobs, user = store
    owner = user()
    since = datetime.now(UTC) - timedelta(hours=1)

    def finished(**changes: Any) -> Any:
        job = walk(jobs, new_job(jobs, owner), (JobStatus.TRAINING, 30))
        training = {"replicate_training_id": uuid.uuid4().hex}
        return jobs.update(job.id, {**training, "status": JobStatus.FAILED, **changes})

    owed = finished()
    finished(notified_at=datetime.now(UTC))
    finished(deletion_requested_at=datetime.now(UTC))
    old = finished(completed_at=datetime.now(UTC) - timedelta(days=2))
    walk(jobs, new_job(jobs, owner), (JobStatus.FAILED, 20))  # never trained: no notice
    listed = [j.id for j in jobs.list_unnotified(since, 100) if j.user_id == owner]
    assert listed == [owed.id]
    assert old.id not in [j.id for j in jobs.list_unnotified(since, 100)]


def test_completed_versions_without_previews_are_listed_until_their_set_is_made(
    store: tuple[JobStore, NewUser],
) -> None:
    jobs, user = store
    owner = user()
    since = datetime.now(UTC) - timedelta(hours=1)

    def completed(**changes: Any) -> Any:
        job = walk(jobs, new_job(jobs, owner), (JobStatus.TRAINING, 30))
        training = {"replicate_training_id": uuid.uuid4().hex, "replicate_model_version": "o/m:v"}
        return jobs.update(
            job.id, {**training, "status": JobStatus.COMPLETED, "progress": 100, **changes}
        )

    due = completed()
    made = completed()
    assert jobs.compare_and_set(made.id, "previews_requested_at", None, datetime.now(UTC))
    completed(completed_at=datetime.now(UTC) - timedelta(days=2))
    walk(jobs, new_job(jobs, owner), (JobStatus.TRAINING, 30), (JobStatus.FAILED, 30))
    listed = [j.id for j in jobs.list_without_previews(since, 100) if j.user_id == owner]
    assert listed == [due.id]


def test_cleanup_is_due_for_deletions_kept_zips_and_expired_photos(
    store: tuple[JobStore, NewUser],
) -> None:
    jobs, user = store
    owner = user()
    cutoff = datetime.now(UTC) - timedelta(days=7)

    def ended(**changes: Any) -> Any:
        job = walk(jobs, new_job(jobs, owner), (JobStatus.FAILED, 20))
        return jobs.update(job.id, changes) if changes else job

    deleting = ended(deletion_requested_at=datetime.now(UTC))
    zip_kept = ended(replicate_file_id="file-1", photos_deleted_at=datetime.now(UTC))
    old_photos = ended(completed_at=cutoff - timedelta(days=1))
    ended(completed_at=cutoff - timedelta(days=1), photos_deleted_at=datetime.now(UTC))
    ended()  # photos still within their retention
    new_job(jobs, owner)  # active: nothing to clean yet
    due = {j.id for j in jobs.list_cleanup_due(cutoff, 1000) if j.user_id == owner}
    assert due == {deleting.id, zip_kept.id, old_photos.id}


def test_a_deleted_row_is_gone(store: tuple[JobStore, NewUser]) -> None:
    jobs, user = store
    job = new_job(jobs, user())
    jobs.delete(job.id)
    assert jobs.get(job.id) is None
    jobs.delete(job.id)  # again: nothing to do, no error


# --- twins: the TwinStore port and the rules it shares with the job store -------------------------


@pytest.fixture(params=["memory", "postgrest"])
def twin_stores(
    request: pytest.FixtureRequest, pg: LocalPostgres, rest: LocalPostgrest, jwt_secret: str
) -> Iterator[tuple[JobStore, TwinStore, NewUser]]:
    if request.param == "memory":
        jobs = InMemoryJobStore()
        yield jobs, InMemoryTwinStore(jobs), uuid.uuid4
        return
    key = service_role_key(jwt_secret)
    client = SyncPostgrestClient(
        rest.url, headers={"apikey": key, "Authorization": f"Bearer {key}"}, retry_enabled=False
    )
    yield (
        PostgrestJobStore(lambda: client),
        PostgrestTwinStore(lambda: client),
        lambda: uuid.UUID(create_user(pg.dsn())),
    )


def new_twin(twins: TwinStore, user: uuid.UUID, name: str = "Ember") -> Any:
    return twins.insert({"id": uuid.uuid4(), "user_id": user, "name": name})


def version_of(jobs: JobStore, twin: Any, user: uuid.UUID) -> Any:
    return new_job(jobs, user, twin_id=twin.id, furrsona_name=twin.name)


def test_versions_are_numbered_within_their_twin(
    twin_stores: tuple[JobStore, TwinStore, NewUser],
) -> None:
    jobs, twins, user = twin_stores
    owner = user()
    twin = new_twin(twins, owner)
    first = walk(jobs, version_of(jobs, twin, owner), (JobStatus.FAILED, 20))
    second = version_of(jobs, twin, owner)
    assert (first.twin_id, first.version, second.version) == (twin.id, 1, 2)
    assert [j.version for j in jobs.list_versions([twin.id])] == [1, 2]
    again = twins.insert({"id": twin.id, "user_id": owner, "name": "Other"})
    assert again.name == "Ember"  # our own key again: the row it made


def test_one_version_on_its_way_per_twin(twin_stores: tuple[JobStore, TwinStore, NewUser]) -> None:
    jobs, twins, user = twin_stores
    owner = user()
    twin = new_twin(twins, owner)
    version_of(jobs, twin, owner)
    with pytest.raises(AppError) as info:
        version_of(jobs, twin, owner)
    assert info.value.code == "twin_busy"
    with pytest.raises(AppError) as info:  # not on someone else's twin either
        version_of(jobs, new_twin(twins, owner), user())
    assert info.value.code == "twin_state_changed"


def test_completion_activates_and_only_a_completed_version_can_be_active(
    twin_stores: tuple[JobStore, TwinStore, NewUser],
) -> None:
    jobs, twins, user = twin_stores
    owner = user()
    twin = new_twin(twins, owner)
    v1 = walk(jobs, version_of(jobs, twin, owner), (JobStatus.TRAINING, 30))
    done = jobs.update(
        v1.id, {"status": JobStatus.COMPLETED, "progress": 100, "replicate_model_version": "o/m:1"}
    )
    assert done is not None and twins.get(twin.id).active_job_id == v1.id  # type: ignore[union-attr]
    v2 = version_of(jobs, twin, owner)
    with pytest.raises(AppError) as info:
        twins.update(twin.id, {"active_job_id": v2.id})
    assert info.value.code == "twin_state_changed"
    assert twins.get(twin.id).active_job_id == v1.id  # type: ignore[union-attr]
    with pytest.raises(AppError):  # the active version is not deleted
        jobs.update(v1.id, {"deletion_requested_at": datetime.now(UTC)})


def test_twins_listed_deleted_and_due(twin_stores: tuple[JobStore, TwinStore, NewUser]) -> None:
    jobs, twins, user = twin_stores
    owner = user()
    older, newer = new_twin(twins, owner, "Older"), new_twin(twins, owner, "Newer")
    going = new_twin(twins, owner, "Going")
    twins.update(going.id, {"deletion_requested_at": datetime.now(UTC)})
    assert [t.id for t in twins.list_owned(owner)] == [newer.id, older.id]
    assert going.id in [t.id for t in twins.list_deletion_due(1000)]
    with pytest.raises(AppError):  # a deletion is never withdrawn
        twins.update(going.id, {"deletion_requested_at": None})
    twins.update(going.id, {"deleted_at": datetime.now(UTC)})
    assert going.id not in [t.id for t in twins.list_deletion_due(1000)]
    version_of(jobs, older, owner)
    with pytest.raises(AppError):  # a twin with a version stays
        twins.delete(older.id)
    twins.delete(newer.id)
    assert twins.get(newer.id) is None and twins.get(older.id) is not None


def test_the_owners_jobs_come_newest_first_a_page_at_a_time(
    store: tuple[JobStore, NewUser],
) -> None:
    jobs, user = store
    owner, stranger = user(), user()
    start = datetime(2026, 12, 4, 9, 0, 0, 123456, tzinfo=UTC)
    made = [new_job(jobs, owner, created_at=start + timedelta(minutes=m)) for m in (0, 1, 2, 2, 3)]
    being_deleted = new_job(jobs, owner, created_at=start + timedelta(minutes=4))
    walk(jobs, being_deleted, (JobStatus.FAILED, 20))
    jobs.update(being_deleted.id, {"deletion_requested_at": datetime.now(UTC)})
    new_job(jobs, stranger, created_at=start + timedelta(minutes=5))
    # Newest first; the two of the same minute by id, descending.
    expected = [j.id for j in sorted(made, key=lambda j: (j.created_at, j.id), reverse=True)]
    pages, after = [], None
    while page := jobs.list_owned(owner, 2, after):
        pages.append([j.id for j in page])
        after = JobPosition(page[-1].created_at, page[-1].id)
    assert [job_id for page in pages for job_id in page] == expected
    assert [len(page) for page in pages] == [2, 2, 1]
    assert jobs.list_owned(uuid.uuid4(), 10, None) == []


def test_a_failure_code_is_only_for_a_failed_job(store: tuple[JobStore, NewUser]) -> None:
    jobs, user = store
    job = new_job(jobs, user())
    with pytest.raises(AppError) as refused:
        jobs.update(job.id, {"failure_code": FailureCode.STALLED})
    assert refused.value.code == "job_state_changed"
    ended = jobs.update(job.id, failed(FailureCode.UPLOAD_EXPIRED, "Too late."))
    assert ended is not None and ended.failure_code is FailureCode.UPLOAD_EXPIRED
    assert jobs.get(job.id) == ended


def test_the_phase_follows_the_status_and_never_goes_back(store: tuple[JobStore, NewUser]) -> None:
    jobs, user = store
    owner = user()
    job = new_job(jobs, owner)
    assert job.phase is Phase.UPLOADING and job.phase_times == {}
    job = walk(jobs, job, (JobStatus.TRAINING, 30))
    assert job.phase is Phase.PREPARING_GPU
    began = datetime.now(UTC).replace(microsecond=0)
    later = {Phase.TRAINING: began, Phase.PREPARING_GPU: began - timedelta(minutes=3)}
    moved = jobs.update(job.id, {"phase": Phase.TRAINING, "step": 10, "phase_times": later})
    assert moved is not None and moved.phase is Phase.TRAINING and moved.step == 10
    # An older view (a late webhook, a racing sweep) cannot move it back or forget a time.
    older = {Phase.PREPARING_GPU: began - timedelta(minutes=9), Phase.READING_PHOTOS: began}
    back = jobs.update(job.id, {"phase": Phase.READING_PHOTOS, "step": 5, "phase_times": older})
    assert back is not None and (back.phase, back.step) == (Phase.TRAINING, 10)
    assert back.phase_times == {**later, Phase.READING_PHOTOS: began}
    canceled = jobs.update(
        job.id, {**failed(FailureCode.CANCELED_BY_USER, "Canceled."), "phase": Phase.CANCELED}
    )
    assert canceled is not None and canceled.phase is Phase.CANCELED
    assert jobs.update(job.id, {"error_message": "Canceled by user."}).phase is Phase.CANCELED  # type: ignore[union-attr]
    broke = walk(jobs, new_job(jobs, owner), (JobStatus.TRAINING, 30), (JobStatus.FAILED, 30))
    assert broke.phase is Phase.FAILED
    done = walk(jobs, new_job(jobs, owner), (JobStatus.TRAINING, 30))
    done = jobs.update(
        done.id,
        {"status": JobStatus.COMPLETED, "progress": 100, "replicate_model_version": "a/b:c"},
    )
    assert done is not None and done.phase is Phase.DONE


def point(bucket: int, loss: float = 0.25) -> ProgressPoint:
    at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC) + timedelta(seconds=7 * bucket)
    return ProgressPoint(bucket, 5 * (bucket + 1), at, loss, 1.25)


def test_progress_points_are_kept_once_per_bucket_while_the_job_trains(
    store: tuple[JobStore, NewUser],
) -> None:
    jobs, user = store
    waiting = new_job(jobs, user())
    jobs.add_progress_points(waiting.id, [point(0)])
    assert jobs.progress_points(waiting.id) == []  # not training: dropped
    job = walk(jobs, new_job(jobs, user()), (JobStatus.TRAINING, 30))
    jobs.add_progress_points(job.id, [point(1), point(0)])
    jobs.add_progress_points(job.id, [point(1, loss=0.5), point(2)])  # a repeat changes nothing
    assert jobs.progress_points(job.id) == [point(0), point(1), point(2)]
    walk(jobs, job, (JobStatus.FAILED, 30))
    jobs.add_progress_points(job.id, [point(3)])  # a refresh that raced the end
    assert [p.bucket for p in jobs.progress_points(job.id)] == [0, 1, 2]
    jobs.delete_progress_points(job.id)
    assert jobs.progress_points(job.id) == []
    other = walk(jobs, new_job(jobs, user()), (JobStatus.TRAINING, 30))
    jobs.add_progress_points(other.id, [point(0)])
    jobs.delete(other.id)  # the row goes, its points with it
    assert jobs.progress_points(other.id) == []


def test_recent_timelines_are_the_newest_completed_jobs(store: tuple[JobStore, NewUser]) -> None:
    jobs, user = store
    owner = user()
    # Far in the future: newer than any other test's jobs in this database.
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3650)
    made = []
    for k in range(3):
        job = walk(jobs, new_job(jobs, owner), (JobStatus.TRAINING, 30))
        times = {Phase.PREPARING_GPU: base, Phase.DONE: base + timedelta(minutes=10 + k)}
        jobs.update(job.id, {"phase_times": times, "total_steps": 1000 + k})
        jobs.update(
            job.id,
            {"status": JobStatus.COMPLETED, "progress": 100, "replicate_model_version": "a/b:c",
             "completed_at": base + timedelta(minutes=10 + k)},
        )  # fmt: skip
        made.append(times)
    walk(jobs, new_job(jobs, owner), (JobStatus.TRAINING, 30), (JobStatus.FAILED, 30))
    recent = jobs.recent_timelines(2)
    assert [r.total_steps for r in recent] == [1002, 1001]
    assert [dict(r.phase_times) for r in recent] == [made[2], made[1]]
