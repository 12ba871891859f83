"""The OpenAPI 3.1 documents of the three Function URLs, generated from the route registry
(`shared.contract.routes.ROUTES`) and the wire models, one document per URL (docs/openapi/<url>.json):
each URL is its own host, and the upload, start and status URLs each answer `POST /`.

`python -m tools.openapi` writes them; `python -m tools.openapi --check` exits 1 when a committed
document differs from the generated one (tests/unit/test_openapi.py runs the same check).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.contract import base, jobs, previews, routes, start, status, twins, upload
from shared.contract.routes import Auth, Route
from shared.domain.job import FailureCode, JobStatus
from shared.domain.phases import Phase
from shared.domain.previews import PreviewFailure, PreviewKind, PreviewStatus, SetStatus
from shared.domain.queue import HeldBy
from shared.domain.training import TrainingInfo
from shared.errors import ErrorCode
from shared.photos.rules import ACCEPTED_UPLOAD_CONTENT_TYPES

DOCS = Path(__file__).resolve().parent.parent / "docs" / "openapi"

# The URL each document describes, by its short name (the README's "upload", "start", "status").
URLS = {"upload": routes.UPLOAD, "start": routes.START, "status": routes.STATUS}
TITLES = {
    routes.UPLOAD: "creates a job from the person's photos",
    routes.START: "starts a job's training",
    routes.STATUS: "a job's status, the owner's jobs, cancel and delete, Replicate's webhooks",
}
SCHEMA_REF = "#/components/schemas/{model}"
SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    Auth.USER: [{"supabaseAccessToken": []}],
    Auth.WEBHOOK: [{"replicateWebhookSignature": []}],
    Auth.NONE: [],
}
SECURITY_SCHEMES = {
    "supabaseAccessToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The signed-in user's Supabase access token (`session.access_token` in "
        "supabase-js; it lasts 3600 s by default, and supabase-js refreshes it).",
    },
    "replicateWebhookSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": "Standard Webhooks: `webhook-id`, `webhook-timestamp` and "
        "`webhook-signature` (HMAC-SHA256 with the account's webhook secret) over the raw body.",
    },
}
DESCRIPTION = """\
Generated from the route registry in `shared/contract/routes.py`; do not edit by hand.

Errors are `{"error": {"code", "message"}}` with the code's status; each operation lists every
code it can answer (the test suite records every answer and fails on a code not listed). A path
this URL does not have answers 404 `route_not_found`; a method a path here does not take answers
405 `method_not_allowed`, its `Allow` header naming the methods the path takes.

