"""upload_training_photos: POST / (multipart photos + form fields) -> 201 {jobId, photoUrls, status, progress}."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import clients, http
from shared.models import UploadResponse
from shared.observability import logger
from shared.settings import get_settings
from shared.upload import upload_multipart

app = http.make_app()


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
    return http.respond(
        201,
        UploadResponse(
            job_id=job.id, photo_urls=job.photo_urls, status=job.status, progress=job.progress
        ),
    )


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL, clear_state=True
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
