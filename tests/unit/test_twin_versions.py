"""Twins and their versions on in-memory fakes that keep the database's rules: retrain,
activation on completion, roll back and forward, deleting a version or a whole twin."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest

from devstack.sample_photos import make_photo
from shared.domain.caller import Caller
from shared.domain.job import Job, JobStatus
from shared.domain.twin import Twin
from shared.errors import AppError, UpstreamError
from shared.plumbing.deadline import Deadline
from shared.plumbing.multipart import Form, Part
from shared.services.deps import Deps
from shared.services.intake import normalise_all
from shared.services.privacy import delete_job
from shared.services.signed_upload import complete_signed_upload, create_signed_upload
from shared.services.start import start_training
from shared.services.status import get_status, status_answer
from shared.services.sweep import sweep_all
from shared.services.twins import (
    activate_version,
    delete_twin,
    get_twin,
    list_twins,
    update_twin,
)
from shared.services.upload import create_job_with_photos, upload_multipart
from shared.services.versions import VersionPlan
from tests.fakes import FakeTrainer, InMemoryPhotoStore

PHOTOS = [(f"p{i}.jpg", make_photo(640, 640, seed=300 + i)) for i in range(3)]


def caller() -> Caller:
    return Caller(user_id=uuid.uuid4(), claims={})


def form(**fields: str) -> Form:
    parts = [
        Part(name=k, filename=None, content_type=None, data=bytearray(v.encode()))
        for k, v in fields.items()
    ]
    parts += [
        Part(name="photos", filename=n, content_type="image/jpeg", data=bytearray(d))
        for n, d in PHOTOS
    ]
    return Form(parts)


def trained(deps: Deps, who: Caller, twin: Twin | None = None, *, succeed: bool = True) -> Job:
    """A job through upload, start and Replicate's answer: a new twin's v1, or `twin`'s next."""
    plan = VersionPlan("Ember", {"type": "fox"}, twin)
    job = create_job_with_photos(who, plan, normalise_all(PHOTOS, deps.settings), deps)
    started = start_training(who.user_id, job.id, deps)
    trainer = deps.trainer
    assert isinstance(trainer, FakeTrainer) and started.replicate_training_id
    if succeed:
        version = f"flurrty/flurrty-twins:{uuid.uuid4().hex}{uuid.uuid4().hex}"
        trainer.set(started.replicate_training_id, status="succeeded", output={"version": version})
    else:
        trainer.set(started.replicate_training_id, status="failed", error="CUDA out of memory")
    return get_status(who.user_id, job.id, deps)


def twin_of(deps: Deps, job: Job) -> Twin:
    assert job.twin_id is not None
    twin = deps.twins.get(job.twin_id)
    assert twin is not None
    return twin


def code_of(call: object) -> str:
    with pytest.raises(AppError) as info:
        call()  # type: ignore[operator]
    return info.value.code


# --- a new twin, and its next versions ----------------------------------------------------------


def test_an_upload_without_a_twin_makes_one_and_is_its_version_1(deps: Deps) -> None:
    who = caller()
    job = upload_multipart(who, form(fursonaName="Ember", customizationData='{"type":"fox"}'), deps)
    twin = twin_of(deps, job)
    assert (job.version, twin.name, twin.customization_data) == (1, "Ember", {"type": "fox"})
    assert twin.user_id == who.user_id and twin.active_job_id is None


def test_a_retrain_is_the_twins_next_version_with_its_name_and_customisation(deps: Deps) -> None:
    who = caller()
    first = trained(deps, who)
    twin = twin_of(deps, first)
    again = upload_multipart(who, form(twinId=str(twin.id)), deps)
    assert (again.twin_id, again.version) == (twin.id, 2)
    assert (again.furrsona_name, again.customization_data) == ("Ember", {"type": "fox"})
    # A retrain names its twin only: the name and customisation are the twin's.
    assert code_of(
        lambda: upload_multipart(who, form(twinId=str(twin.id), fursonaName="X"), deps)
    ) == ("invalid_field")