The Function URL itself, before our code runs, answers: 413 with Lambda's own body
`{"Message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"}`
when the request (body, base64 and the event around it) is over 6 MB; 502 when the function
crashed or timed out; 429 when the function's concurrency is exhausted. Retry 502 and 429
later; send a smaller body for 413 (photos: the signed upload flow).
"""

JOB = UUID("6f1c2a8e-3b7d-4c55-9a41-2e8d0c3b9f10")
USER = UUID("0b8d4e52-7a1f-4f3e-8c6d-5a9b2c1d3e4f")
TWIN = UUID("3c9a6f1d-2e4b-4d7a-9f8e-6b5c4d3e2f1a")
EARLIER = UUID("7a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d")
AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
VERSION = "flurrty/flurrty-twins:5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
PHOTO_PATHS = [f"{USER}/{JOB}/0{i}.jpg" for i in (1, 2, 3)]


def examples() -> dict[type[BaseModel], BaseModel]:
    """One valid instance of each body, shown as the operation's example."""
    upload_expires = AT + timedelta(hours=2)
    twin = twins.TwinResponse(
        twin_id=TWIN,
        name="Ember",
        customization_data={"type": "fox", "colors": ["orange"]},
        active_job_id=JOB,
        active_version=2,
        created_at=AT - timedelta(days=3),
        updated_at=AT,
        versions=[
            twins.VersionResponse(
                job_id=EARLIER,
                version=1,
                active=False,
                status=JobStatus.COMPLETED,
                phase=Phase.DONE,
                phase_text="Done",
                progress=100,
                created_at=AT - timedelta(days=3),
                completed_at=AT - timedelta(days=3) + timedelta(minutes=11),
                model_version=VERSION.replace("5c7d", "9e1a"),
                error_code=None,
                error_message=None,
            ),
            twins.VersionResponse(
                job_id=JOB,
                version=2,
                active=True,
                status=JobStatus.COMPLETED,
                phase=Phase.DONE,
                phase_text="Done",
                progress=100,
                created_at=AT - timedelta(minutes=20),
                completed_at=AT - timedelta(minutes=9),
                model_version=VERSION,
                error_code=None,
                error_message=None,
            ),
        ],
    )
    return {
        upload.UploadForm: upload.UploadForm(
            photos=[b"<jpeg bytes>"] * 3,
            fursona_name="Ember",
            customization_data='{"type": "fox", "furType": "fluffy", "colors": ["orange"]}',
        ),
        upload.SignedUploadRequest: upload.SignedUploadRequest(
            fursona_name="Ember",
            customization_data=upload.CustomizationData(type="fox", colors=["orange"]),
            photos=[
                upload.DeclaredPhoto(
                    filename=f"IMG_{i}.HEIC", content_type="image/heic", size=8_123_456
                )
                for i in (1, 2, 3)
            ],
        ),
        upload.CompleteRequest: upload.CompleteRequest(),
        base.JobRequest: base.JobRequest(job_id=JOB),
        status.StatusRequest: status.StatusRequest(job_id=JOB, history=True),
        upload.UploadResponse: upload.UploadResponse(
            job_id=JOB,
            twin_id=TWIN,
            version=1,
            photo_urls=PHOTO_PATHS,
            status=JobStatus.PENDING,
            progress=20,
        ),
        upload.SignedUploadResponse: upload.SignedUploadResponse(
            job_id=JOB,
            twin_id=TWIN,
            version=1,
            status=JobStatus.UPLOADING,
            progress=0,
            expires_at=upload_expires,
            uploads=[
                upload.UploadTarget(
                    photo=i,
                    path=f"{USER}/{JOB}/upload/0{i}",
                    url=f"https://<project>.supabase.co/storage/v1/object/upload/sign/"
                    f"training-photos/{USER}/{JOB}/upload/0{i}?token=<token>",
                    token="<token>",
                    content_type="image/heic",
                    expires_at=upload_expires,
                )
                for i in (1, 2, 3)
            ],
        ),
        start.StartResponse: start.StartResponse(
            job_id=JOB,
            training_id=None,
            status=JobStatus.QUEUED,
            progress=20,
            queue=start.QueueView(
                position=12,
                held_by=HeldBy.CAP,
                estimated_start_at=AT + timedelta(minutes=12),
                message="Lots of people are creating their twins right now; yours starts in "
                "about 12 minutes (number 12 in line).",
            ),
        ),
        status.StatusResponse: status.StatusResponse(
            job_id=JOB,
            twin_id=TWIN,
            version=2,
            active=False,
            status=JobStatus.TRAINING,
            progress=57,
            model_version=None,
            error_code=None,
            error_message=None,
            estimated_completion=AT + timedelta(minutes=9),
            phase=Phase.TRAINING,
            phase_text="Training, step 450 of 1000",
            step=450,
            total_steps=1000,
            retry_after_seconds=5,
            history=status.ProgressHistory(
                started_at=AT + timedelta(minutes=2),
                seconds=[3, 7, 10],
                steps=[5, 10, 15],
                loss=[0.3987, 0.3921, 0.3876],
                steps_per_second=[1.43, 1.44, 1.43],
            ),
        ),
        TrainingInfo: TrainingInfo(
            id="r6hzq4y3j9rm80cn8x1b3c8vzc",
            status="succeeded",
            input={"input_images": "https://api.replicate.com/v1/files/<file id>"},
            output={"version": VERSION, "weights": "https://replicate.delivery/<weights>"},
            logs="flux_train_replicate: 100%|##########| 1000/1000 [10:51<00:00]",
            created_at=AT,
            completed_at=AT + timedelta(minutes=11),
            metrics={"predict_time": 651.2},
        ),
        jobs.DeletionResponse: jobs.DeletionResponse(
            job_id=JOB, deleted=True, deletion_requested_at=AT, deleted_at=AT
        ),
        jobs.JobList: jobs.JobList(
            jobs=[
                jobs.JobSummary(
                    job_id=JOB,
                    twin_id=TWIN,
                    version=1,
                    fursona_name="Ember",
                    status=JobStatus.COMPLETED,
                    phase=Phase.DONE,
                    phase_text="Done",
                    progress=100,
                    model_version=VERSION,
                    error_code=None,
                    error_message=None,
                    estimated_completion=None,
                    created_at=AT,
                    completed_at=AT + timedelta(minutes=11),
                ),
                jobs.JobSummary(
                    job_id=UUID("9d2e7c41-5b3a-4e8f-a6c2-1f0b9e8d7c6a"),
                    twin_id=UUID("1b7f0c2e-3d4a-4e5b-8c6d-7e8f9a0b1c2d"),
                    version=1,
                    fursona_name="Ash",
                    status=JobStatus.FAILED,
                    phase=Phase.CANCELED,
                    phase_text="Canceled",
                    progress=57,
                    model_version=None,
                    error_code=FailureCode.CANCELED_BY_USER,
                    error_message="Canceled by user.",
                    estimated_completion=None,
                    created_at=AT - timedelta(days=1),
                    completed_at=AT - timedelta(days=1) + timedelta(minutes=4),
                ),
            ],
            next_cursor="WyIyMDI2LTEyLTAzVDEwOjAwOjAwKzAwOjAwIiwgIjlkMmU3YzQxIl0",
        ),
        twins.TwinResponse: twin,
        twins.TwinListResponse: twins.TwinListResponse(twins=[twin]),
        twins.TwinUpdate: twins.TwinUpdate(name="Blaze"),
        twins.ActivateRequest: twins.ActivateRequest(job_id=JOB),
        twins.TwinDeletionResponse: twins.TwinDeletionResponse(
            twin_id=TWIN, deleted=True, deletion_requested_at=AT, deleted_at=AT
        ),
        previews.PreviewRequest: previews.PreviewRequest(style="watercolor", count=2),
        previews.PreviewSetView: PREVIEW_SET,
        previews.PreviewWebhookResponse: previews.PreviewWebhookResponse(
            preview_id=UUID("5e1d2c3b-4a59-4687-9c8b-7a6f5e4d3c2b"), status=PreviewStatus.READY
        ),
    }


