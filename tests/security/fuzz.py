"""Property-based attack on every route (issue 14.4): Hypothesis generates methods' bodies (JSON
of any shape and depth, raw bytes, multipart forms), headers (tokens valid, foreign, forged with
any claims, expired, of a deleted account, garbage; any content type; webhook signatures),
query strings and path segments, and sends them over real HTTP to the local Function URLs (the
real handlers, PostgREST, the emulators). Every answer must be:
- below 500, with `{"error": {"code", "message"}}` whenever it is an error;
- leaving nothing behind when refused: the fuzz users' rows, twins, objects, Replicate files and
  trainings are exactly what they were before the request.

Used by tests/security/test_fuzz_routes.py (a bounded example count in `make test`) and by
`python -m bench.fuzz` (a bigger run recording `fuzz.*` figures).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.replicate_emulator.webhooks import sign_webhook
from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from shared.contract import routes
from tests.security.attacks import hmac_token, user_claims

# --------------------------------------------------------------------------- the world


@dataclass
class FuzzWorld:
    """The fuzz's users and what they own: one with a pending job and a twin (so ids in the
    generated requests can be real), one foreign, one deleted."""

    stack: LocalStack
    http: httpx.Client
    owner: tuple[str, str]  # (user id, token)
    other: tuple[str, str]
    deleted: tuple[str, str]
    job_id: str = ""
    twin_id: str = ""
    job_ids: set[str] = field(default_factory=set)
    answers: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, stack: LocalStack, http: httpx.Client) -> FuzzWorld:
        owner, other, deleted = (stack.sign_in() for _ in range(3))
        world = cls(stack, http, owner, other, deleted)
        assert stack.pg is not None
        with psycopg.connect(stack.pg.dsn()) as db:
            db.execute("delete from auth.users where id = %s", [deleted[0]])
        files = [
            ("photos", (f"p{i}.jpg", make_photo(600, 600, seed=4200 + i), "image/jpeg"))
            for i in range(3)
        ]
        made = http.post(
            stack.url("upload_training_photos"),
            headers={"Authorization": f"Bearer {owner[1]}"},
            data={"fursonaName": "Fuzz"},
            files=files,
        )
        assert made.status_code == 201, made.text
        world.job_id, world.twin_id = made.json()["jobId"], made.json()["twinId"]
        return world

    @property
    def users(self) -> list[str]:
        return [self.owner[0], self.other[0], self.deleted[0]]

    def snapshot(self) -> tuple[Any, ...]:
        """Everything of the fuzz users' that a refused request must leave as it was."""
        assert self.stack.pg is not None and self.stack.replicate is not None
        with psycopg.connect(self.stack.pg.dsn()) as db:
            jobs = db.execute(
                "select id, status, progress, furrsona_name, customization_data::text,"
                " photo_urls, deletion_requested_at, replicate_training_id"
                " from ai_training_jobs where user_id = any(%s::uuid[]) order by id",
                [self.users],
            ).fetchall()
            twins = db.execute(
                "select id, name, customization_data::text, active_job_id, deleted_at"
                " from twins where user_id = any(%s::uuid[]) order by id",
                [self.users],
            ).fetchall()
            objects = db.execute(
                "select name from storage.objects where bucket_id = 'training-photos'"
                " and split_part(name, '/', 1) = any(%s) order by name",
                [self.users],
            ).fetchall()
        self.job_ids.update(str(row[0]) for row in jobs)
        state = self.stack.replicate.state
        with state.lock:
            files = sorted(
                rec.id
                for rec in state.files.values()
                if str((rec.metadata or {}).get("job_id")) in self.job_ids
            )
            urls = {f"/v1/files/{fid}" for fid in files}
            trainings = sorted(
                rec.id
                for rec in state.trainings.values()
                if any(u in json.dumps(rec.input) for u in urls)
                or any(j in (rec.webhook or "") for j in self.job_ids)
            )
        return (jobs, twins, objects, files, trainings)


# --------------------------------------------------------------------------- strategies

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=16,
)
FIELD_NAMES = [
    "jobId",
    "userId",
    "fursonaName",
    "customizationData",
    "photos",
    "name",
    "twinId",
    "type",
    "filename",
    "contentType",
    "size",
]
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
CONTENT_TYPES = (
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "multipart/form-data",
            "multipart/form-data; boundary=fuzz",
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
        ]
    )
    | HEADER_TEXT
)


def _hostile_text() -> st.SearchStrategy[str]:
    """JSON texts the standard parser or Postgres chokes on, and near-JSON."""
    deep = st.integers(min_value=1, max_value=30_000).map(lambda n: "[" * n + "]" * n)
    deep_obj = st.integers(min_value=1, max_value=8_000).map(lambda n: '{"a":' * n + "1" + "}" * n)
    specials = st.sampled_from(
        [
            '{"type": NaN}',
            '{"type": Infinity}',
            '{"fursonaName": "\\u0000"}',
            '{"fursonaName": "\\ud800"}',
            '{"jobId": "\\udfff"}',
            '{"fursonaName": "\\u202eEmber"}',
            '{"fursonaName": "\\u200b"}',
            "1e99999",
            "[" * 50,
            "{" * 50,
            "null",
            "",
            '"\\u0000"',
        ]
    )
    return deep | deep_obj | specials | st.text(max_size=200)


@st.composite
def ids(draw: st.DrawFn, world: FuzzWorld) -> str:
    return draw(
        st.sampled_from([world.job_id, world.twin_id, str(uuid.uuid4()), world.owner[0]])
        | st.text(max_size=40)
    )


