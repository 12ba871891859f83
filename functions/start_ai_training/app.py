"""start_ai_training: POST / {jobId, userId?} -> 202 {jobId, trainingId, status, progress,
queue}: the job joins the line and starts at once when it is its turn; idempotent; a failed job
answers 409 job_failed. The route: `shared.contract.routes.START_TRAINING`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import bootstrap
from shared.api import app as api
from shared.api import requests
from shared.contract import routes
from shared.contract.start import StartResponse
from shared.plumbing import warmup
from shared.plumbing.observability import logger, metrics
from shared.services.start import queue_place, start_training

app = api.make_app(bootstrap.settings)
# SDKs load at first use; with SnapStart or provisioned concurrency, during init instead.
warmup.preload(*warmup.REQUEST_PATH, "replicate")


@app.handle(routes.START_TRAINING)
def start() -> Any:
    who, request = requests.job_request(app)
    logger.append_keys(job_id=str(request.job_id))
    deps = bootstrap.deps(requests.deadline(app))
    job = start_training(who.user_id, request.job_id, deps)
    return api.respond(202, StartResponse.of(job, queue_place(job, deps)))


@metrics.log_metrics
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL, clear_state=True
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
