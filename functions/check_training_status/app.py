"""check_training_status: a job's status (GET /?jobId=[&history=1], POST /), the owner's job list
(GET /jobs), cancel (POST /cancel) and delete (DELETE /?jobId=, POST /delete), the owner's twins
(GET /twins, GET/PATCH/DELETE /twins/<twinId>, PUT /twins/<twinId>/active, POST
/twins/<twinId>/previews), Replicate's webhooks (POST /webhooks/replicate?jobId=, POST
/webhooks/replicate/previews?previewId=) and the scheduled sweep of every active job. The routes, their
bodies and error codes: `shared.contract`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import bootstrap, contract
from shared.api import app as api
from shared.api import requests
from shared.contract import (
    ActivateRequest,
    DeletionResponse,
    PreviewRequest,
    PreviewSetView,
    PreviewWebhookResponse,
    StatusRequest,
    TwinDeletionResponse,
    TwinListResponse,
    TwinResponse,
)
from shared.plumbing import warmup
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import logger, metrics
from shared.services.listing import list_jobs
from shared.services.preview_requests import request_previews
from shared.services.previews import apply_preview_webhook, signed_sets
from shared.services.privacy import cancel_job, delete_job
from shared.services.status import apply_webhook, get_status, status_answer
from shared.services.sweep import sweep_all
from shared.services.twins import (
    TwinView,
    activate_version,
    delete_twin,
    get_twin,
    list_twins,
    parse_twin_id,
    update_twin,
)

app = api.make_app(bootstrap.settings)
# SDKs load at first use; with SnapStart or provisioned concurrency, during init instead.
warmup.preload(*warmup.REQUEST_PATH, "replicate")


def _answer(user_id: UUID, job_id: UUID, *, history: bool) -> Any:
    logger.append_keys(job_id=str(job_id))
    deps = bootstrap.deps(requests.deadline(app))
    job = get_status(user_id, job_id, deps)
    return api.respond_status(status_answer(job, deps, with_history=history))


@app.handle(contract.GET_STATUS)
def status_get() -> Any:
    who = requests.caller(app)
    job_id = requests.query_job_id(app)
    return _answer(who.user_id, job_id, history=requests.query_flag(app, "history"))


@app.handle(contract.POST_STATUS)
def status_post() -> Any:
    who, body = requests.json_request(app)
    request = requests.parse_model(StatusRequest, body)
    return _answer(who.user_id, request.job_id, history=request.history)


@app.handle(contract.LIST_JOBS)
def jobs_get() -> Any:
    who = requests.caller(app)
    query = app.current_event.get_query_string_value
    page = list_jobs(
        who.user_id, query("limit"), query("cursor"), bootstrap.deps(requests.deadline(app))
    )
    return api.respond(200, page)


@app.handle(contract.CANCEL_JOB)
def cancel_post() -> Any:
    who, request = requests.job_request(app)
    logger.append_keys(job_id=str(request.job_id))
    deps = bootstrap.deps(requests.deadline(app))
    return api.respond_status(status_answer(cancel_job(who.user_id, request.job_id, deps), deps))


def _delete(user_id: UUID, job_id: UUID) -> Any:
    logger.append_keys(job_id=str(job_id))
    job = delete_job(user_id, job_id, bootstrap.deps(requests.deadline(app)))
    # 202 while the sweep still has something to remove; 200 once everything is gone.
    return api.respond(200 if job.deleted_at else 202, DeletionResponse.of(job))


@app.handle(contract.DELETE_JOB)
def delete_query() -> Any:
    who = requests.caller(app)
    return _delete(who.user_id, requests.query_job_id(app))


@app.handle(contract.DELETE_JOB_POST)
def delete_post() -> Any:
    who, request = requests.job_request(app)
    return _delete(who.user_id, request.job_id)


@app.handle(contract.LIST_TWINS)
def twins_list() -> Any:
    who = requests.caller(app)
    views = list_twins(who.user_id, bootstrap.deps(requests.deadline(app)))
    return api.respond(200, TwinListResponse(twins=[_twin(v) for v in views]))


@app.handle(contract.GET_TWIN)
def twin_get(twin_id: str) -> Any:
    who = requests.caller(app)
    view = get_twin(who.user_id, _twin_id(twin_id), bootstrap.deps(requests.deadline(app)))
    return api.respond(200, _twin(view))


@app.handle(contract.UPDATE_TWIN)
def twin_update(twin_id: str) -> Any:
    who, body = requests.json_request(app)
    deps = bootstrap.deps(requests.deadline(app))
    return api.respond(200, _twin(update_twin(who.user_id, _twin_id(twin_id), body, deps)))


@app.handle(contract.ACTIVATE_VERSION)
def twin_activate(twin_id: str) -> Any:
    who, body = requests.json_request(app)
    request = requests.parse_model(ActivateRequest, body)
    deps = bootstrap.deps(requests.deadline(app))
    view = activate_version(who.user_id, _twin_id(twin_id), request.job_id, deps)
    return api.respond(200, _twin(view))


@app.handle(contract.DELETE_TWIN)
def twin_delete(twin_id: str) -> Any:
    who = requests.caller(app)
    twin = delete_twin(who.user_id, _twin_id(twin_id), bootstrap.deps(requests.deadline(app)))
    # 202 while the sweep still has something to remove; 200 once everything is gone.
    return api.respond(200 if twin.deleted_at else 202, TwinDeletionResponse.of(twin))


def _twin_id(raw: str) -> UUID:
    twin_id = parse_twin_id(raw)
    logger.append_keys(twin_id=str(twin_id))
    return twin_id


def _twin(view: TwinView) -> TwinResponse:
    signed = view.previews
    if signed is None:
        return TwinResponse.of(view.twin, view.versions)
    return TwinResponse.of(view.twin, view.versions, signed.sets, signed.urls, signed.expires_at)


@app.handle(contract.REQUEST_PREVIEWS)
def twin_previews(twin_id: str) -> Any:
    who, body = requests.json_request(app)
    request = requests.parse_model(PreviewRequest, body)
    deps = bootstrap.deps(requests.deadline(app))
    made = request_previews(who.user_id, _twin_id(twin_id), request, deps)
    signed = signed_sets([made.pictures[0].job_id], deps)
    view = next(s for s in signed.of(made.pictures[0].job_id) if s.set_id == made.set_id)
    answer = PreviewSetView.of_set(view, signed.urls, signed.expires_at)
    assert answer is not None
    return api.respond(202 if answer.status == "pending" else 200, answer)


@app.handle(contract.PREVIEW_WEBHOOK)
def preview_webhook() -> Any:
    preview_id = requests.query_uuid(app, "previewId")
    logger.append_keys(preview_id=str(preview_id))
    headers = dict(app.current_event.headers or {})
    deps = bootstrap.deps(requests.deadline(app))
    picture = apply_preview_webhook(preview_id, headers, requests.raw_body(app), deps)
    return api.respond(200, PreviewWebhookResponse(preview_id=picture.id, status=picture.status))


@app.handle(contract.REPLICATE_WEBHOOK)
def replicate_webhook() -> Any:
    job_id = requests.query_job_id(app)
    logger.append_keys(job_id=str(job_id))
    headers = dict(app.current_event.headers or {})
    deps = bootstrap.deps(requests.deadline(app))
    job = apply_webhook(job_id, headers, requests.raw_body(app), deps)
    return api.respond_status(status_answer(job, deps))


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