@st.composite
def json_objects(draw: st.DrawFn, world: FuzzWorld) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), max_size=6))
    body: dict[str, Any] = {}
    for key in keys:
        body[key] = draw(
            JSON_VALUES
            | ids(world)
            | st.just([{"filename": "a.jpg", "contentType": "image/jpeg", "size": 1000}] * 3)
            | st.just(json.dumps({"type": "fox"}))
        )
    return body


@st.composite
def authorization(draw: st.DrawFn, world: FuzzWorld) -> str | None:
    stack = world.stack
    assert stack.jwt_secret is not None
    key = stack.jwt_secret.encode()
    # The owner's own valid token most often: a refused token stops a request at the door.
    kind = draw(
        st.sampled_from(
            ["owner"] * 4 + ["other", "deleted", "none", "garbage", "claims", "expired"]
        )
    )
    if kind == "none":
        return None
    if kind == "garbage":
        return draw(HEADER_TEXT | HEADER_TEXT.map(lambda t: f"Bearer {t}"))
    if kind == "claims":
        claims = user_claims(stack, world.owner[0])
        for name in draw(st.lists(st.sampled_from(sorted(claims)), max_size=3)):
            claims[name] = draw(SCALARS)
        return f"Bearer {hmac_token(key, claims)}"
    if kind == "expired":
        claims = user_claims(stack, world.owner[0], exp=int(time.time()) - 3600)
        return f"Bearer {hmac_token(key, claims)}"
    token = {"owner": world.owner, "other": world.other, "deleted": world.deleted}[kind][1]
    return f"Bearer {token}"


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    content: bytes | None = None
    form: dict[str, str] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None


PHOTO_BYTES = st.sampled_from(
    [b"", b"\xff\xd8\xff", b"GIF89a", b"<svg/>", b"\x00" * 64, b"PK\x03\x04"]
) | st.binary(max_size=256)


@st.composite
def requests_for(draw: st.DrawFn, route: routes.Route, world: FuzzWorld) -> Request:
    path = route.path
    for name in ("jobId", "twinId"):
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", quote(draw(ids(world)), safe=""))
    url = world.stack.url(route.function) + path.lstrip("/")
    # The route's own method most often; now and then another (405 or another route).
    others = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    method = draw(st.sampled_from([route.method] * 6 + others))
    params = draw(
        st.dictionaries(
            st.sampled_from(["jobId", "cursor", "limit", "history", "twinId"])
            | st.text(max_size=6),
            ids(world) | st.text(max_size=30),
            max_size=3,
        )
    )
    headers: dict[str, str] = {}
    if (token := draw(authorization(world))) is not None:
        headers["Authorization"] = token
    if route.auth is routes.Auth.WEBHOOK:
        return _webhook_request(draw, route, world, url, method, params, headers)
    if route.multipart and draw(st.booleans()):
        form = {
            k: draw(st.text(max_size=60) | _hostile_text())
            for k in draw(
                st.lists(
                    st.sampled_from(["fursonaName", "customizationData", "userId", "twinId"]),
                    max_size=4,
                )
            )
        }
        photos = draw(st.lists(PHOTO_BYTES, max_size=7))
        files = [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
        return Request(method, url, params, headers, form=form, files=files)
    body = draw(
        json_objects(world).map(lambda b: json.dumps(b).encode())
        | _hostile_text().map(str.encode)
        | st.binary(max_size=200)
        | st.none()
    )
    headers["content-type"] = draw(CONTENT_TYPES)
    return Request(method, url, params, headers, content=body)


def _webhook_request(
    draw: st.DrawFn,
    route: routes.Route,
    world: FuzzWorld,
    url: str,
    method: str,
    params: dict[str, str],
    headers: dict[str, str],
) -> Request:
    assert world.stack.replicate is not None
    body = draw(
        json_objects(world).map(lambda b: json.dumps(b).encode())
        | _hostile_text().map(str.encode)
        | st.binary(max_size=200)
    )
    params = {**params, "jobId": draw(ids(world))}
    webhook_id = draw(st.just(f"msg_{uuid.uuid4().hex}") | HEADER_TEXT)
    timestamp = draw(
        st.just(str(int(time.time())))
        | st.integers(min_value=-(10**40), max_value=10**40).map(str)
        | st.integers(min_value=1, max_value=800).map(lambda n: "9" * n)
        | HEADER_TEXT
    )
    signed = draw(st.booleans())
    signature = (
        sign_webhook(world.stack.replicate.webhook_secret, webhook_id, timestamp, body)
        if signed
        else draw(HEADER_TEXT)
    )
    for name, value in (
        ("webhook-id", webhook_id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ):
        if draw(st.integers(min_value=0, max_value=9)) > 0:  # now and then one is missing
            headers[name] = value
    headers["content-type"] = "application/json"
    return Request(method, url, params, headers, content=body)


# --------------------------------------------------------------------------- the property


def check(world: FuzzWorld, request: Request) -> None:
    before = world.snapshot()
    response = world.http.request(
        request.method,
        request.url,
        params=request.params,
        # HTTP itself allows no leading or trailing blanks in a header value.
        headers={name: value.strip() for name, value in request.headers.items()},
        content=request.content,
        data=request.form,
        files=request.files,
    )
    world.answers[response.status_code] += 1
    where = f"{request.method} {request.url} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, where
        assert set(body["error"]) == {"code", "message"}, where
        assert isinstance(body["error"]["code"], str) and body["error"]["message"], where
        assert world.snapshot() == before, f"left something behind: {where}"


def fuzz_route(world: FuzzWorld, route: routes.Route, examples: int) -> None:
    """Run the property on `route` for `examples` generated requests (shrinks on failure)."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests_for(route, world))
    def run(request: Request) -> None:
        check(world, request)

    run()
