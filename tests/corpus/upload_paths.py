"""The two ways a browser sends photos, as small test clients over real HTTP:

- `multipart`: one multipart/form-data POST to the upload Function URL (small photos only);
- `signed`: `POST /uploads`, one PUT per photo straight to the Storage signed URL it returned,
  then `POST /uploads/{jobId}/complete`.

Both return the answer that decides the upload (for the signed flow: the refused `POST /uploads`,
or the complete), plus the job id when one was created, so tests can assert the same outcome
either way. `nothing_left` reads the table and lists the bucket with the real supabase client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.stack import LocalStack
from supabase import Client, ClientOptions, create_client
from tests.stack_fixtures import User

BUCKET = "training-photos"
FIELDS = {"fursonaName": "Ember", "customizationData": json.dumps({"type": "fox"})}


@dataclass(frozen=True)
class Photo:
    filename: str
    data: bytes
    content_type: str = "image/jpeg"


@dataclass
class Outcome:
    response: httpx.Response
    job_id: str | None = None
    puts: list[httpx.Response] = field(default_factory=list)

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def error(self) -> dict[str, str]:
        return dict(self.response.json()["error"])


def upload_multipart(
    stack: LocalStack, http: httpx.Client, user: User, photos: list[Photo], **fields: Any
) -> Outcome:
    response = http.post(
        stack.url("upload_training_photos"),
        headers=user.headers,
        data={k: v for k, v in {**FIELDS, **fields}.items() if v is not None},
        files=[("photos", (p.filename, p.data, p.content_type)) for p in photos],
    )
    job_id = response.json().get("jobId") if response.status_code == 201 else None
    return Outcome(response, job_id)


def create_signed(
    stack: LocalStack, http: httpx.Client, user: User, body: dict[str, Any]
) -> httpx.Response:
    return http.post(
        stack.url("upload_training_photos") + "uploads", headers=user.headers, json=body
    )


def put_photo(http: httpx.Client, target: dict[str, Any], data: bytes) -> httpx.Response:
    """What the browser does with one target: a plain PUT of the bytes, no credentials."""
    return http.put(target["url"], content=data, headers={"content-type": target["contentType"]})


def complete_signed(
    stack: LocalStack, http: httpx.Client, user: User, job_id: str
) -> httpx.Response:
    url = stack.url("upload_training_photos") + f"uploads/{job_id}/complete"
    return http.post(url, headers=user.headers, json={})


def upload_signed(
    stack: LocalStack, http: httpx.Client, user: User, photos: list[Photo], **fields: Any
) -> Outcome:
    declared = [
        {"filename": p.filename, "contentType": p.content_type, "size": len(p.data)} for p in photos
    ]
    created = create_signed(stack, http, user, {**FIELDS, **fields, "photos": declared})
    if created.status_code != 201:
        return Outcome(created)
    body = created.json()
    puts = [
        put_photo(http, target, photo.data)
        for target, photo in zip(body["uploads"], photos, strict=True)
    ]
    assert [p.status_code for p in puts] == [200] * len(puts), [p.text for p in puts]
    return Outcome(complete_signed(stack, http, user, body["jobId"]), body["jobId"], puts)


UPLOAD_PATHS: dict[str, Callable[..., Outcome]] = {
    "multipart": upload_multipart,
    "signed": upload_signed,
}


def service_client(stack: LocalStack) -> Client:
    return create_client(
        stack.supabase_url,
        stack.service_role_key,
        options=ClientOptions(httpx_client=httpx.Client(http2=False)),
    )


def rows_of(sb: Client, user_id: str) -> list[Any]:
    return list(sb.table("ai_training_jobs").select("*").eq("user_id", user_id).execute().data)


def objects_under(sb: Client, folder: str) -> list[str]:
    """Names directly under `folder` (sub-folders show as names too), as Storage lists them."""
    return [o["name"] for o in sb.storage.from_(BUCKET).list(folder)]


def nothing_left(sb: Client, user_id: str) -> bool:
    """No row of the user's and no object under the user's folder."""
    assert rows_of(sb, user_id) == []
    assert objects_under(sb, user_id) == []
    return True
