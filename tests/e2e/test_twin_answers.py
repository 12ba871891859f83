"""The twin routes' refusals over HTTP, each with its code: a retrain of a twin that cannot take
one (both upload paths), a bad rename, an activation of a version that cannot be active."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack
from tests.e2e.conftest import User, photo_files

STATUS = "check_training_status"
UPLOAD = "upload_training_photos"
DECLARED = [
    {"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": 200_000} for i in range(3)
]


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def new_twin(stack: LocalStack, http: httpx.Client, user: User) -> dict[str, Any]:
    """A twin whose version 1 is pending (uploaded, not started)."""
    response = http.post(
        stack.url(UPLOAD),
        headers=user.headers,
        data={"fursonaName": "Ember", "customizationData": json.dumps({"type": "fox"})},
        files=photo_files(3),
    )
    assert response.status_code == 201, response.text
    return response.json()


def retrain_multipart(
    stack: LocalStack, http: httpx.Client, user: User, twin_id: str
) -> httpx.Response:
    return http.post(
        stack.url(UPLOAD), headers=user.headers, data={"twinId": twin_id}, files=photo_files(3)
    )


def retrain_signed(
    stack: LocalStack, http: httpx.Client, user: User, twin_id: str
) -> httpx.Response:
    return http.post(
        stack.url(UPLOAD) + "uploads",
        headers=user.headers,
        json={"twinId": twin_id, "photos": DECLARED},
    )


@pytest.mark.parametrize(
    "retrain", [retrain_multipart, retrain_signed], ids=["multipart", "signed"]
)
def test_a_retrain_of_a_twin_that_cannot_take_one_is_refused_on_both_paths(
    stack: LocalStack, http: httpx.Client, user: User, make_user: Any, retrain: Any
) -> None:
    busy = new_twin(stack, http, user)  # its version 1 is still pending
    assert error_of(retrain(stack, http, user, busy["twinId"])) == (409, "twin_busy")
    assert error_of(retrain(stack, http, user, "twin-1")) == (400, "invalid_twin_id")
    assert error_of(retrain(stack, http, user, str(uuid.uuid4()))) == (404, "twin_not_found")
    stranger = make_user()
    assert error_of(retrain(stack, http, stranger, busy["twinId"])) == (404, "twin_not_found")
    gone = new_twin(stack, http, user)
    deleted = http.delete(stack.url(STATUS) + f"twins/{gone['twinId']}", headers=user.headers)
    assert deleted.status_code in (200, 202), deleted.text
    assert error_of(retrain(stack, http, user, gone["twinId"])) == (409, "twin_deleting")


def test_a_rename_says_what_to_fix(stack: LocalStack, http: httpx.Client, user: User) -> None:
    twin = new_twin(stack, http, user)["twinId"]
    url = stack.url(STATUS) + f"twins/{twin}"
    bad_json = http.patch(url, headers={**user.headers, "content-type": "application/json"},
                          content=b"{nope")  # fmt: skip
    assert error_of(bad_json) == (400, "invalid_json")
    assert error_of(http.patch(url, headers=user.headers, json={"name": " "})) == (
        400,
        "missing_field",
    )
    assert error_of(http.patch(url, headers=user.headers, json={"colour": "red"})) == (
        422,
        "invalid_field",
    )
    renamed = http.patch(url, headers=user.headers, json={"name": "Blaze"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Blaze"


def test_only_a_completed_version_of_this_twin_can_be_activated(
    stack: LocalStack, http: httpx.Client, user: User
) -> None:
    twin = new_twin(stack, http, user)
    url = stack.url(STATUS) + f"twins/{twin['twinId']}/active"
    pending = twin["jobId"]
    assert error_of(http.put(url, headers=user.headers, json={"jobId": pending})) == (
        409,
        "version_not_ready",
    )
    other = new_twin(stack, http, user)["jobId"]  # a version of another twin
    assert error_of(http.put(url, headers=user.headers, json={"jobId": other})) == (
        404,
        "version_not_found",
    )
    assert error_of(http.put(url, headers=user.headers, json={})) == (400, "missing_field")
    assert error_of(http.put(url, headers=user.headers, json={"jobId": "x"})) == (
        400,
        "invalid_job_id",
    )
    extra = http.put(url, headers=user.headers, json={"jobId": pending, "colour": "red"})
    assert error_of(extra) == (422, "invalid_field")
    bad_json = http.put(url, headers={**user.headers, "content-type": "application/json"},
                        content=b"[1")  # fmt: skip
    assert error_of(bad_json) == (400, "invalid_json")
