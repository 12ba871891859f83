"""start_ai_training: POST / {jobId, userId?} -> 202 {jobId, trainingId, status, progress}; idempotent."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import clients, http, warmup
from shared.models import StartResponse
from shared.observability import logger, metrics
from shared.training import start_training

app = http.make_app()
# SDKs load at first use; with SnapStart or provisioned concurrency, during init instead.
warmup.preload(*warmup.REQUEST_PATH, "replicate")


@app.post("/")
def start() -> Any:
    who, request = http.job_request(app)
    logger.append_keys(job_id=str(request.job_id))
    job = start_training(who.user_id, request.job_id, clients.start_deps(http.deadline(app)))
    return http.respond(
        202,
        StartResponse(
            job_id=job.id,
            training_id=job.replicate_training_id,
            status=job.status,
            progress=job.progress,
        ),
    )


@metrics.log_metrics
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL, clear_state=True
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
