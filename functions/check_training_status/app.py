"""check_training_status: a job's status (GET /?jobId=[&history=1], POST /), the owner's cancel
(POST /cancel) and delete (DELETE /?jobId=, POST /delete), Replicate's webhooks
(POST /webhooks/replicate?jobId=) and the scheduled sweep of every active job."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import bootstrap
from shared.api import app as api
from shared.api import requests
from shared.contract import DeletionResponse, StatusRequest, StatusResponse
from shared.plumbing import warmup
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import logger, metrics
from shared.services.privacy import cancel_job, delete_job
from shared.services.status import apply_webhook, get_status, progress_history
from shared.services.sweep import sweep_all

app = api.make_app(bootstrap.settings)
# SDKs load at first use; with SnapStart or provisioned concurrency, during init instead.
warmup.preload(*warmup.REQUEST_PATH, "replicate")


def _answer(user_id: UUID, job_id: UUID, *, history: bool) -> Any:
    logger.append_keys(job_id=str(job_id))
    deps = bootstrap.deps(requests.deadline(app))
    job = get_status(user_id, job_id, deps)
    points = progress_history(job, deps) if history else None
    return api.respond(200, StatusResponse.of(job, points))


@app.get("/")
def status_get() -> Any:
    who = requests.caller(app)
    job_id = requests.query_job_id(app)
    return _answer(who.user_id, job_id, history=requests.query_flag(app, "history"))


@app.post("/")
def status_post() -> Any:
    who, body = requests.json_request(app)
    request = requests.parse_model(StatusRequest, body)
    return _answer(who.user_id, request.job_id, history=request.history)


@app.post("/cancel")
def cancel_post() -> Any:
    who, request = requests.job_request(app)
    logger.append_keys(job_id=str(request.job_id))
    job = cancel_job(who.user_id, request.job_id, bootstrap.deps(requests.deadline(app)))
    return api.respond(200, StatusResponse.of(job))


def _delete(user_id: UUID, job_id: UUID) -> Any:
    logger.append_keys(job_id=str(job_id))
    job = delete_job(user_id, job_id, bootstrap.deps(requests.deadline(app)))
    # 202 while the sweep still has something to remove; 200 once everything is gone.
    return api.respond(200 if job.deleted_at else 202, DeletionResponse.of(job))


@app.delete("/")
def delete_query() -> Any:
    who = requests.caller(app)
    return _delete(who.user_id, requests.query_job_id(app))


@app.post("/delete")
def delete_post() -> Any:
    who, request = requests.job_request(app)
    return _delete(who.user_id, request.job_id)


@app.post("/webhooks/replicate")
def replicate_webhook() -> Any:
    job_id = requests.query_job_id(app)
    logger.append_keys(job_id=str(job_id))
    headers = dict(app.current_event.headers or {})
    deps = bootstrap.deps(requests.deadline(app))
    job = apply_webhook(job_id, headers, requests.raw_body(app), deps)
    return api.respond(200, StatusResponse.of(job))


def is_schedule(event: dict[str, Any]) -> bool:
    return "requestContext" not in event and event.get("action") == "sweep"


@metrics.log_metrics
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL, clear_state=True
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_schedule(event):
        # Leave time to finish in-flight checks before Lambda's own deadline.
        deadline = Deadline.from_context(context, margin_seconds=10.0)
        report = sweep_all(bootstrap.deps(deadline), deadline)
        logger.info("sweep finished", extra={"report": report})
        return report
    return app.resolve(event, context)
