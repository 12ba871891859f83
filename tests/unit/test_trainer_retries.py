"""ReplicateTrainer's POSTs under failures, with the real `replicate` client over a mock transport:
a POST is repeated only where that is safe or has been made safe (reference/replicate.md §7)."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import replicate

from shared.adapters.replicate import ReplicateTrainer
from shared.errors import UpstreamError
from shared.plumbing.deadline import Deadline
from tests.unit.helpers import make_settings

BASE = "http://replicate.test"
ZIP = b"PK\x03\x04 not really a zip, but bytes with a checksum"
Fault = Callable[[httpx.Request], httpx.Response | None]


class FakeReplicate:
    """Just enough of the API: trainings and files, newest first, and a fault per POST."""

    def __init__(self) -> None:
        self.trainings: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.log: list[str] = []  # "POST /v1/files", "GET /v1/trainings", ...
        self.post_faults: list[Fault] = []  # consumed one per POST

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.log.append(f"{request.method} {path}")
        if request.method == "POST":
            fault = self.post_faults.pop(0) if self.post_faults else None
            if fault is not None and (response := fault(request)) is not None:
                return response  # refused before anything happened
            created = self._create(request)
            if fault is not None:
                raise httpx.ReadTimeout("the answer was lost", request=request)
            return httpx.Response(201, json=created)
        if path == "/v1/trainings":
            return httpx.Response(200, json={"next": None, "results": self.trainings[::-1]})
        if path == "/v1/files":
            return httpx.Response(200, json={"next": None, "results": self.files[::-1]})
        return httpx.Response(404, json={"detail": "Not found"})

    def _create(self, request: httpx.Request) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        if request.url.path == "/v1/files":
            content = request.content
            file_id = uuid.uuid4().hex
            metadata = json.loads(content.split(b'name="metadata"\r\n\r\n')[1].split(b"\r\n")[0])
            data = ZIP if ZIP in content else b""
            created = {
                "id": file_id,
                "urls": {"get": f"{BASE}/v1/files/{file_id}"},
                "metadata": metadata,
                "checksums": {"sha256": hashlib.sha256(data).hexdigest()},
                "created_at": now,
            }
            self.files.append(created)
            return created
        body = json.loads(request.content)
        created = {
            "id": uuid.uuid4().hex[:26],
            "status": "starting",
            "input": body["input"],
            "created_at": now,
        }
        self.trainings.append(created)
        return created

    def count(self, entry: str) -> int:
        return self.log.count(entry)


def refuse(status: int, retry_after: str = "0") -> Fault:
    return lambda request: httpx.Response(
        status, headers={"Retry-After": retry_after}, json={"detail": "try again"}
    )


def lose_answer(request: httpx.Request) -> None:
    return None  # carried out, then the answer is lost (a read timeout)


def never_arrives(kind: type[httpx.TransportError]) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise kind("no answer", request=request)

    return fault


def answer(status: int) -> Fault:
    return lambda request: httpx.Response(status, json={"detail": "upstream trouble"})


@pytest.fixture
def fake() -> FakeReplicate:
    return FakeReplicate()


def trainer_for(fake: FakeReplicate, deadline: float = 30.0, **settings: Any) -> ReplicateTrainer:
    client = replicate.Client(api_token="r8_test", base_url=BASE)
    client._Client__client = httpx.Client(  # type: ignore[attr-defined]
        base_url=BASE, transport=httpx.MockTransport(fake.handle), timeout=httpx.Timeout(30.0)
    )
    return ReplicateTrainer(lambda: client, make_settings(**settings), Deadline(deadline))


ZIP_URL = f"{BASE}/v1/files/abc"
CREATE = "POST /v1/models/ostris/flux-dev-lora-trainer/versions/" + "a" * 64 + "/trainings"


def test_a_refused_create_is_repeated_only_after_looking_it_up(fake):
    fake.post_faults = [refuse(503)]
    training = trainer_for(fake).create_training(ZIP_URL, None)
    assert fake.log == [CREATE, "GET /v1/trainings", CREATE]
    assert [t["id"] for t in fake.trainings] == [training.id]


def test_a_throttled_create_is_not_repeated_and_says_how_long_to_wait(fake):
    """A 429 on a create holds every admission back (the queue's shared hold) instead."""
    fake.post_faults = [refuse(429, retry_after="17")]
    with pytest.raises(UpstreamError) as refused:
        trainer_for(fake).create_training(ZIP_URL, None)
    assert refused.value.code == "upstream_throttled" and refused.value.retry_after == 17.0
    assert fake.log == [CREATE] and fake.trainings == []


def test_a_create_whose_answer_was_lost_is_adopted_not_repeated(fake):
    fake.post_faults = [lose_answer]
    training = trainer_for(fake).create_training(ZIP_URL, None)
    assert fake.count(CREATE) == 1 and [t["id"] for t in fake.trainings] == [training.id]


@pytest.mark.parametrize(
    "fault",
    [
        never_arrives(httpx.ReadTimeout),
        never_arrives(httpx.RemoteProtocolError),
        answer(500),
        answer(502),
        answer(504),
    ],
)
def test_an_ambiguous_create_failure_is_never_repeated(fake, fault):
    # Nothing listed yet, but the POST may still land: only the claim's resumer may try again.
    fake.post_faults = [fault]
    with pytest.raises(UpstreamError):
        trainer_for(fake).create_training(ZIP_URL, None)
    assert fake.count(CREATE) == 1 and fake.trainings == []


def test_a_create_is_not_repeated_past_a_third_of_the_claim_timeout(fake):
    # A resumer may take the claim over after the claim timeout; our last POST must be long gone.
    fake.post_faults = [refuse(429, retry_after="2")]
    with pytest.raises(UpstreamError) as raised:
        trainer_for(fake, claim_timeout_seconds=3).create_training(ZIP_URL, None)
    assert raised.value.code == "upstream_throttled"
    assert fake.count(CREATE) == 1


def test_an_upload_whose_answer_was_lost_is_found_not_repeated(fake):
    fake.post_faults = [lose_answer]
    uploaded = trainer_for(fake).upload_zip(io.BytesIO(ZIP), "job.zip", "job-1")
    assert fake.log == ["POST /v1/files", "GET /v1/files"]
    assert [f["id"] for f in fake.files] == [uploaded.id]


def test_a_refused_upload_is_repeated_once_nothing_is_found(fake):
    fake.post_faults = [refuse(503)]
    uploaded = trainer_for(fake).upload_zip(io.BytesIO(ZIP), "job.zip", "job-1")
    assert fake.log == ["POST /v1/files", "GET /v1/files", "POST /v1/files"]
    assert [f["id"] for f in fake.files] == [uploaded.id]


def test_another_jobs_file_is_never_adopted(fake):
    trainer = trainer_for(fake)
    other = trainer.upload_zip(io.BytesIO(ZIP), "other.zip", "job-2")
    fake.post_faults = [refuse(503)]
    mine = trainer.upload_zip(io.BytesIO(ZIP), "job.zip", "job-1")
    assert mine.id != other.id and len(fake.files) == 2


def test_no_request_may_wait_past_the_deadline():
    timeouts: list[dict[str, float]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200, json={"next": None, "results": []})

    fake = FakeReplicate()
    fake.handle = handle  # type: ignore[method-assign]
    trainer_for(fake, deadline=2.0).find_training(ZIP_URL, datetime.now(UTC))
    assert timeouts and all(0 < limit <= 2.0 for limit in timeouts[0].values())
