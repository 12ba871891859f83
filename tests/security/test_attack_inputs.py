"""No input gets a 5xx (issue 14.4): the inputs that used to answer 500, over real HTTP, each
refused with a fitting 4xx in the error envelope; names a person could not read refused with 422;
a method a path does not have answers 405 with `Allow`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from tests.security.attacks import (
    JSON_ROUTES,
    ROUTES,
    STATUS,
    UPLOAD,
    Route,
    bearer,
    deliver,
    each,
    error_of,
    hmac_token,
    user_claims,
    webhook_headers,
)
from tests.stack_fixtures import User

DEEP = 20_000  # far past Python's recursion limit, within the 64 KB body cap


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def photos(count: int = 3) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("photos", (f"p{i}.jpg", make_photo(640, 640, seed=900 + i), "image/jpeg"))
        for i in range(count)
    ]


def rows_of(stack: LocalStack, user_id: str) -> list[Any]:
    assert stack.pg is not None
    with psycopg.connect(stack.pg.dsn()) as db:
        jobs = db.execute(
            "select id from ai_training_jobs where user_id = %s", [user_id]
        ).fetchall()
        twins = db.execute("select id from twins where user_id = %s", [user_id]).fetchall()
        objects = db.execute(
            "select name from storage.objects where bucket_id = 'training-photos' and name like %s",
            [f"{user_id}/%"],
        ).fetchall()
    return [*jobs, *twins, *objects]


def twins_of(stack: LocalStack, user_id: str) -> list[dict[str, Any]]:
    assert stack.pg is not None
    with (
        psycopg.connect(stack.pg.dsn()) as db,
        db.cursor(row_factory=psycopg.rows.dict_row) as cur,
    ):
        cur.execute("select * from twins where user_id = %s", [user_id])
        return cur.fetchall()


def envelope(response: httpx.Response) -> tuple[int, str]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return error_of(response)


def raw_json_call(
    route: Route, http: httpx.Client, stack: LocalStack, user: User, body: str
) -> httpx.Response:
    url = stack.url(route.function) + route.path.format(job=uuid.uuid4(), twin=uuid.uuid4())
    headers = {**user.headers, "content-type": "application/json"}
    return http.request(route.method, url, headers=headers, content=body.encode())


JSON_BODY_ROUTES = [r for r in ROUTES if r.json_body and r.method in ("POST", "PUT", "PATCH")]


@pytest.mark.parametrize("route", each(JSON_BODY_ROUTES))
def test_deep_json_bodies_are_refused_on_every_json_route(
    route: Route, http: httpx.Client, stack: LocalStack, user: User
) -> None:
    answer = envelope(raw_json_call(route, http, stack, user, deep_json()))
    assert answer == (400, "invalid_json")
    # Deep inside an object too (the depth counts every level, not only the outer one).
    nested = '{"jobId": ' + deep_json() + "}"
    assert envelope(raw_json_call(route, http, stack, user, nested)) == (400, "invalid_json")
    assert rows_of(stack, user.id) == []


@pytest.mark.parametrize(
    "customization",
    [
        pytest.param(deep_json(5000), id="deep"),
        pytest.param('{"type": ' + deep_json(5000) + "}", id="deep-inside"),
        pytest.param('{"type": NaN}', id="nan"),
        pytest.param('{"type": Infinity}', id="infinity"),
        pytest.param('{"type": -Infinity}', id="minus-infinity"),
        pytest.param('{"type": "fox\\u0000"}', id="nul-escaped"),
        pytest.param('{"type\\u0000": "fox"}', id="nul-in-key"),
        pytest.param('{"type": "\\ud800"}', id="lone-surrogate"),
    ],
)
@pytest.mark.parametrize("flow", ["multipart", "signed"])
def test_hostile_customization_data_is_refused(
    customization: str, flow: str, http: httpx.Client, stack: LocalStack, user: User
) -> None:
    if flow == "multipart":
        response = http.post(
            stack.url(UPLOAD),
            headers=user.headers,
            data={"fursonaName": "Ember", "customizationData": customization},
            files=photos(),
        )
    else:
        body = (
            '{"fursonaName": "Ember", "photos": [{"filename": "a.jpg", "contentType": '
            '"image/jpeg", "size": 1000}, {"filename": "b.jpg", "contentType": "image/jpeg",'
            ' "size": 1000}, {"filename": "c.jpg", "contentType": "image/jpeg", "size": 1000}],'
            ' "customizationData": ' + json.dumps(customization) + "}"
        )
        response = http.post(
            stack.url(UPLOAD) + "uploads",
            headers={**user.headers, "content-type": "application/json"},
            content=body.encode(),
        )
    status, code = envelope(response)
    assert (status, code) in {(400, "invalid_json"), (422, "invalid_field")}
    assert rows_of(stack, user.id) == []


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("\\ud800", id="lone-high-surrogate"),
        pytest.param("Ember\\udfff", id="lone-low-surrogate"),
        pytest.param("Em\\u0000ber", id="nul"),
        pytest.param("\\u200b\\u200b\\u200b", id="zero-width-only"),
        pytest.param("\\u2800\\u3164", id="blank-braille-hangul-filler-only"),
        pytest.param("\\u00ad\\u2060\\ufeff", id="format-characters-only"),
        pytest.param("Em\\u007fber", id="delete"),
        pytest.param("Em\\u0085ber", id="c1-control"),
        pytest.param("Ember\\u202egpj.exe", id="bidi-override"),
        pytest.param("\\u2066Ember\\u2069", id="bidi-isolate"),
        pytest.param("Ember\\u200f", id="rtl-mark"),
    ],
)
@pytest.mark.parametrize("where", ["uploads", "multipart", "rename"])
def test_names_a_person_cannot_read_are_refused(
    name: str, where: str, http: httpx.Client, stack: LocalStack, user: User
) -> None:
    if where == "multipart":
        value = json.loads(f'"{name}"')
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            pytest.skip("a form field is bytes: a lone surrogate cannot be sent as UTF-8")
        response = http.post(
            stack.url(UPLOAD),
            headers=user.headers,
            data={"fursonaName": value},
            files=photos(),
        )
    elif where == "uploads":
        body = (
            '{"fursonaName": "' + name + '", "photos": [{"filename": "a.jpg", "contentType": '
            '"image/jpeg", "size": 1000}, {"filename": "b.jpg", "contentType": "image/jpeg",'
            ' "size": 1000}, {"filename": "c.jpg", "contentType": "image/jpeg", "size": 1000}]}'
        )
        response = http.post(
            stack.url(UPLOAD) + "uploads",
            headers={**user.headers, "content-type": "application/json"},
            content=body.encode(),
        )
    else:
        made = http.post(
            stack.url(UPLOAD), headers=user.headers, data={"fursonaName": "Ember"}, files=photos()
        )
        assert made.status_code == 201, made.text
        twin_id = made.json()["twinId"]
        response = http.patch(
            stack.url(STATUS) + f"twins/{twin_id}",
            headers={**user.headers, "content-type": "application/json"},
            content=('{"name": "' + name + '"}').encode(),
        )
    status, code = envelope(response)
    assert (status, code) in {(422, "invalid_field"), (400, "invalid_json")}, (status, code)
    if where == "rename":
        assert {t["name"] for t in twins_of(stack, user.id)} == {"Ember"}
    else:
        assert rows_of(stack, user.id) == []


def test_emoji_and_scripts_stay_welcome_in_names(
    http: httpx.Client, stack: LocalStack, user: User
) -> None:
    name = "Ëmber 🦊‍🔥 لهب"  # a ZWJ sequence and a right-to-left script, no override
    response = http.post(
        stack.url(UPLOAD),
        headers=user.headers,
        data={"fursonaName": name},
        files=photos(),
    )
    assert response.status_code == 201, response.text


def delete_account(stack: LocalStack, user: User) -> None:
    assert stack.pg is not None
    with psycopg.connect(stack.pg.dsn()) as db:
        db.execute("delete from auth.users where id = %s", [user.id])


@pytest.mark.parametrize("route", each(ROUTES))
def test_a_valid_token_of_a_deleted_account_gets_no_5xx(
    route: Route, http: httpx.Client, stack: LocalStack, make_user
) -> None:
    gone = make_user()
    delete_account(stack, gone)
    response = route.call(http, stack, gone.headers, str(uuid.uuid4()))
    if response.status_code == 200:  # the lists: nothing of theirs
        assert route.method == "GET" and not any(response.json().values())
    else:
        envelope(response)
    assert rows_of(stack, gone.id) == []


def test_a_deleted_account_cannot_create_anything(
    http: httpx.Client, stack: LocalStack, make_user
) -> None:
    gone = make_user()
    delete_account(stack, gone)
    response = http.post(
        stack.url(UPLOAD), headers=gone.headers, data={"fursonaName": "Ember"}, files=photos()
    )
    assert envelope(response) == (401, "invalid_token")
    assert rows_of(stack, gone.id) == []


@pytest.mark.parametrize("digits", [30, 300, 400, 5000])
def test_a_webhook_timestamp_of_many_digits_is_refused(
    digits: int, http: httpx.Client, stack: LocalStack
) -> None:
    assert stack.replicate is not None
    body = b'{"id": "x", "status": "processing"}'
    headers = webhook_headers(stack.replicate.webhook_secret, body)
    headers["webhook-timestamp"] = "9" * digits
    status, code = envelope(deliver(http, stack, str(uuid.uuid4()), body, headers))
    assert (status, code) in {(400, "bad_webhook"), (401, "stale_webhook")}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(deep_json().encode(), id="deep-array"),
        pytest.param(('{"id": "x", "input": ' + deep_json() + "}").encode(), id="deep-inside"),
    ],
)
def test_a_signed_webhook_with_a_deep_body_is_refused(
    body: bytes, http: httpx.Client, stack: LocalStack
) -> None:
    assert stack.replicate is not None
    headers = webhook_headers(stack.replicate.webhook_secret, body, timestamp=int(time.time()))
    assert envelope(deliver(http, stack, str(uuid.uuid4()), body, headers)) == (400, "bad_webhook")


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@pytest.mark.parametrize("route", each(ROUTES))
def test_a_method_a_path_does_not_have_answers_405_with_allow(
    route: Route, http: httpx.Client, stack: LocalStack, user: User
) -> None:
    url = stack.url(route.function) + route.path.format(job=uuid.uuid4(), twin=uuid.uuid4())
    allowed = {r.method for r in ROUTES if (r.function, r.path) == (route.function, route.path)}
    if route.function == STATUS and route.path == "":
        allowed.add("POST")  # the status POST is at the same path
    for method in METHODS:
        if method in allowed:
            continue
        response = http.request(method, url, headers=user.headers)
        assert envelope(response) == (405, "method_not_allowed"), method
        assert set(response.headers["allow"].replace(" ", "").split(",")) >= allowed


def test_an_unknown_path_still_answers_404(http: httpx.Client, stack: LocalStack, user: User):
    response = http.put(stack.url(STATUS) + "no/such/path", headers=user.headers)
    assert envelope(response) == (404, "route_not_found")


def test_forged_token_for_a_user_that_never_existed_is_refused(
    http: httpx.Client, stack: LocalStack
) -> None:
    assert stack.jwt_secret is not None
    ghost = str(uuid.uuid4())
    token = hmac_token(stack.jwt_secret.encode(), user_claims(stack, ghost))
    for route in JSON_ROUTES:
        response = route.call(http, stack, bearer(token), str(uuid.uuid4()))
        envelope(response)
    assert rows_of(stack, ghost) == []
