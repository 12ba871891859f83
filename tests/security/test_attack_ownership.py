"""A signed-in user reaches only their own jobs: another user's job is a 404 exactly like a missing
one, a `userId` that is not the caller is a 403, and a jobId is a UUID and nothing else (no path,
no PostgREST filter), on every route that takes one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from devstack.replicate_emulator import ReplicateEmulator
from devstack.stack import LocalStack
from devstack.tokens import anon_key
from shared.api.requests import MAX_JSON_BODY_BYTES
from tests.security.attacks import (
    JOB_ROUTES,
    JSON_ROUTES,
    STATUS,
    TWIN_ROUTES,
    UPLOAD,
    USER_ID_ROUTES,
    Route,
    all_jobs,
    all_previews,
    all_twins,
    deliver,
    each,
    error_of,
    insert_job,
    refusals,
)
from tests.stack_fixtures import User, photo_files


@dataclass
class Scene:
    owner: User
    stranger: User
    job: str  # the owner's pending job, photos uploaded: a start would really train it
    twin: str  # its twin


@pytest.fixture
def scene(stack: LocalStack, http: httpx.Client, make_user) -> Scene:
    owner, stranger = make_user(), make_user()
    response = http.post(
        stack.url(UPLOAD),
        headers=owner.headers,
        data={"fursonaName": "Ember", "customizationData": json.dumps({"type": "fox"})},
        files=photo_files(3),
    )
    assert response.status_code == 201, response.text
    return Scene(owner, stranger, response.json()["jobId"], response.json()["twinId"])


@dataclass
class Untouched:
    """Proof that a refused request changed nothing: every job of the users involved is as it was,
    and Replicate was not called."""

    db: psycopg.Connection
    emulator: ReplicateEmulator
    user_ids: list[str] = field(default_factory=list)

    def __call__(self, *users: User | str) -> Untouched:
        self.user_ids = [u if isinstance(u, str) else u.id for u in users]
        return self

    def _rows(self) -> tuple[Any, ...]:
        ids = self.user_ids
        return all_jobs(self.db, ids), all_twins(self.db, ids), all_previews(self.db, ids)

    def _replicate_calls(self) -> int:
        # Trainings and files only: the schedule's sweep may meanwhile follow the predictions of
        # earlier tests' previews (reads, output downloads, a cancel), which is not this request.
        return sum(
            n
            for (_, route), n in self.emulator.calls.items()
            if not route.startswith(("/v1/predictions", "/delivery/"))
        )

    def __enter__(self) -> Untouched:
        self.rows = self._rows()
        self.replicate_calls = self._replicate_calls()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            assert self._rows() == self.rows
            assert self._replicate_calls() == self.replicate_calls


@pytest.fixture
def untouched(db: psycopg.Connection, emulator: ReplicateEmulator) -> Untouched:
    return Untouched(db, emulator)


# --------------------------------------------------------------------------- another user's job


@pytest.mark.parametrize("route", each(JOB_ROUTES))
def test_another_users_job_is_a_404_like_a_missing_one(
    stack: LocalStack, http: httpx.Client, scene: Scene, untouched: Untouched, route: Route
):
    with untouched(scene.owner, scene.stranger):  # not read, started, canceled nor deleted
        foreign = route.call(http, stack, scene.stranger.headers, scene.job)
        missing = route.call(http, stack, scene.stranger.headers, str(uuid.uuid4()))
    assert error_of(foreign) == (404, "job_not_found")
    assert foreign.json() == missing.json()  # nothing tells the stranger the job exists


@pytest.mark.parametrize("route", each(TWIN_ROUTES))
def test_another_users_twin_is_a_404_like_a_missing_one(
    stack: LocalStack, http: httpx.Client, scene: Scene, untouched: Untouched, route: Route
):
    with untouched(scene.owner, scene.stranger):  # not read, renamed, activated nor deleted
        foreign = route.call(http, stack, scene.stranger.headers, scene.twin)
        missing = route.call(http, stack, scene.stranger.headers, str(uuid.uuid4()))
    assert error_of(foreign) == (404, "twin_not_found")
    assert foreign.json() == missing.json()
    listed = http.get(stack.url(STATUS) + "twins", headers=scene.stranger.headers)
    assert listed.status_code == 200 and listed.json() == {"twins": []}


# --------------------------------------------------------------------------- userId mismatch


@pytest.mark.parametrize("route", each([r for r in USER_ID_ROUTES if r.json_body]))
def test_a_user_id_that_is_not_the_caller_is_403(
    stack: LocalStack, http: httpx.Client, scene: Scene, untouched: Untouched, route: Route
):
    attempts = [
        (scene.owner, scene.stranger.id),  # the owner naming someone else
        (scene.owner, str(uuid.uuid4())),
        (scene.stranger, scene.owner.id),  # the stranger claiming to be the owner
    ]
    with untouched(scene.owner, scene.stranger):
        for caller, claimed in attempts:
            response = route.call(http, stack, caller.headers, scene.job, userId=claimed)
            assert error_of(response) == (403, "user_mismatch"), (caller, claimed)
    # Control: the caller's own id gets past this check.
    response = route.call(http, stack, scene.owner.headers, scene.job, userId=scene.owner.id)
    assert response.status_code != 403, response.text


@pytest.mark.parametrize("claimed", ["owner", "random", "not-a-uuid"])
def test_an_upload_for_another_user_id_is_403_and_stores_nothing(
    stack: LocalStack,
    http: httpx.Client,
    scene: Scene,
    untouched: Untouched,
    claimed: str,
):
    user_id = {"owner": scene.owner.id, "random": str(uuid.uuid4()), "not-a-uuid": "admin"}[claimed]
    gateway = stack.gateway
    assert gateway is not None
    folders = [f"/storage/v1/object/training-photos/{who}/" for who in (user_id, scene.stranger.id)]

    def stored_count() -> int:
        # Only the two folders: another test's completion may meanwhile store its previews.
        return sum(gateway.counters.count("POST", f) for f in folders)

    stored = stored_count()
    with untouched(scene.owner, scene.stranger):
        response = http.post(
            stack.url(UPLOAD),
            headers=scene.stranger.headers,
            data={"fursonaName": "Ember", "userId": user_id},
            files=photo_files(3),
        )
    assert error_of(response) == (403, "user_mismatch")
    # Refused before any photo was stored: not in the claimed folder, nor in the caller's.
    assert stored_count() == stored


# --------------------------------------------------------------------------- hostile jobIds

TRAVERSALS = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "00000000-0000-0000-0000-000000000000/../../x",
    "{victim}/../{victim}",
    "./{victim}",
]
INJECTIONS = [
    "x&or=(id.not.is.null)",
    "{victim}&or=(user_id.not.is.null)",
    "eq.{victim}",
    "{victim},or(user_id.not.is.null)",
    "in.({victim})",
    "*",
    "not.is.null",
    "{victim})or(id.not.is.null",
    "{victim}' or '1'='1",
]


@pytest.fixture
def victim_user(make_user: Callable[[], User]) -> User:
    return make_user()


@pytest.fixture
def victim(db: psycopg.Connection, victim_user: User) -> str:
    """Another user's job that an injection would have to reach."""
    return insert_job(db, victim_user.id)