PREVIEW_SET = previews.PreviewSetView(
    set_id=UUID("0c4b6a8e-2f1d-4e3c-9b5a-7d6e8f9a0b1c"),
    kind=PreviewKind.ON_DEMAND,
    style="watercolor",
    status=SetStatus.PARTLY_READY,
    ready=1,
    total=2,
    created_at=AT,
    pictures=[
        previews.PreviewPicture(
            preview_id=UUID("5e1d2c3b-4a59-4687-9c8b-7a6f5e4d3c2b"),
            slot=0,
            status=PreviewStatus.READY,
            url="https://<project>.supabase.co/storage/v1/object/sign/training-photos/<user>/"
            "previews/<job>/<preview>.webp?token=<signed token>",
            url_expires_at=AT + timedelta(minutes=15),
            content_type="image/webp",
            prompt="portrait of TOK as an anthropomorphic fox character, fluffy orange fur, "
            "watercolor painting style, expressive eyes, full head and shoulders",
            error_code=None,
            error_message=None,
        ),
        previews.PreviewPicture(
            preview_id=UUID("6f2e3d4c-5b6a-4798-8d9c-8b7a6f5e4d3c"),
            slot=1,
            status=PreviewStatus.FAILED,
            url=None,
            url_expires_at=None,
            content_type=None,
            prompt="TOK as an anthropomorphic fox character exploring a sunlit forest",
            error_code=PreviewFailure.UNSAFE,
            error_message="The picture was flagged as unsafe, so it was not kept.",
        ),
    ],
)


def bodies(chosen: list[Route]) -> tuple[list[type[BaseModel]], list[type[BaseModel]]]:
    """The request models and the response models of `chosen`, each once, in route order."""
    requests = [m for r in chosen if (m := r.body_model) is not None]
    responses = [m for r in chosen for m in r.response_models.values()]
    return list(dict.fromkeys(requests)), list(dict.fromkeys(responses))


def component_schemas(chosen: list[Route]) -> dict[str, Any]:
    requests, responses = bodies(chosen)
    keyed = [(m, "validation") for m in requests] + [(m, "serialization") for m in responses]
    _, schemas = models_json_schema(keyed, by_alias=True, ref_template=SCHEMA_REF)  # type: ignore[arg-type]
    out: dict[str, Any] = {
        name: untitled(schema) for name, schema in sorted(schemas.get("$defs", {}).items())
    }
    if "FailureCode" in out:
        out["FailureCode"]["description"] = "Why a failed job failed:\n" + "\n".join(
            f"- `{code.value}`: {code.meaning}" for code in FailureCode
        )
    out["ErrorCode"] = {
        "type": "string",
        "enum": [code.value for code in ErrorCode],
        "description": "Every code this API answers (docs/api.md: what each means).",
    }
    out["Error"] = error_schema({"$ref": SCHEMA_REF.format(model="ErrorCode")})
    return out


def untitled(schema: Any) -> Any:
    """`schema` without pydantic's generated property titles ("Jobid"): noise for a reader."""
    if isinstance(schema, dict):
        kept = {k: untitled(v) for k, v in schema.items() if k != "properties"}
        if isinstance(schema.get("properties"), dict):
            kept["properties"] = {
                name: {k: untitled(v) for k, v in prop.items() if k != "title"}
                for name, prop in schema["properties"].items()
            }
        return kept
    if isinstance(schema, list):
        return [untitled(item) for item in schema]
    return schema