def test_a_retrain_is_refused_while_a_version_is_on_its_way(deps: Deps) -> None:
    who = caller()
    twin = twin_of(deps, trained(deps, who))
    upload_multipart(who, form(twinId=str(twin.id)), deps)  # v2, pending
    assert code_of(lambda: upload_multipart(who, form(twinId=str(twin.id)), deps)) == "twin_busy"
    # The database refuses it too, when a retrain slips past the check.
    plan = VersionPlan(twin.name, twin.customization_data, twin)
    jpegs = normalise_all(PHOTOS, deps.settings)
    before = dict(deps.photos.objects)  # type: ignore[attr-defined]
    assert code_of(lambda: create_job_with_photos(who, plan, jpegs, deps)) == "twin_busy"
    assert deps.photos.objects == before  # type: ignore[attr-defined]  # its photos were removed


@pytest.mark.parametrize("case", ["someone else's", "not a uuid", "being deleted"])
def test_a_retrain_of_a_twin_that_cannot_take_one_is_refused(deps: Deps, case: str) -> None:
    owner, stranger = caller(), caller()
    twin = twin_of(deps, trained(deps, owner))
    who, twin_id, expected = {
        "someone else's": (stranger, str(twin.id), "twin_not_found"),
        "not a uuid": (owner, "twin-1", "invalid_twin_id"),
        "being deleted": (owner, str(twin.id), "twin_deleting"),
    }[case]
    if case == "being deleted":
        deps.twins.update(
            twin.id, {"deletion_requested_at": datetime.now(UTC), "active_job_id": None}
        )
    jobs_before = len(deps.jobs.rows)  # type: ignore[attr-defined]
    assert code_of(lambda: upload_multipart(who, form(twinId=twin_id), deps)) == expected
    assert len(deps.jobs.rows) == jobs_before  # type: ignore[attr-defined]


def test_a_refused_first_upload_leaves_no_twin_and_a_refused_retrain_keeps_it(deps: Deps) -> None:
    who = caller()
    body = {"fursonaName": "Ember", "photos": [{"filename": "a.jpg", "size": 900_000}] * 3}
    created = create_signed_upload(who, body, deps)
    photos = deps.photos
    assert isinstance(photos, InMemoryPhotoStore)
    for target in created.uploads:
        photos.put_signed(target.token, b"<svg>not a photo</svg>")
    with pytest.raises(AppError):
        complete_signed_upload(who, created.job_id, deps)
    assert deps.twins.get(created.twin_id) is None and deps.jobs.get(created.job_id) is None
    # A retrain's refused upload takes only its own job away.
    twin = twin_of(deps, trained(deps, who))
    retrain = create_signed_upload(who, {"twinId": str(twin.id), "photos": body["photos"]}, deps)
    for target in retrain.uploads:
        photos.put_signed(target.token, b"<svg>not a photo</svg>")
    with pytest.raises(AppError):
        complete_signed_upload(who, retrain.job_id, deps)
    assert deps.twins.get(twin.id) is not None and deps.jobs.get(retrain.job_id) is None