@pytest.mark.parametrize("raw", TRAVERSALS + INJECTIONS)
def test_a_job_id_that_is_not_a_uuid_is_400_on_every_route_and_touches_nothing(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    victim: str,
    victim_user: User,
    untouched: Untouched,
    raw: str,
):
    job_id = raw.format(victim=victim)
    with untouched(user, victim_user):
        answers = refusals(http, stack, JOB_ROUTES, user.headers, job_id)
    # Refused by the parser, before any query: a jobId is a UUID or nothing, with the same
    # answer wherever it is sent (query, path or body).
    assert answers == {r.name: (400, "invalid_job_id") for r in JOB_ROUTES}


@pytest.mark.parametrize("route", each([r for r in JOB_ROUTES if r.job_in == "query"]))
def test_extra_query_parameters_are_not_filters(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    victim: str,
    victim_user: User,
    untouched: Untouched,
    route: Route,
):
    # PostgREST syntax appended to the query string never reaches PostgREST: only jobId is read.
    url = f"{stack.url(route.function)}?jobId={victim}&or=(user_id.eq.{user.id})&select=*"
    with untouched(user, victim_user):
        widened = http.request(route.method, url, headers=user.headers)
        # A repeated jobId is not a list to search.
        repeated = http.request(
            route.method,
            f"{stack.url(route.function)}?jobId={victim}&jobId={victim}",
            headers=user.headers,
        )
    assert error_of(widened) == (404, "job_not_found")
    assert error_of(repeated) == (400, "invalid_job_id")