def error_schema(code: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": code,
                    "message": {"type": "string", "description": "A sentence a person can act on."},
                },
            }
        },
    }


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": SCHEMA_REF.format(model=model.__name__)}


def example_of(model: type[BaseModel], shown: dict[type[BaseModel], BaseModel]) -> Any:
    return shown[model].model_dump(mode="json", by_alias=True)


def request_body(route: Route, shown: dict[type[BaseModel], BaseModel]) -> dict[str, Any] | None:
    body = route.body_model
    if body is None:
        return None
    if route.multipart:
        example = example_of(body, shown)
        example["photos"] = ["<a.jpg>", "<b.jpg>", "<c.heic>"]
        types = ", ".join(sorted(ACCEPTED_UPLOAD_CONTENT_TYPES))
        media = {
            "multipart/form-data": {
                "schema": ref(body),
                "encoding": {"photos": {"contentType": types}},
                "example": example,
            }
        }
    else:
        media = {
            "application/json": {
                "schema": ref(body),
                "example": example_of(body, shown),
            }
        }
    limit = (
        f"At most {route.body_limit} bytes (413 `payload_too_large` above)."
        if route.body_limit
        else "The Function URL's own limit applies (6 MB with the event around it)."
    )
    required = body is not upload.CompleteRequest
    return {"required": required, "description": limit, "content": media}


def responses(route: Route, shown: dict[type[BaseModel], BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code_status, model in sorted(route.response_models.items()):
        answer: dict[str, Any] = {
            "description": model.__doc__.strip().splitlines()[0] if model.__doc__ else "OK",
            "content": {
                "application/json": {"schema": ref(model), "example": example_of(model, shown)}
            },
        }
        if route.polling:
            answer["headers"] = {
                "Retry-After": {
                    "description": "Seconds until asking again can show something new (the "
                    "same as `retryAfterSeconds`); absent once the job is final.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        out[str(code_status)] = answer
    by_status: dict[int, list[ErrorCode]] = {}
    for code in ErrorCode:  # catalogue order: the same order in every document
        if code in route.errors:
            by_status.setdefault(code.status, []).append(code)
    for code_status, codes in sorted(by_status.items()):
        rows = "\n".join(f"- `{code.value}`: {code.advice}" for code in codes)
        out[str(code_status)] = {
            "description": rows,
            "content": {
                "application/json": {
                    "schema": error_schema({"type": "string", "enum": [c.value for c in codes]}),
                    "examples": {
                        code.value: {
                            "summary": code.advice,
                            "value": {"error": {"code": code.value, "message": code.advice}},
                        }
                        for code in codes
                    },
                }
            },
        }
    return out


def operation(route: Route, shown: dict[type[BaseModel], BaseModel]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "security": SECURITY[route.auth],
    }
    if route.description:
        op["description"] = route.description
    if route.params:
        op["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": p.schema,
            }
            for p in route.params
        ]
    if (body := request_body(route, shown)) is not None:
        op["requestBody"] = body
    op["responses"] = responses(route, shown)
    return op


def document(function: str) -> dict[str, Any]:
    chosen = [r for r in routes.ROUTES if r.function == function]
    shown = examples()
    paths: dict[str, dict[str, Any]] = {}
    for route in chosen:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route, shown)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"Flurrty Twin: {function} ({TITLES[function]})",
            "version": "1",
            "description": DESCRIPTION,
        },
        "servers": [
            {
                "url": "https://{urlId}.lambda-url.{region}.on.aws",
                "description": f"The {function} Function URL (a stack output); locally "
                "`make up` prints it.",
                "variables": {"urlId": {"default": "url-id"}, "region": {"default": "eu-west-1"}},
            }
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": component_schemas(chosen),
            "securitySchemes": {
                name: scheme
                for name, scheme in SECURITY_SCHEMES.items()
                if any(name in s for r in chosen for s in SECURITY[r.auth])
            },
        },
    }


def rendered(function: str) -> str:
    return json.dumps(document(function), indent=2, ensure_ascii=False) + "\n"


def path_of(short: str) -> Path:
    return DOCS / f"{short}.json"


def main(argv: list[str]) -> int:
    stale = []
    for short, function in URLS.items():
        wanted = rendered(function)
        path = path_of(short)
        if "--check" in argv:
            if not path.exists() or path.read_text() != wanted:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted)
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python -m tools.openapi`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