def test_an_upload_whose_insert_answer_was_lost_leaves_nothing_and_can_be_repeated(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert lands, its answer does not: the request fails, and neither a row (which would
    make the retry 409 `twin_busy`) nor a photo stays behind."""
    who = caller()
    twin = twin_of(deps, trained(deps, who))
    landed = deps.jobs.insert

    def insert_then_lose_the_answer(row: dict) -> Job:
        landed(row)
        raise UpstreamError("The database did not answer.")

    monkeypatch.setattr(deps.jobs, "insert", insert_then_lose_the_answer)
    jobs_before = set(deps.jobs.rows)  # type: ignore[attr-defined]
    with pytest.raises(UpstreamError):
        upload_multipart(who, form(twinId=str(twin.id)), deps)
    assert set(deps.jobs.rows) == jobs_before  # type: ignore[attr-defined]
    photos = deps.photos
    assert isinstance(photos, InMemoryPhotoStore)
    photo_paths = [p for p in photos.objects if "/previews/" not in p]
    assert {path.split("/")[1] for path in photo_paths} <= {str(j) for j in jobs_before}
    monkeypatch.setattr(deps.jobs, "insert", landed)
    again = upload_multipart(who, form(twinId=str(twin.id)), deps)
    # Version 2 went with the lost row: numbers are never given twice.
    assert (again.twin_id, again.version) == (twin.id, 3)


# --- the active version -------------------------------------------------------------------------


def test_a_completed_training_becomes_the_active_version(deps: Deps) -> None:
    who = caller()
    v1 = trained(deps, who)
    twin = twin_of(deps, v1)
    assert twin.active_job_id == v1.id
    failed = trained(deps, who, twin, succeed=False)
    assert failed.status is JobStatus.FAILED and twin_of(deps, v1).active_job_id == v1.id
    v3 = trained(deps, who, twin)
    assert v3.version == 3 and twin_of(deps, v1).active_job_id == v3.id
    answer = status_answer(v3, deps)
    assert (answer.twin_id, answer.version, answer.active) == (twin.id, 3, True)
    assert status_answer(v1, deps).active is False


def test_roll_back_and_forward(deps: Deps) -> None:
    who = caller()
    v1 = trained(deps, who)
    twin = twin_of(deps, v1)
    v2 = trained(deps, who, twin)
    assert activate_version(who.user_id, twin.id, v1.id, deps).twin.active_job_id == v1.id
    view = activate_version(who.user_id, twin.id, v2.id, deps)
    assert view.twin.active_job_id == v2.id
    assert [(j.version, j.status) for j in view.versions] == [
        (1, JobStatus.COMPLETED),
        (2, JobStatus.COMPLETED),
    ]
    # Activating the active one again changes nothing.
    assert activate_version(who.user_id, twin.id, v2.id, deps).twin.active_job_id == v2.id


def test_only_a_completed_live_version_of_this_twin_can_be_active(deps: Deps) -> None:
    who, stranger = caller(), caller()
    v1 = trained(deps, who)
    twin = twin_of(deps, v1)
    failed = trained(deps, who, twin, succeed=False)
    other = trained(deps, who)  # another twin of the same person
    assert code_of(lambda: activate_version(who.user_id, twin.id, failed.id, deps)) == (
        "version_not_ready"
    )
    assert code_of(lambda: activate_version(who.user_id, twin.id, other.id, deps)) == (
        "version_not_found"
    )
    assert code_of(lambda: activate_version(who.user_id, twin.id, uuid.uuid4(), deps)) == (
        "version_not_found"
    )
    assert code_of(lambda: activate_version(stranger.user_id, twin.id, v1.id, deps)) == (
        "twin_not_found"
    )
    assert twin_of(deps, v1).active_job_id == v1.id


def test_concurrent_activations_end_with_one_of_them_active(deps: Deps) -> None:
    who = caller()
    v1 = trained(deps, who)
    twin = twin_of(deps, v1)
    versions = [v1] + [trained(deps, who, twin) for _ in range(3)]
    barrier = threading.Barrier(20)

    def activate(job: Job) -> None:
        barrier.wait()
        activate_version(who.user_id, twin.id, job.id, deps)

    threads = [threading.Thread(target=activate, args=(versions[i % 4],)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    active = twin_of(deps, v1).active_job_id
    assert active in {v.id for v in versions}
    assert get_twin(who.user_id, twin.id, deps).twin.active_job_id == active
    assert [t.twin.active_job_id for t in list_twins(who.user_id, deps)] == [active]


# --- manage -------------------------------------------------------------------------------------


def test_rename_and_recustomise_without_retraining(deps: Deps) -> None:
    who = caller()
    twin = twin_of(deps, trained(deps, who))
    view = update_twin(who.user_id, twin.id, {"name": " Blaze ", "customizationData": {}}, deps)
    assert (view.twin.name, view.twin.customization_data) == ("Blaze", {})
    assert code_of(lambda: update_twin(who.user_id, twin.id, {"name": ""}, deps)) == (
        "missing_field"
    )
    assert code_of(lambda: update_twin(who.user_id, twin.id, {"colour": "red"}, deps)) == (
        "invalid_field"
    )
    # The next version is trained with the new name.
    assert upload_multipart(who, form(twinId=str(twin.id)), deps).furrsona_name == "Blaze"


def test_the_active_version_is_not_deleted_on_its_own(deps: Deps) -> None:
    who = caller()
    v1 = trained(deps, who)
    twin = twin_of(deps, v1)
    v2 = trained(deps, who, twin)
    assert code_of(lambda: delete_job(who.user_id, v2.id, deps)) == "version_active"
    assert deps.jobs.get(v2.id).deletion_requested_at is None  # type: ignore[union-attr]
    deleted = delete_job(who.user_id, v1.id, deps)
    assert deleted.deleted_at is not None
    assert [j.version for j in get_twin(who.user_id, twin.id, deps).versions] == [2]


def test_deleting_a_twin_deletes_every_version_and_anonymises_it(deps: Deps) -> None:
    who = caller()
    v1 = trained(deps, who)
    twin = twin_of(deps, v1)
    v2 = trained(deps, who, twin)
    running = start_training(
        who.user_id,
        create_job_with_photos(
            who,
            VersionPlan(twin.name, {}, twin_of(deps, v1)),
            normalise_all(PHOTOS, deps.settings),
            deps,
        ).id,
        deps,
    )
    gone = delete_twin(who.user_id, twin.id, deps)
    assert gone.deleted_at is not None and gone.name == "(deleted)" and gone.active_job_id is None
    trainer = deps.trainer
    assert isinstance(trainer, FakeTrainer)
    assert trainer.trainings[running.replicate_training_id or ""].status == "canceled"
    assert set(trainer.deleted_versions) == {v1.replicate_model_version, v2.replicate_model_version}
    for job in (v1, v2, running):
        assert deps.jobs.get(job.id).deleted_at is not None  # type: ignore[union-attr]
    assert deps.photos.objects == {}  # type: ignore[attr-defined]
    assert list_twins(who.user_id, deps) == []
    assert code_of(lambda: get_twin(who.user_id, twin.id, deps)) == "twin_not_found"
    assert delete_twin(who.user_id, twin.id, deps) == gone  # the same answer again


def test_a_twin_deletion_that_replicate_interrupts_is_finished_by_the_sweep(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = caller()
    v1 = trained(deps, who)

    def down(*_: object) -> None:
        raise UpstreamError("Replicate failed")

    with monkeypatch.context() as patch:
        patch.setattr(deps.trainer, "delete_model_version", down)
        pending = delete_twin(who.user_id, v1.twin_id, deps)  # type: ignore[arg-type]
        assert pending.deletion_requested_at is not None and pending.deleted_at is None
    report = sweep_all(deps, Deadline(30))
    assert report["twins"]["deletions_finished"] == 1, report
    assert twin_of(deps, v1).deleted_at is not None


def test_an_upload_that_cannot_remove_its_unanswered_row_keeps_it_whole(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert's answer is lost and the removal fails too: the row may stand, so its photos
    stay with it (a pending version the owner can start), and the retry is told the twin has a
    version on its way."""
    who = caller()
    twin = twin_of(deps, trained(deps, who))
    landed = deps.jobs.insert

    def insert_then_lose_the_answer(row: dict) -> Job:
        landed(row)
        raise UpstreamError("The database did not answer.")

    def refuse(job_id: object) -> None:
        raise UpstreamError("The database did not answer.")

    monkeypatch.setattr(deps.jobs, "insert", insert_then_lose_the_answer)
    monkeypatch.setattr(deps.jobs, "delete", refuse)
    jobs_before = set(deps.jobs.rows)  # type: ignore[attr-defined]
    with pytest.raises(UpstreamError):
        upload_multipart(who, form(twinId=str(twin.id)), deps)
    [standing] = set(deps.jobs.rows) - jobs_before  # type: ignore[attr-defined]
    job = deps.jobs.get(standing)
    assert job is not None and job.status is JobStatus.PENDING and job.photo_urls
    photos = deps.photos
    assert isinstance(photos, InMemoryPhotoStore)
    assert all(path in photos.objects for path in job.photo_urls)
    monkeypatch.setattr(deps.jobs, "insert", landed)
    with pytest.raises(AppError) as refused:
        upload_multipart(who, form(twinId=str(twin.id)), deps)
    assert refused.value.code == "twin_busy"
