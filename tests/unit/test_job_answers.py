"""What status answers tell a frontend beyond the status: why a job failed (a code on every
failure), when to ask again, and the owner's job list a page at a time."""

from __future__ import annotations

import ast
import base64
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.domain.job import FailureCode, Job, JobStatus, poll_after_seconds
from shared.errors import AppError
from shared.ports import JobPosition
from shared.services.deps import Deps
from shared.services.listing import decode_cursor, encode_cursor, list_jobs
from shared.services.signed_upload import discard_job
from tests.fakes import InMemoryPhotoStore

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_every_failure_is_written_with_its_code() -> None:
    """A job is failed only through `failed(code, message)`: no dict or keyword in shared/ sets
    the status to failed by hand (and so without a code)."""
    by_hand = []
    for path in sorted((REPO / "shared").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            values: list[tuple[ast.expr | None, ast.expr]] = []
            if isinstance(node, ast.Dict):
                values = list(zip(node.keys, node.values, strict=True))
            elif isinstance(node, ast.Call):
                values = [(ast.Constant(k.arg), k.value) for k in node.keywords if k.arg]
            for key, value in values:
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "status"
                    and ast.unparse(value) == "JobStatus.FAILED"
                    and path.name != "job.py"
                ):
                    by_hand.append(f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}")
    assert by_hand == []


def test_a_refused_upload_that_cannot_be_removed_fails_as_photos_refused(deps: Deps) -> None:
    class BrokenRemove(InMemoryPhotoStore):
        def remove(self, paths: list[str]) -> None:
            raise RuntimeError("storage down")

    owner, job_id = uuid.uuid4(), uuid.uuid4()
    job = deps.jobs.insert(
        {
            "id": job_id,
            "user_id": owner,
            "furrsona_name": "Ember",
            "status": "uploading",
            "progress": 0,
            "photo_urls": [f"{owner}/{job_id}/upload/01"],
        }
    )
    discard_job(job, dataclasses.replace(deps, photos=BrokenRemove()))
    kept = deps.jobs.get(job_id)
    assert kept is not None and kept.status is JobStatus.FAILED
    assert kept.failure_code is FailureCode.PHOTOS_REFUSED


def job_in(status: JobStatus, last_checked: timedelta | None = None) -> Job:
    return Job(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        furrsona_name="Ember",
        status=status,
        progress=30,
        created_at=NOW,
        updated_at=NOW,
        last_checked_at=None if last_checked is None else NOW - last_checked,
    )


@pytest.mark.parametrize(
    ("job", "refresh", "wait"),
    [
        (job_in(JobStatus.COMPLETED), 5.0, None),  # final: nothing more to poll for
        (job_in(JobStatus.FAILED), 5.0, None),
        (job_in(JobStatus.TRAINING, timedelta(seconds=2)), 5.0, 3),  # what is left of the interval
        (job_in(JobStatus.TRAINING, timedelta(seconds=1.5)), 5.0, 4),  # rounded up
        (job_in(JobStatus.TRAINING, timedelta(seconds=30)), 5.0, 1),  # due now: never below 1 s
        (job_in(JobStatus.TRAINING), 5.0, 5),  # never read yet
        (job_in(JobStatus.PENDING, timedelta(seconds=4)), 5.0, 5),  # moves on the owner's call
        (job_in(JobStatus.UPLOADING), 60.0, 60),
        (job_in(JobStatus.TRAINING, timedelta(seconds=1)), 0.0, 1),
    ],
)
def test_when_to_ask_again(job: Job, refresh: float, wait: int | None) -> None:
    assert poll_after_seconds(job, refresh, NOW) == wait


def new_jobs(deps: Deps, owner: uuid.UUID, count: int) -> list[Job]:
    made = []
    for minutes in range(count):
        job_id = uuid.uuid4()
        made.append(
            deps.jobs.insert(
                {
                    "id": job_id,
                    "user_id": owner,
                    "furrsona_name": f"Twin {minutes}",
                    "status": "pending",
                    "progress": 20,
                    "created_at": NOW + timedelta(minutes=minutes),
                }
            )
        )
    return made


def test_the_list_pages_through_every_job_newest_first(deps: Deps) -> None:
    owner = uuid.uuid4()
    made = new_jobs(deps, owner, 5)
    new_jobs(deps, uuid.uuid4(), 2)  # someone else's
    seen, cursor, pages = [], None, 0
    while True:
        page = list_jobs(owner, "2", cursor, deps)
        seen += [job.job_id for job in page.jobs]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [job.id for job in reversed(made)] and pages == 3
    first = list_jobs(owner, None, None, deps)
    assert first.next_cursor is None and first.jobs[0].fursona_name == "Twin 4"
    assert "claimToken" not in first.jobs[0].model_dump(by_alias=True)  # public fields only


@pytest.mark.parametrize("limit", ["0", "101", "-1", "2.5", "ten", " 3"])
def test_a_limit_out_of_range_is_refused(deps: Deps, limit: str) -> None:
    with pytest.raises(AppError) as refused:
        list_jobs(uuid.uuid4(), limit, None, deps)
    assert (refused.value.status, refused.value.code) == (422, "invalid_field")
    assert "1 to 100" in refused.value.message


@pytest.mark.parametrize(
    "cursor",
    [
        "nonsense",
        "%%%",
        base64.urlsafe_b64encode(b'["2026-12-04T12:00:00", "x"]').decode(),
        base64.urlsafe_b64encode(
            b'["2026-12-04T12:00:00", "' + str(uuid.uuid4()).encode() + b'"]'
        ).decode(),  # no time zone
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        "é",
    ],
)
def test_a_cursor_we_did_not_give_out_is_refused(deps: Deps, cursor: str) -> None:
    with pytest.raises(AppError) as refused:
        list_jobs(uuid.uuid4(), None, cursor, deps)
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


def test_a_cursor_round_trips() -> None:
    position = JobPosition(NOW, uuid.uuid4())
    assert decode_cursor(encode_cursor(position)) == position
