"""check_training_status: a job's status (GET /?jobId=[&history=1], POST /), the owner's job list
(GET /jobs), cancel (POST /cancel) and delete (DELETE /?jobId=, POST /delete), the owner's twins
(GET /twins, GET/PATCH/DELETE /twins/<twinId>, PUT /twins/<twinId>/active, POST
/twins/<twinId>/previews), Replicate's webhooks (POST /webhooks/replicate?jobId=, POST
/webhooks/replicate/previews?previewId=) and the scheduled sweep of every active job. The routes, their
bodies and error codes: `shared.contract.routes`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import bootstrap
from shared.api import app as api
from shared.api import requests
from shared.contract import routes
from shared.contract.previews import PreviewRequest, PreviewSetView, PreviewWebhookResponse
from shared.contract.status import StatusRequest
from shared.plumbing import warmup
from shared.plumbing.deadline import Deadline
from shared.plumbing.observability import logger, metrics
from shared.services.status import apply_webhook, get_status, status_answer

if TYPE_CHECKING:
    from shared.contract.twins import TwinResponse
    from shared.services.twins import TwinView

# A job's status and Replicate's training webhook, what this URL answers most, load with the
# function. The other routes (the job list, cancel and delete, the twins, new pictures and their
# webhook), the sweep, and the status's once-per-job branches (the next admission, a stalled
# start, the notice, the first pictures: `services.status`) load their code when first asked
# (cold start: bench cold_start), or all of it during init when init runs ahead of time.
ON_DEMAND = (
    "shared.services.start",
    "shared.services.launch",
    "shared.services.notices",
    "shared.services.previews",
    "shared.services.listing",
    "shared.services.privacy",
    "shared.services.twins",
    "shared.services.preview_requests",
    "shared.services.sweep",
    "shared.contract.jobs",
    "shared.contract.twins",
)

app = api.make_app(bootstrap.settings)
# SDKs load at first use; with SnapStart or provisioned concurrency, during init instead.
warmup.preload(*warmup.REQUEST_PATH, "replicate", *ON_DEMAND)


def _answer(user_id: UUID, job_id: UUID, *, history: bool) -> Any:
    logger.append_keys(job_id=str(job_id))
    deps = bootstrap.deps(requests.deadline(app))
    job = get_status(user_id, job_id, deps)
    return api.respond_status(status_answer(job, deps, with_history=history))


@app.handle(routes.GET_STATUS)
def status_get() -> Any:
    who = requests.caller(app)
    job_id = requests.query_job_id(app)
    return _answer(who.user_id, job_id, history=requests.query_flag(app, "history"))


@app.handle(routes.POST_STATUS)
def status_post() -> Any:
    who, body = requests.json_request(app)
    request = requests.parse_model(StatusRequest, body)
    return _answer(who.user_id, request.job_id, history=request.history)


@app.handle(routes.LIST_JOBS)
def jobs_get() -> Any:
    from shared.services.listing import list_jobs

    who = requests.caller(app)
    query = app.current_event.get_query_string_value
    page = list_jobs(
        who.user_id, query("limit"), query("cursor"), bootstrap.deps(requests.deadline(app))
    )
    return api.respond(200, page)


@app.handle(routes.CANCEL_JOB)
def cancel_post() -> Any:
    from shared.services.privacy import cancel_job

    who, request = requests.job_request(app)
    logger.append_keys(job_id=str(request.job_id))
    deps = bootstrap.deps(requests.deadline(app))
    return api.respond_status(status_answer(cancel_job(who.user_id, request.job_id, deps), deps))


def _delete(user_id: UUID, job_id: UUID) -> Any:
    from shared.contract.jobs import DeletionResponse
    from shared.services.privacy import delete_job

    logger.append_keys(job_id=str(job_id))
    job = delete_job(user_id, job_id, bootstrap.deps(requests.deadline(app)))
    # 202 while the sweep still has something to remove; 200 once everything is gone.
    return api.respond(200 if job.deleted_at else 202, DeletionResponse.of(job))


@app.handle(routes.DELETE_JOB)
def delete_query() -> Any:
    who = requests.caller(app)
    return _delete(who.user_id, requests.query_job_id(app))


@app.handle(routes.DELETE_JOB_POST)
def delete_post() -> Any:
    who, request = requests.job_request(app)
    return _delete(who.user_id, request.job_id)


@app.handle(routes.LIST_TWINS)
def twins_list() -> Any:
    from shared.contract.twins import TwinListResponse
    from shared.services.twins import list_twins

    who = requests.caller(app)
    views = list_twins(who.user_id, bootstrap.deps(requests.deadline(app)))
    return api.respond(200, TwinListResponse(twins=[_twin(v) for v in views]))


@app.handle(routes.GET_TWIN)
def twin_get(twin_id: str) -> Any:
    from shared.services.twins import get_twin

    who = requests.caller(app)
    view = get_twin(who.user_id, _twin_id(twin_id), bootstrap.deps(requests.deadline(app)))
    return api.respond(200, _twin(view))


@app.handle(routes.UPDATE_TWIN)
def twin_update(twin_id: str) -> Any:
    from shared.services.twins import update_twin

    who, body = requests.json_request(app)
    deps = bootstrap.deps(requests.deadline(app))
    return api.respond(200, _twin(update_twin(who.user_id, _twin_id(twin_id), body, deps)))


@app.handle(routes.ACTIVATE_VERSION)
def twin_activate(twin_id: str) -> Any:
    from shared.contract.twins import ActivateRequest
    from shared.services.twins import activate_version

    who, body = requests.json_request(app)
    request = requests.parse_model(ActivateRequest, body)
    deps = bootstrap.deps(requests.deadline(app))
    view = activate_version(who.user_id, _twin_id(twin_id), request.job_id, deps)
    return api.respond(200, _twin(view))


@app.handle(routes.DELETE_TWIN)
def twin_delete(twin_id: str) -> Any:
    from shared.contract.twins import TwinDeletionResponse
    from shared.services.twins import delete_twin

    who = requests.caller(app)
    twin = delete_twin(who.user_id, _twin_id(twin_id), bootstrap.deps(requests.deadline(app)))
    # 202 while the sweep still has something to remove; 200 once everything is gone.
    return api.respond(200 if twin.deleted_at else 202, TwinDeletionResponse.of(twin))


def _twin_id(raw: str) -> UUID:
    from shared.services.versions import parse_twin_id

    twin_id = parse_twin_id(raw)
    logger.append_keys(twin_id=str(twin_id))
    return twin_id


def _twin(view: TwinView) -> TwinResponse:
    from shared.contract.twins import TwinResponse

    signed = view.previews
    if signed is None:
        return TwinResponse.of(view.twin, view.versions)
    return TwinResponse.of(view.twin, view.versions, signed.sets, signed.urls, signed.expires_at)


@app.handle(routes.REQUEST_PREVIEWS)
def twin_previews(twin_id: str) -> Any:
    from shared.services.preview_requests import request_previews
    from shared.services.previews import signed_sets

    who, body = requests.json_request(app)
    request = requests.parse_model(PreviewRequest, body)
    deps = bootstrap.deps(requests.deadline(app))
    made = request_previews(who.user_id, _twin_id(twin_id), request, deps)
    signed = signed_sets([made.pictures[0].job_id], deps)
    view = next(s for s in signed.of(made.pictures[0].job_id) if s.set_id == made.set_id)
    answer = PreviewSetView.of_set(view, signed.urls, signed.expires_at)
    assert answer is not None
    return api.respond(202 if answer.status == "pending" else 200, answer)


@app.handle(routes.PREVIEW_WEBHOOK)
def preview_webhook() -> Any:
    from shared.services.previews import apply_preview_webhook

    preview_id = requests.query_uuid(app, "previewId")
    logger.append_keys(preview_id=str(preview_id))
    headers = dict(app.current_event.headers or {})
    deps = bootstrap.deps(requests.deadline(app))
    picture = apply_preview_webhook(preview_id, headers, requests.raw_body(app), deps)
    return api.respond(200, PreviewWebhookResponse(preview_id=picture.id, status=picture.status))


@app.handle(routes.REPLICATE_WEBHOOK)
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
        from shared.services.sweep import sweep_all

        # Leave time to finish in-flight checks before Lambda's own deadline.
        deadline = Deadline.from_context(context, margin_seconds=10.0)
        report = sweep_all(bootstrap.deps(deadline), deadline)
        logger.info("sweep finished", extra={"report": report})
        return report
    return app.resolve(event, context)
