"""check_training_status: a job's status (GET /?jobId=, POST /), the owner's cancel
(POST /cancel) and delete (DELETE /?jobId=, POST /delete), Replicate's webhooks
(POST /webhooks/replicate?jobId=) and the scheduled sweep of every active job."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import clients, http, warmup
from shared.observability import logger, metrics
from shared.privacy import cancel_job, delete_job, deletion_response
from shared.retry import Deadline
from shared.status import apply_webhook, get_status, status_response
from shared.sweep import sweep_all

app = http.make_app()
# SDKs load at first use; with SnapStart or provisioned concurrency, during init instead.
warmup.preload(*warmup.REQUEST_PATH, "replicate")


def _answer(user_id: Any, job_id: Any) -> Any:
    logger.append_keys(job_id=str(job_id))
    job = get_status(user_id, job_id, clients.start_deps(http.deadline(app)))
    return http.respond(200, status_response(job))


@app.get("/")
def status_get() -> Any:
    who = http.caller(app)
    job_id = http.query_job_id(app)
    return _answer(who.user_id, job_id)


@app.post("/")
def status_post() -> Any:
    who, request = http.job_request(app)
    return _answer(who.user_id, request.job_id)


@app.post("/cancel")
def cancel_post() -> Any:
    who, request = http.job_request(app)
    logger.append_keys(job_id=str(request.job_id))
    job = cancel_job(who.user_id, request.job_id, clients.start_deps(http.deadline(app)))
    return http.respond(200, status_response(job))


def _delete(user_id: Any, job_id: Any) -> Any:
    logger.append_keys(job_id=str(job_id))
    job = delete_job(user_id, job_id, clients.start_deps(http.deadline(app)))
    # 202 while the sweep still has something to remove; 200 once everything is gone.
    return http.respond(200 if job.deleted_at else 202, deletion_response(job))


@app.delete("/")
def delete_query() -> Any:
    who = http.caller(app)
    job_id = http.query_job_id(app)
    return _delete(who.user_id, job_id)


@app.post("/delete")
def delete_post() -> Any:
    who, request = http.job_request(app)
    return _delete(who.user_id, request.job_id)


@app.post("/webhooks/replicate")
def replicate_webhook() -> Any:
    job_id = http.query_job_id(app)
    logger.append_keys(job_id=str(job_id))
    headers = dict(app.current_event.headers or {})
    job = apply_webhook(job_id, headers, http.raw_body(app), clients.start_deps(http.deadline(app)))
    return http.respond(200, status_response(job))


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
        report = sweep_all(clients.start_deps(deadline), deadline)
        logger.info("sweep finished", extra={"report": report})
        return report
    return app.resolve(event, context)
