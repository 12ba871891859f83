"""upload_training_photos:
- POST / (multipart photos + form fields) -> 201 {jobId, photoUrls, status, progress};
- POST /uploads (JSON: the photos to come) -> 201 {jobId, status, progress, expiresAt, uploads};
- POST /uploads/<jobId>/complete -> 200 {jobId, photoUrls, status, progress}.
The routes, their bodies and error codes: `shared.contract.routes`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import bootstrap
from shared.api import app as api
from shared.api import requests
from shared.contract import routes
from shared.contract.upload import UploadResponse
from shared.plumbing import warmup
from shared.plumbing.observability import logger
from shared.services.signed_upload import complete_signed_upload, create_signed_upload
from shared.services.upload import upload_multipart

app = api.make_app(bootstrap.settings)
# SDKs load at first use; with SnapStart or provisioned concurrency, during init instead.
warmup.preload(*warmup.REQUEST_PATH, "shared.photos.normalise")


@app.handle(routes.UPLOAD_MULTIPART)
def upload() -> Any:
    who, form = requests.form_request(app)
    job = upload_multipart(who, form, bootstrap.deps(requests.deadline(app)))
    logger.info("job created", extra={"job_id": str(job.id), "photos": len(job.photo_urls)})
    return api.respond(201, UploadResponse.of(job))


@app.handle(routes.CREATE_SIGNED_UPLOAD)
def create_upload() -> Any:
    who, body = requests.json_request(app)
    created = create_signed_upload(who, body, bootstrap.deps(requests.deadline(app)))
    logger.info(
        "signed upload created",
        extra={"job_id": str(created.job_id), "photos": len(created.uploads)},
    )
    return api.respond(201, created)


@app.handle(routes.COMPLETE_SIGNED_UPLOAD)
def complete_upload(job_id: str) -> Any:
    who, _ = requests.json_request(app)
    deps = bootstrap.deps(requests.deadline(app))
    job = complete_signed_upload(who, requests.parse_job_id(job_id), deps)
    logger.info("signed upload completed", extra={"job_id": str(job.id), "status": job.status})
    return api.respond(200, UploadResponse.of(job))


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL, clear_state=True
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
