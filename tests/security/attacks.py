"""Building blocks for the attack suite: forged tokens, signing keys, jobs planted in the database,
and the user routes of the three Function URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack.replicate_emulator.webhooks import sign_webhook
from devstack.stack import LocalStack

STATUS = "check_training_status"
START = "start_ai_training"
UPLOAD = "upload_training_photos"


# --------------------------------------------------------------------------- tokens


def user_claims(stack: LocalStack, user_id: str, **overrides: Any) -> dict[str, Any]:
    """The claims Supabase Auth puts in a signed-in user's access token."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "role": "authenticated",
        "aud": "authenticated",
        "iss": f"{stack.supabase_url}/auth/v1",
        "iat": now,
        "exp": now + 3600,
        "session_id": str(uuid.uuid4()),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_token(key: bytes, claims: dict[str, Any], *, alg: str = "HS256", **header: Any) -> str:
    """HMAC JWTs by hand: PyJWT refuses a PEM public key as an HMAC secret; an attacker won't."""
    head = _b64(json.dumps({"alg": alg, "typ": "JWT", **header}).encode())
    body = _b64(json.dumps(claims).encode())
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(key, f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{_b64(signature)}"


def unsigned_token(claims: dict[str, Any]) -> str:
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{_b64(json.dumps(claims).encode())}."


@dataclass
class SigningKey:
    """An asymmetric project signing key, as Supabase publishes it in the JWKS."""

    kid: str
    alg: str
    private: Any

    @classmethod
    def new(cls, alg: str) -> SigningKey:
        private: Any = (
            ec.generate_private_key(ec.SECP256R1())
            if alg == "ES256"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        return cls(kid=f"{alg.lower()}-{uuid.uuid4().hex[:8]}", alg=alg, private=private)

    @property
    def jwk(self) -> dict[str, Any]:
        algorithm = (
            jwt.algorithms.ECAlgorithm if self.alg == "ES256" else jwt.algorithms.RSAAlgorithm
        )
        public = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        headers = {"kid": self.kid, **header}
        return jwt.encode(
            claims, self.private, algorithm=headers.pop("alg", self.alg), headers=headers
        )


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.jwk for key in keys]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- jobs in the database


def insert_job(
    db: psycopg.Connection,
    user_id: str,
    *,
    training_id: str | None = None,
    photo_urls: list[str] | None = None,
) -> str:
    """A pending job (as an upload leaves it), or a training one when `training_id` is given."""
    job_id = str(uuid.uuid4())
    photos = photo_urls if photo_urls is not None else [f"{user_id}/{job_id}/01.jpg"]
    db.execute(
        "insert into public.ai_training_jobs (id, user_id, furrsona_name, status, progress,"
        " photo_urls) values (%s, %s, 'Ember', 'pending', 20, %s)",
        [job_id, user_id, photos],
    )
    if training_id is not None:
        db.execute(  # through the queue, as admission moves it
            "update public.ai_training_jobs set status = 'queued', queued_at = now() where id = %s",
            [job_id],
        )
        db.execute(
            "update public.ai_training_jobs set status = 'training', progress = 30,"
            " replicate_training_id = %s, claimed_at = now() where id = %s",
            [training_id, job_id],
        )
    return job_id


def job_row(db: psycopg.Connection, job_id: str) -> dict[str, Any]:
    cursor = db.execute("select * from public.ai_training_jobs where id = %s", [job_id])
    row = cursor.fetchone()
    assert row is not None, f"job {job_id} is gone"
    assert cursor.description is not None
    return dict(zip([c.name for c in cursor.description], row, strict=True))


def all_twins(db: psycopg.Connection, user_ids: list[str]) -> list[tuple[Any, ...]]:
    """Every twin of these users, with every column an attack could move."""
    return db.execute(
        "select id, user_id, name, customization_data, active_job_id, deletion_requested_at,"
        " updated_at from public.twins where user_id = any(%s::uuid[]) order by id",
        [user_ids],
    ).fetchall()


def all_previews(db: psycopg.Connection, user_ids: list[str]) -> list[tuple[Any, ...]]:
    """Every preview of these users (a refused request makes none and moves none)."""
    return db.execute(
        "select id, status, prediction_id, storage_path, updated_at from public.twin_previews"
        " where user_id = any(%s::uuid[]) order by id",
        [user_ids],
    ).fetchall()


def all_jobs(db: psycopg.Connection, user_ids: list[str]) -> list[tuple[Any, ...]]:
    """Every job of these users, with every column an attack could move. Scoped to the test's own
    users: trainings left by earlier tests may still be moved by their (genuine) webhooks."""
    return db.execute(
        "select id, user_id, status, progress, replicate_training_id, last_webhook_id, updated_at"
        " from public.ai_training_jobs where user_id = any(%s::uuid[]) order by id",
        [user_ids],
    ).fetchall()


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    """One user route of the three Function URLs: where it reads a jobId (or a twinId), whether
    it takes a `userId`, whether its body is JSON."""

    name: str
    method: str
    function: str
    path: str = ""  # after the function URL; "{job}" / "{twin}" become the (quoted) id
    job_in: str = ""  # "query", "body", "path" or "" (none: it creates a job, or lists them)
    takes_user_id: bool = True
    json_body: bool = True
    twin_in: str = ""  # "path" for the twin routes: the id the attack sends is a twinId

    def call(
        self,
        http: httpx.Client,
        stack: LocalStack,
        headers: dict[str, str],
        job_id: Any = "",
        **fields: Any,
    ) -> httpx.Response:
        target = quote(str(job_id), safe="")
        url = stack.url(self.function) + self.path.format(job=target, twin=target)
        params = {"jobId": job_id} if self.job_in == "query" else None
        if not self.json_body:  # the multipart upload
            form = {"fursonaName": "Ember", **fields}
            return http.request(self.method, url, headers=headers, data=form)
        body: dict[str, Any] = dict(fields)
        if self.job_in == "body":
            body["jobId"] = job_id
        if self.name == "uploads":
            body.setdefault("fursonaName", "Ember")
            body.setdefault("photos", DECLARED_PHOTOS)
        if self.name == "twin-update":
            body.setdefault("name", "Mine now")
        if self.name == "twin-activate":
            body.setdefault("jobId", str(uuid.uuid4()))
        if self.method in ("GET", "DELETE") and not body:
            return http.request(self.method, url, headers=headers, params=params)
        return http.request(self.method, url, headers=headers, params=params, json=body)


DECLARED_PHOTOS = [
    {"filename": f"p{i}.jpg", "contentType": "image/jpeg", "size": 200_000} for i in range(3)
]

ROUTES = [
    Route("upload", "POST", UPLOAD, json_body=False),
    Route("uploads", "POST", UPLOAD, "uploads"),
    Route("uploads-complete", "POST", UPLOAD, "uploads/{job}/complete", job_in="path"),
    Route("start", "POST", START, job_in="body"),
    Route("status-get", "GET", STATUS, job_in="query", takes_user_id=False),
    Route("status-post", "POST", STATUS, job_in="body"),
    Route("cancel", "POST", STATUS, "cancel", job_in="body"),
    Route("delete", "DELETE", STATUS, job_in="query", takes_user_id=False),
    Route("delete-post", "POST", STATUS, "delete", job_in="body"),
    Route("twins", "GET", STATUS, "twins", takes_user_id=False),
    Route("twin-get", "GET", STATUS, "twins/{twin}", twin_in="path", takes_user_id=False),
    Route("twin-update", "PATCH", STATUS, "twins/{twin}", twin_in="path"),
    Route("twin-activate", "PUT", STATUS, "twins/{twin}/active", twin_in="path"),
    Route("twin-delete", "DELETE", STATUS, "twins/{twin}", twin_in="path", takes_user_id=False),
    Route("twin-previews", "POST", STATUS, "twins/{twin}/previews", twin_in="path"),
    Route("jobs", "GET", STATUS, "jobs", takes_user_id=False),
]


def call_all(
    http: httpx.Client,
    stack: LocalStack,
    routes: list[Route],
    headers: dict[str, str],
    job_id: Any = "",
) -> dict[str, httpx.Response]:
    """The same attack on every route in `routes`, sent at once (the routes are independent; this
    only saves the local server's per-response latency)."""
    with ThreadPoolExecutor(max_workers=len(routes)) as pool:
        answers = pool.map(lambda route: route.call(http, stack, headers, job_id), routes)
        return {route.name: answer for route, answer in zip(routes, answers, strict=True)}


def refusals(
    http: httpx.Client,
    stack: LocalStack,
    routes: list[Route],
    headers: dict[str, str],
    job_id: Any = "",
) -> dict[str, tuple[int, str]]:
    """(status, error code) per route for the same attack."""
    answers = call_all(http, stack, routes, headers, job_id)
    return {name: error_of(answer) for name, answer in answers.items()}


def each(routes: list[Route]) -> list[Any]:
    """`routes` as pytest parameters named after the routes."""
    return [pytest.param(route, id=route.name) for route in routes]


JOB_ROUTES = [r for r in ROUTES if r.job_in]
TWIN_ROUTES = [r for r in ROUTES if r.twin_in]
USER_ID_ROUTES = [r for r in ROUTES if r.takes_user_id]
JSON_ROUTES = [r for r in ROUTES if r.json_body and r.method == "POST"]


def get_status(
    http: httpx.Client, stack: LocalStack, headers: dict[str, str], job_id: str
) -> httpx.Response:
    return http.get(stack.url(STATUS), headers=headers, params={"jobId": job_id})


def error_of(response: httpx.Response) -> tuple[int, str]:
    """(status, error code): what every refusal is asserted on."""
    return response.status_code, response.json()["error"]["code"]


# --------------------------------------------------------------------------- webhooks


def training_body(training_id: str, status: str = "processing", **fields: Any) -> bytes:
    """A Replicate training object as a webhook carries it."""
    body: dict[str, Any] = {
        "id": training_id,
        "status": status,
        "input": {},
        "logs": "",
        "created_at": "2026-11-24T07:00:00Z",
        **fields,
    }
    return json.dumps(body).encode()


def trainer_log(done: int, total: int = 1000) -> str:
    percent = done * 100 // total
    return f"flux_train_replicate: {percent:3d}%|#####     | {done}/{total} [00:10<00:10]\n"


def webhook_headers(
    secret: str, body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers, signed by the emulator's own (independent) signer."""
    msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    ts = str(timestamp if timestamp is not None else int(time.time()))
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": sign_webhook(secret, msg_id, ts, body),
    }


def deliver(
    http: httpx.Client, stack: LocalStack, job_id: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return http.post(
        stack.url(STATUS) + "webhooks/replicate",
        params={"jobId": job_id},
        headers=headers,
        content=body,
    )
