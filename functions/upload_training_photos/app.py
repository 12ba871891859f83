"""upload_training_photos:
- POST / (multipart photos + form fields) -> 201 {jobId, photoUrls, status, progress};
- POST /uploads (JSON: the photos to come) -> 201 {jobId, status, progress, expiresAt, uploads};
- POST /uploads/<jobId>/complete -> 200 {jobId, photoUrls, status, progress}.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import clients, http, warmup
from shared.auth import check_claimed_user
from shared.models import Job, UploadResponse
from shared.observability import logger
from shared.settings import get_settings
from shared.signed_upload import complete_signed_upload, create_signed_upload
from shared.upload import upload_multipart

app = http.make_app()
# SDKs load at first use; with SnapStart or provisioned concurrency, during init instead.
warmup.preload(*warmup.REQUEST_PATH, "shared.photos")


def _uploaded(status: int, job: Job) -> Any:
    return http.respond(
        status,
        UploadResponse(
            job_id=job.id, photo_urls=job.photo_urls, status=job.status, progress=job.progress
        ),
    )


@app.post("/")
def upload() -> Any:
    who = http.caller(app)
    deadline = http.deadline(app)
    job = upload_multipart(
        caller=who,
        content_type=http.header(app, "content-type"),
        body=http.raw_body(app),
        settings=get_settings(),
        jobs=clients.job_store(deadline),
        photos=clients.photo_store(deadline),
    )
    logger.info("job created", extra={"job_id": str(job.id), "photos": len(job.photo_urls)})
    return _uploaded(201, job)


@app.post("/uploads")
def create_upload() -> Any:
    who = http.caller(app)
    deadline = http.deadline(app)
    created = create_signed_upload(
        caller=who,
        body=http.json_body(app),
        settings=get_settings(),
        jobs=clients.job_store(deadline),
        photos=clients.photo_store(deadline),
    )
    logger.info(
        "signed upload created",
        extra={"job_id": str(created.job_id), "photos": len(created.uploads)},
    )
    return http.respond(201, created)


@app.post("/uploads/<job_id>/complete")
def complete_upload(job_id: str) -> Any:
    who = http.caller(app)
    deadline = http.deadline(app)
    check_claimed_user(who, http.json_body(app).get("userId"))
    job = complete_signed_upload(
        caller=who,
        job_id=http.parse_job_id(job_id),
        settings=get_settings(),
        jobs=clients.job_store(deadline),
        photos=clients.photo_store(deadline),
    )
    logger.info("signed upload completed", extra={"job_id": str(job.id), "status": job.status})
    return _uploaded(200, job)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL, clear_state=True
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
