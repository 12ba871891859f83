"""The hostile-input corpus (tests/corpus/inputs.py) through both upload paths, end to end: real
HTTP to the local Function URL and, for the signed flow, real PUTs to the Storage emulator.

Every refused case asserts its documented status and code, and that the user has no row in
`ai_training_jobs` and no object in the bucket afterwards (read with the real supabase client).
Every accepted case asserts that only `NN.jpg` JPEGs without metadata are stored.
The request-level faults of each path (form fields, JSON body, declared sizes) follow.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from devstack.stack import LocalStack
from supabase import Client
from tests.corpus.inputs import ACCEPTED, REFUSED, MiB, goods
from tests.corpus.upload_paths import (
    BUCKET,
    FIELDS,
    UPLOAD_PATHS,
    Photo,
    create_signed,
    nothing_left,
    objects_under,
    rows_of,
    service_client,
    upload_multipart,
)
from tests.stack_fixtures import User


@functools.cache
def refused_photos(case: str) -> list[Photo]:
    """Each input is built once for both paths."""
    return REFUSED[case].photos()


@functools.cache
def accepted_photos(case: str) -> list[Photo]:
    return ACCEPTED[case]()


@pytest.fixture(scope="module")
def sb(stack: LocalStack) -> Iterator[Client]:
    yield service_client(stack)


def test_the_corpus_is_big_enough() -> None:
    assert len(REFUSED) >= 30


@pytest.mark.parametrize("path", sorted(UPLOAD_PATHS))
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(
    case: str, path: str, stack: LocalStack, http: httpx.Client, user: User, sb: Client
) -> None:
    expected = REFUSED[case]
    outcome = UPLOAD_PATHS[path](stack, http, user, refused_photos(case))
    assert (outcome.status, outcome.error["code"]) == (expected.status, expected.code), (
        outcome.response.text
    )
    if expected.names_photo is not None:
        assert outcome.error["message"].startswith(f"Photo {expected.names_photo}")
    assert nothing_left(sb, user.id)


@pytest.mark.parametrize("path", sorted(UPLOAD_PATHS))
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_accepted(
    case: str, path: str, stack: LocalStack, http: httpx.Client, user: User, sb: Client
) -> None:
    photos = accepted_photos(case)
    outcome = UPLOAD_PATHS[path](stack, http, user, photos)
    assert outcome.status in (200, 201), outcome.response.text
    job = outcome.response.json()
    names = [f"0{i}.jpg" for i in range(1, len(photos) + 1)]
    assert job["status"] == "pending" and job["progress"] == 20
    assert job["photoUrls"] == [f"{user.id}/{job['jobId']}/{n}" for n in names]
    # Only the normalised photos: no raw upload, no name of the person's choosing.
    assert objects_under(sb, user.id) == [job["jobId"]]
    assert sorted(objects_under(sb, f"{user.id}/{job['jobId']}")) == names
    for stored in job["photoUrls"]:
        data = sb.storage.from_(BUCKET).download(stored)
        img = Image.open(io.BytesIO(data))
        assert img.format == "JPEG" and img.mode == "RGB"
        assert not img.getexif() and b"Exif" not in data and b"PK\x03\x04" not in data


# --- request-level faults, per path ----------------------------------------------------------


def _multipart_raw(content_type: str, body: bytes) -> Callable[..., httpx.Response]:
    def send(stack: LocalStack, http: httpx.Client, user: User) -> httpx.Response:
        headers = {**user.headers, "content-type": content_type}
        return http.post(stack.url("upload_training_photos"), headers=headers, content=body)

    return send


def _multipart_fields(**fields: Any) -> Callable[..., httpx.Response]:
    def send(stack: LocalStack, http: httpx.Client, user: User) -> httpx.Response:
        return upload_multipart(stack, http, user, goods(3), **fields).response

    return send


MULTIPART_FAULTS: dict[str, tuple[Callable[..., httpx.Response], int, str]] = {
    "not_multipart": (_multipart_raw("application/json", b"{}"), 415, "unsupported_media_type"),
    "no_boundary": (_multipart_raw("multipart/form-data", b"--x\r\n"), 400, "bad_multipart"),
    "malformed_body": (
        _multipart_raw("multipart/form-data; boundary=abc", b"--abc\r\nno headers at all"),
        400,
        "bad_multipart",
    ),
    "missing_name": (_multipart_fields(fursonaName=None), 400, "missing_field"),
    "blank_name": (_multipart_fields(fursonaName="   "), 400, "missing_field"),
    "over_long_name": (_multipart_fields(fursonaName="x" * 101), 422, "invalid_field"),
    "name_with_control_characters": (_multipart_fields(fursonaName="a\x00b"), 422, "invalid_field"),
    "customization_not_json": (_multipart_fields(customizationData="{fox"), 400, "invalid_json"),
    "customization_a_list": (_multipart_fields(customizationData="[1]"), 422, "invalid_field"),
    "someone_elses_user_id": (
        _multipart_fields(userId="00000000-0000-0000-0000-000000000001"),
        403,
        "user_mismatch",
    ),
    "over_the_function_url_cap": (
        _multipart_raw(
            "multipart/form-data; boundary=abc",
            b"--abc\r\n" + b"\xff" * 4_200_000 + b"\r\n--abc--\r\n",
        ),
        413,
        "payload_too_large",
    ),
}


def _declared(**changes: Any) -> dict[str, Any]:
    photos = [{"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": MiB} for i in range(3)]
    return {**FIELDS, "photos": photos, **changes}


def _signed_body(body: Any) -> Callable[..., httpx.Response]:
    def send(stack: LocalStack, http: httpx.Client, user: User) -> httpx.Response:
        return create_signed(stack, http, user, body)

    return send


def _signed_raw(content: bytes) -> Callable[..., httpx.Response]:
    def send(stack: LocalStack, http: httpx.Client, user: User) -> httpx.Response:
        url = stack.url("upload_training_photos") + "uploads"
        return http.post(url, headers=user.headers, content=content)

    return send


def _one_declared(photo: Any) -> dict[str, Any]:
    return _declared(photos=[*_declared()["photos"][:2], photo])


SIGNED_FAULTS: dict[str, tuple[Callable[..., httpx.Response], int, str]] = {
    "body_not_json": (_signed_raw(b"{photos"), 400, "invalid_json"),
    "body_a_list": (_signed_raw(b"[]"), 400, "invalid_json"),
    "missing_name": (_signed_body(_declared(fursonaName=None)), 400, "missing_field"),
    "over_long_name": (_signed_body(_declared(fursonaName="x" * 101)), 422, "invalid_field"),
    "customization_not_json": (
        _signed_body(_declared(customizationData="{fox")),
        400,
        "invalid_json",
    ),
    "customization_a_number": (_signed_body(_declared(customizationData=7)), 422, "invalid_field"),
    "missing_photos": (_signed_body(_declared(photos=None)), 400, "missing_field"),
    "photos_not_a_list": (_signed_body(_declared(photos="a.jpg")), 422, "invalid_field"),
    "no_photos": (_signed_body(_declared(photos=[])), 422, "too_few_photos"),
    "size_missing": (_signed_body(_one_declared({"filename": "x.jpg"})), 422, "invalid_field"),
    "size_negative": (_signed_body(_one_declared({"size": -5})), 422, "invalid_field"),
    "size_a_string": (_signed_body(_one_declared({"size": "1000"})), 422, "invalid_field"),
    "size_zero": (_signed_body(_one_declared({"size": 0})), 422, "empty_file"),
    "photo_over_15_mb": (
        _signed_body(_one_declared({"size": 15 * MiB + 1})),
        413,
        "photo_too_large",
    ),
    "job_over_80_mb": (
        _signed_body(_declared(photos=[{"size": 14 * MiB}] * 6)),
        413,
        "photos_too_large",
    ),
    "someone_elses_user_id": (
        _signed_body(_declared(userId="00000000-0000-0000-0000-000000000001")),
        403,
        "user_mismatch",
    ),
}


@pytest.mark.parametrize("case", sorted(MULTIPART_FAULTS))
def test_multipart_request_faults(
    case: str, stack: LocalStack, http: httpx.Client, user: User, sb: Client
) -> None:
    send, status, code = MULTIPART_FAULTS[case]
    response = send(stack, http, user)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert nothing_left(sb, user.id)


@pytest.mark.parametrize("case", sorted(SIGNED_FAULTS))
def test_signed_request_faults(
    case: str, stack: LocalStack, http: httpx.Client, user: User, sb: Client
) -> None:
    send, status, code = SIGNED_FAULTS[case]
    response = send(stack, http, user)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert rows_of(sb, user.id) == [] and nothing_left(sb, user.id)