@pytest.mark.parametrize(
    "job_id",
    [{"neq": "x"}, ["victim"], 42, None, True, ""],
    ids=["object", "list", "number", "null", "bool", "empty"],
)
def test_a_job_id_of_the_wrong_type_is_400_on_every_route(
    stack: LocalStack,
    http: httpx.Client,
    user: User,
    victim: str,
    victim_user: User,
    untouched: Untouched,
    job_id: object,
):
    if job_id == ["victim"]:
        job_id = [victim]
    body_routes = [r for r in JOB_ROUTES if r.job_in == "body"]
    with untouched(user, victim_user):
        statuses = {r.name: r.call(http, stack, user.headers, job_id) for r in body_routes}
    for name, response in statuses.items():
        assert response.status_code == 400, name
        assert response.json()["error"]["code"] in ("invalid_job_id", "missing_field"), name


@pytest.mark.parametrize("raw", ["../{victim}", "x&or=(id.not.is.null)", "{victim}/../x"])
def test_the_webhook_route_refuses_a_hostile_job_id(
    stack: LocalStack,
    http: httpx.Client,
    victim: str,
    victim_user: User,
    untouched: Untouched,
    raw: str,
):
    with untouched(victim_user):
        response = deliver(http, stack, raw.format(victim=victim), b"{}", {})
    assert error_of(response) == (400, "invalid_job_id")


# --------------------------------------------------------------------------- oversize bodies


@pytest.mark.parametrize("route", each(JSON_ROUTES))
def test_an_oversize_json_body_is_413(
    stack: LocalStack, http: httpx.Client, scene: Scene, untouched: Untouched, route: Route
):
    padding = "x" * (MAX_JSON_BODY_BYTES + 1)
    with untouched(scene.owner):
        response = route.call(http, stack, scene.owner.headers, scene.job, padding=padding)
    assert error_of(response) == (413, "payload_too_large")


# --------------------------------------------------------------------------- PostgREST directly


@pytest.fixture
def user_rest(stack: LocalStack, scene: Scene) -> Iterator[httpx.Client]:
    """PostgREST through the gateway as the browser calls it: anon key + the stranger's token."""
    headers = {
        "apikey": anon_key(stack.jwt_secret),
        "Authorization": f"Bearer {scene.stranger.token}",
    }
    with httpx.Client(base_url=f"{stack.supabase_url}/rest/v1", headers=headers) as client:
        yield client


def test_postgrest_filters_cannot_widen_a_users_view(
    user_rest: httpx.Client,
    db: psycopg.Connection,
    scene: Scene,
    victim: str,
    victim_user: User,
):
    # With their own token straight at the REST API, the stranger's widest filters still see
    # nothing of anyone else's (RLS), and cannot write the status or progress of any row.
    everyone = [scene.owner.id, scene.stranger.id, victim_user.id]
    rows = all_jobs(db, everyone)
    for query in (
        "select=id",
        "select=id&or=(user_id.not.is.null,id.not.is.null)",
        f"select=id&id=eq.{scene.job}",
        f"select=id&id=in.({scene.job},{victim})",
    ):
        response = user_rest.get(f"/ai_training_jobs?{query}")
        assert response.status_code == 200 and response.json() == [], query
    for target in (scene.job, victim):
        response = user_rest.patch(
            f"/ai_training_jobs?id=eq.{target}",
            json={"status": "completed", "progress": 100},
            headers={"Prefer": "return=representation"},
        )
        assert response.status_code in (401, 403) or response.json() == [], response.text
    assert all_jobs(db, everyone) == rows


@pytest.mark.parametrize("raw", TRAVERSALS + INJECTIONS)
def test_a_twin_id_that_is_not_a_uuid_is_400_on_every_twin_route(
    stack: LocalStack, http: httpx.Client, scene: Scene, untouched: Untouched, raw: str
):
    twin_id = raw.format(victim=scene.twin)
    with untouched(scene.owner, scene.stranger):
        answers = refusals(http, stack, TWIN_ROUTES, scene.stranger.headers, twin_id)
    allowed = {(400, "invalid_twin_id"), (404, "route_not_found")}  # a "/" in it: another path
    assert set(answers.values()) <= allowed, answers
