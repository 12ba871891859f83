"""Answers a frontend can tell apart, over HTTP: why a job failed, when to ask again, a failed
job's start refused, the owner's job list, and our envelope for every body too large."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import psycopg
import pytest

from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from shared.contract import base, routes, status
from tests.corpus.upload_paths import FIELDS, complete_signed, create_signed, put_photo
from tests.e2e.conftest import User
from tests.e2e.test_flow import start, upload
from tests.security.attacks import deliver, insert_job, training_body, webhook_headers

STATUS_URL = "check_training_status"
PUBLIC_JOB_FIELDS = {
    "jobId",
    "twinId",
    "version",
    "fursonaName",
    "status",
    "phase",
    "phaseText",
    "progress",
    "modelVersion",
    "errorCode",
    "errorMessage",
    "estimatedCompletion",
    "createdAt",
    "completedAt",
}


def get_status(stack: LocalStack, http: httpx.Client, user: User, job_id: str) -> httpx.Response:
    return http.get(stack.url(STATUS_URL), headers=user.headers, params={"jobId": job_id})


def test_a_status_answer_says_when_to_ask_again_and_a_canceled_job_says_why(
    stack: LocalStack, http: httpx.Client, user: User
) -> None:
    job_id = upload(stack, http, user)["jobId"]
    pending = get_status(stack, http, user, job_id)
    body = pending.json()
    assert body["errorCode"] is None and body["retryAfterSeconds"] >= 1
    assert pending.headers["retry-after"] == str(body["retryAfterSeconds"])

    canceled = http.post(stack.url(STATUS_URL) + "cancel", headers=user.headers,
                         json={"jobId": job_id})  # fmt: skip
    assert canceled.status_code == 200
    assert canceled.json()["errorCode"] == "canceled_by_user"
    final = get_status(stack, http, user, job_id)
    assert final.json()["errorCode"] == "canceled_by_user"
    # A final job needs no polling: null, and no header.
    assert final.json()["retryAfterSeconds"] is None and "retry-after" not in final.headers

    refused = start(stack, http, user, job_id)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_failed"
    assert "Canceled by user." in refused.json()["error"]["message"]


def test_a_training_job_is_asked_again_when_its_refresh_interval_ends(
    stack: LocalStack, http: httpx.Client, user: User, refresh_every: Callable[[float], None]
) -> None:
    refresh_every(30)
    job_id = upload(stack, http, user)["jobId"]
    started = time.monotonic()
    assert start(stack, http, user, job_id).status_code == 202  # Replicate read just now
    answer = get_status(stack, http, user, job_id)
    assert answer.json()["status"] == "training"
    elapsed = time.monotonic() - started
    wait = answer.json()["retryAfterSeconds"]
    assert 30 - elapsed - 1 <= wait <= 30 and answer.headers["retry-after"] == str(wait)


def test_a_status_answer_exposes_retry_after_to_the_browser(
    stack: LocalStack, http: httpx.Client, user: User
) -> None:
    job_id = upload(stack, http, user)["jobId"]
    origin = stack.allowed_origins[0]
    answer = http.get(stack.url(STATUS_URL), params={"jobId": job_id},
                      headers={**user.headers, "Origin": origin})  # fmt: skip
    assert answer.headers["access-control-allow-origin"] == origin
    assert "retry-after" in answer.headers["access-control-expose-headers"].lower().split(",")


def list_jobs(stack: LocalStack, http: httpx.Client, user: User, **params: str) -> httpx.Response:
    return http.get(stack.url(STATUS_URL) + "jobs", headers=user.headers, params=params)


def test_the_owner_lists_their_jobs_newest_first_a_page_at_a_time(
    stack: LocalStack,
    http: httpx.Client,
    db: psycopg.Connection,
    make_user: object,
    user: User,
) -> None:
    other = make_user()  # type: ignore[operator]
    uploaded = upload(stack, http, user)["jobId"]
    planted = []
    for _ in range(4):
        time.sleep(0.002)  # distinct creation times, as people make them
        planted.append(insert_job(db, user.id))
    insert_job(db, other.id)  # never in the owner's list
    gone = planted.pop(0)
    assert http.delete(stack.url(STATUS_URL), headers=user.headers,
                       params={"jobId": gone}).status_code in (200, 202)  # fmt: skip

    seen, cursor = [], None
    while True:
        answer = list_jobs(stack, http, user, limit="2", **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert set(page) == {"jobs", "nextCursor"} and len(page["jobs"]) <= 2
        assert all(set(job) == PUBLIC_JOB_FIELDS for job in page["jobs"])
        seen += [job["jobId"] for job in page["jobs"]]
        if (cursor := page["nextCursor"]) is None:
            break
    assert seen == [*reversed(planted), uploaded]
    assert [job["jobId"] for job in list_jobs(stack, http, other).json()["jobs"]] != []
    assert uploaded not in [job["jobId"] for job in list_jobs(stack, http, other).json()["jobs"]]


@pytest.mark.parametrize(
    ("params", "refusal"),
    [
        ({"cursor": "not-ours"}, (400, "invalid_cursor")),
        ({"limit": "0"}, (422, "invalid_field")),
        ({"limit": str(routes.LIST_JOBS_LIMIT_MAX + 1)}, (422, "invalid_field")),
    ],
)
def test_a_bad_page_request_is_refused(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    params: dict[str, str],
    refusal: tuple[int, str],
) -> None:
    answer = list_jobs(stack, http, user, **params)
    assert (answer.status_code, answer.json()["error"]["code"]) == refusal


LIMITED = [route for route in routes.ROUTES if route.body_limit is not None]


@pytest.mark.parametrize("route", [pytest.param(r, id=r.operation_id) for r in LIMITED])
def test_a_body_over_what_the_route_takes_gets_our_envelope(
    stack: LocalStack, http: httpx.Client, user: User, route: routes.Route
) -> None:
    assert route.body_limit is not None
    path = route.path.replace("{jobId}", str(uuid.uuid4())).lstrip("/")
    kind = "multipart/form-data; boundary=x" if route.multipart else "application/json"
    answer = http.request(route.method, stack.url(route.function) + path,
                          headers={**user.headers, "content-type": kind},
                          content=b" " * (route.body_limit + 1))  # fmt: skip
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


# --------------------------------------------------------------------------- one problem, one code

JOB_BODY_ROUTES = [
    r for r in routes.ROUTES if r.body_model in (base.JobRequest, status.StatusRequest)
]


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        (b"[1]", (400, "invalid_json")),
        (b"{not json", (400, "invalid_json")),
        (b"{}", (400, "missing_field")),
        (b'{"jobId": "nope"}', (400, "invalid_job_id")),
        (b'{"jobId": "%(job)s", "colour": "red"}', (422, "invalid_field")),
        (b'{"jobId": "%(job)s", "userId": "not-a-uuid"}', (403, "user_mismatch")),
    ],
    ids=["not-an-object", "not-json", "no-job", "bad-job", "unknown-field", "foreign-user"],
)
@pytest.mark.parametrize("route", [pytest.param(r, id=r.operation_id) for r in JOB_BODY_ROUTES])
def test_the_same_problem_gets_the_same_code_on_every_job_route(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    route: routes.Route,
    body: bytes,
    refusal: tuple[int, str],
) -> None:
    sent = body % {b"job": str(uuid.uuid4()).encode()}
    answer = http.request(route.method, stack.url(route.function) + route.path.lstrip("/"),
                          headers={**user.headers, "content-type": "application/json"},
                          content=sent)  # fmt: skip
    assert (answer.status_code, answer.json()["error"]["code"]) == refusal


# --------------------------------------------------------------------------- codes seldom reached


def signed_job(stack: LocalStack, http: httpx.Client, user: User, sizes: list[int]) -> dict:
    photos = [{"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": size}
              for i, size in enumerate(sizes)]  # fmt: skip
    created = create_signed(stack, http, user, {**FIELDS, "photos": photos})
    assert created.status_code == 201, created.text
    return dict(created.json())


def photos(count: int, seed: int) -> list[bytes]:
    return [make_photo(640, 640, seed=seed + i) for i in range(count)]


def refusal_of(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


def test_complete_refuses_what_arrived_unlike_what_was_declared(
    stack: LocalStack, http: httpx.Client, user: User, function_settings: Callable[..., None]
) -> None:
    data = photos(3, seed=700)
    empty = signed_job(stack, http, user, [1000] * 3)
    for target, content in zip(empty["uploads"], [data[0], b"", data[2]], strict=True):
        assert put_photo(http, target, content).status_code == 200
    assert refusal_of(complete_signed(stack, http, user, empty["jobId"])) == (422, "empty_file")

    function_settings(PHOTO_MAX_BYTES=str(min(map(len, data)) - 1))
    large = signed_job(stack, http, user, [1000] * 3)
    for target, content in zip(large["uploads"], data, strict=True):
        assert put_photo(http, target, content).status_code == 200
    refused = refusal_of(complete_signed(stack, http, user, large["jobId"]))
    assert refused == (413, "photo_too_large")

    function_settings(PHOTO_MAX_BYTES=str(15 * 1024 * 1024),
                      PHOTOS_MAX_TOTAL_BYTES=str(sum(map(len, data)) - 1))  # fmt: skip
    total = signed_job(stack, http, user, [1000] * 3)
    for target, content in zip(total["uploads"], data, strict=True):
        assert put_photo(http, target, content).status_code == 200
    refused = refusal_of(complete_signed(stack, http, user, total["jobId"]))
    assert refused == (413, "photos_too_large")


def test_a_multipart_photo_over_the_per_photo_limit_is_413(
    stack: LocalStack, http: httpx.Client, user: User, function_settings: Callable[..., None]
) -> None:
    data = photos(3, seed=720)
    function_settings(PHOTO_MAX_BYTES=str(min(map(len, data)) - 1))
    files = [("photos", (f"p{i}.jpg", d, "image/jpeg")) for i, d in enumerate(data)]
    answer = http.post(stack.url(routes.UPLOAD), headers=user.headers, data=FIELDS, files=files)
    assert refusal_of(answer) == (413, "photo_too_large")


def test_an_upload_not_completed_cannot_start_and_a_canceled_one_cannot_complete(
    stack: LocalStack, http: httpx.Client, user: User
) -> None:
    job = signed_job(stack, http, user, [1000] * 3)
    assert refusal_of(start(stack, http, user, job["jobId"])) == (409, "upload_incomplete")
    canceled = http.post(stack.url(STATUS_URL) + "cancel", headers=user.headers,
                         json={"jobId": job["jobId"]})  # fmt: skip
    assert canceled.json()["errorCode"] == "canceled_by_user"
    assert refusal_of(complete_signed(stack, http, user, job["jobId"])) == (409, "upload_failed")
    not_json = http.post(stack.url(routes.UPLOAD) + f"uploads/{job['jobId']}/complete",
                         headers={**user.headers, "content-type": "application/json"},
                         content=b"[")  # fmt: skip
    assert refusal_of(not_json) == (400, "invalid_json")


def test_a_signed_webhook_for_a_job_nobody_has_is_404(
    stack: LocalStack, http: httpx.Client
) -> None:
    body = training_body("r" + uuid.uuid4().hex[:25])
    answer = deliver(http, stack, str(uuid.uuid4()), body,
                     webhook_headers(stack.webhook_secret, body))  # fmt: skip
    assert refusal_of(answer) == (404, "job_not_found")
