"""Previews: the twin's first pictures, made with a version when it completes, kept private.

Whoever sees a training complete first (the webhook, a status call, the sweep) makes the
version's completion set: `preview_count` rows whose ids derive from the job's id (a repeat
names the same rows), then a compare-and-set on the job's `previews_requested_at` decides who
runs them. Each picture costs money, so it follows the training start's claim discipline:
1. a compare-and-set takes the picture's claim (a fresh token) before anything is paid for;
2. the prediction's seed derives from the picture's id, so a resumer whose claim outlived its
   holder (`claim_timeout_seconds`) first looks for a prediction with that version, seed and
   prompt and adopts it; only without one does it create;
3. the prediction's id is recorded under the claim; the create is repeated only after a refusal
   that proves it did not land (`ReplicatePredictor.create_prediction`).
A create waits for its picture (`Prefer: wait`, `preview_wait_seconds`); a picture still running
then is finished by its webhook (`?previewId=`), the status route or the sweep, whoever first.
Its output is copied into the private bucket at once (`{user}/previews/{job}/{id}.webp`) and
answers carry short-lived signed URLs, never Replicate's. A picture that fails (flagged as
unsafe, canceled past `preview_timeout_seconds`: Replicate's own Cancel-After, and the sweep's)
fails alone: the job stays completed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.domain.job import Job, JobStatus
from shared.domain.previews import (
    FAILURE_MESSAGES,
    PredictionInfo,
    Preview,
    PreviewFailure,
    PreviewKind,
    PreviewSet,
    PreviewStatus,
    SetStatus,
    claim_alive,
    completion_set_id,
    failure_of,
    group_sets,
    hung,
    prediction_input,
    preview_folder,
    preview_id,
    preview_path,
    prompts,
    seed_of,
    sniff_image,
)
from shared.domain.training import CLOCK_SKEW
from shared.errors import AppError, ErrorCode, UpstreamError
from shared.plumbing import json_input, webhooks
from shared.plumbing.deadline import Deadline
from shared.plumbing.settings import Settings
from shared.services.common import TaskReport, for_each_job, remove_quietly, tally
from shared.services.deps import Deps
from shared.services.notices import NOTICE_RETRY_WINDOW, notify_once

logger = Logger(child=True)

PREVIEW_BATCH = 500
# Replicate removes outputs an hour after the prediction: past this, a failed copy is final.
OUTPUT_LIFETIME = timedelta(minutes=55)


def _now() -> datetime:
    return datetime.now(UTC)


def webhook_url(settings: Settings, picture: UUID) -> str | None:
    if not settings.webhook_base_url:
        return None
    return (
        f"{settings.webhook_base_url}/webhooks/replicate/previews?previewId={quote(str(picture))}"
    )


def new_rows(
    job: Job,
    set_id: UUID,
    kind: PreviewKind,
    count: int,
    customization: dict[str, Any],
    style: str | None,
    settings: Settings,
) -> list[dict[str, Any]]:
    """The rows of a new set of `count` pictures of `job`'s version (ids from `set_id`)."""
    assert job.replicate_model_version
    texts = prompts(
        settings.preview_templates, customization, settings.training_trigger_word, count, style
    )
    rows = []
    for slot, text in enumerate(texts):
        pid = preview_id(set_id, slot)
        rows.append(
            {
                "id": pid,
                "job_id": job.id,
                "user_id": job.user_id,
                "set_id": set_id,
                "kind": kind,
                "slot": slot,
                "style": style,
                "prompt": text,
                "seed": seed_of(pid),
                "lora_scale": settings.preview_lora_scale,
                "model_version": job.replicate_model_version,
                "reserved_cost_usd": settings.preview_cost_estimate_usd,
            }
        )
    return rows


def _customization(job: Job, deps: Deps) -> dict[str, Any]:
    twin = deps.twins.get(job.twin_id) if job.twin_id else None
    return twin.customization_data if twin is not None else job.customization_data


def start_completion_previews(job: Job, deps: Deps) -> None:
    """Make the completed version's set once, and run it if this caller won it. Never raises:
    previews must not fail the status answer or the webhook that completed the job."""
    count = deps.settings.preview_count
    if (
        count == 0
        or job.status is not JobStatus.COMPLETED
        or not job.replicate_model_version
        or job.previews_requested_at is not None
        or job.deletion_requested_at is not None
    ):
        return
    log = {"job_id": str(job.id)}
    try:
        rows = new_rows(
            job,
            completion_set_id(job.id),
            PreviewKind.COMPLETION,
            count,
            _customization(job, deps),
            None,
            deps.settings,
        )
        pictures = deps.previews.insert_set(rows)
        if not deps.jobs.compare_and_set(job.id, "previews_requested_at", None, _now()):
            return  # another observer runs them
        logger.info("previews started", extra={**log, "count": len(pictures)})
        run_pictures(pictures, deps)
    except Exception:
        logger.warning("previews left for the sweep", extra=log, exc_info=True)


def run_pictures(pictures: Sequence[Preview], deps: Deps) -> list[Preview]:
    """Each pending picture in parallel (their creates wait for the pictures side by side)."""
    pending = [p for p in pictures if p.status is PreviewStatus.PENDING]
    if not pending:
        return list(pictures)

    def one(p: Preview) -> Preview:
        try:
            # The caller sends the notice once the set is done (one attempt, not one a picture).
            return run_picture(p, deps, notify=False)
        except Exception:
            logger.warning(
                "a preview is left for the sweep", extra={"preview_id": str(p.id)}, exc_info=True
            )
            return deps.previews.get(p.id) or p

    with ThreadPoolExecutor(max_workers=min(len(pending), 8)) as pool:
        done = {p.id: p for p in pool.map(one, pending)}
    return [done.get(p.id, p) for p in pictures]


def _input(p: Preview) -> dict[str, Any]:
    return prediction_input(p.prompt, p.seed, p.lora_scale)


def run_picture(p: Preview, deps: Deps, *, notify: bool = True) -> Preview:
    """Take a pending picture one step further: create (or adopt) its prediction, follow it,
    cancel it past its bound, copy its output. Safe to run again at any point."""
    now = _now()
    s = deps.settings
    if p.status.is_final or p.deleted_at is not None:
        return p
    prediction: PredictionInfo | None = None
    if p.prediction_id is None:
        if claim_alive(p, now, s.claim_timeout_seconds):
            return p  # its holder is on it
        token = uuid.uuid4()
        taken = deps.previews.claim(p.id, p.claim_token, token, now)
        if taken is None:
            return deps.previews.get(p.id) or p
        if p.claimed_at is not None:
            # An earlier attempt may have got as far as its create: adopt what it made (nothing
            # of this picture can be older than its row).
            prediction = deps.predictor.find_prediction(
                p.model_version, _input(p), p.created_at - CLOCK_SKEW
            )
            if prediction is None and hung(p, now, s.preview_timeout_seconds, since=p.created_at):
                # Tried for the whole bound and never made: give up (one found is still adopted).
                return _fail(p, PreviewFailure.PREDICTION_FAILED, None, deps, notify)
        if prediction is None:
            prediction = deps.predictor.create_prediction(
                p.model_version,
                _input(p),
                webhook_url(s, p.id),
                wait_seconds=s.preview_wait_seconds,
                cancel_after_seconds=s.preview_timeout_seconds,
            )
        recorded = deps.previews.update(
            p.id,
            {
                "prediction_id": prediction.id,
                "prediction_created_at": prediction.created_at or now,
            },
            expect_claim=token,
        )
        if recorded is None:
            return deps.previews.get(p.id) or p  # deleted meanwhile
        p = recorded
    else:
        prediction = deps.predictor.get_prediction(p.prediction_id)
        if prediction is None:
            return _fail(p, PreviewFailure.PREDICTION_FAILED, None, deps, notify)
    if not prediction.is_terminal:
        if hung(p, now, s.preview_timeout_seconds):
            canceled = deps.predictor.cancel_prediction(prediction.id)
            if canceled is None or not canceled.is_terminal or canceled.status != "succeeded":
                return _fail(p, PreviewFailure.TIMED_OUT, canceled, deps, notify)
            prediction = canceled  # it finished first
        else:
            return p
    return settle_picture(p, prediction, deps, notify=notify)


def _cost(prediction: PredictionInfo | None, settings: Settings) -> dict[str, Any]:
    seconds = prediction.predict_time if prediction is not None else None
    if seconds is None:
        return {}
    return {
        "predict_time_seconds": seconds,
        "cost_usd": round(seconds * settings.preview_price_per_second, 6),
    }


def _fail(
    p: Preview,
    code: PreviewFailure,
    prediction: PredictionInfo | None,
    deps: Deps,
    notify: bool = True,
) -> Preview:
    changes = {
        "status": PreviewStatus.FAILED,
        "failure_code": code,
        "error_message": FAILURE_MESSAGES[code],
        "finished_at": _now(),
        **_cost(prediction, deps.settings),
    }
    if prediction is None or prediction.predict_time is None:
        changes["reserved_cost_usd"] = 0 if p.prediction_id is None else p.reserved_cost_usd
    logger.warning(
        "preview failed",
        extra={
            "preview_id": str(p.id),
            "job_id": str(p.job_id),
            "reason": code.value,
            "error": None if prediction is None else str(prediction.error)[:500],
        },
    )
    done = deps.previews.update(p.id, changes)
    if done is None:
        return deps.previews.get(p.id) or p
    return _after_settled(done, deps) if notify else done


def settle_picture(
    p: Preview, prediction: PredictionInfo, deps: Deps, *, notify: bool = True
) -> Preview:
    """A finished prediction: its output copied into the bucket, or the picture failed; with
    `notify`, the notice goes once the picture was its set's last."""
    if prediction.status != "succeeded":
        return _fail(p, failure_of(prediction), prediction, deps, notify)
    url = prediction.output_url
    if url is None:
        return _fail(p, PreviewFailure.PREDICTION_FAILED, prediction, deps, notify)
    try:
        data = deps.predictor.fetch_output(url)
    except (UpstreamError, AppError):
        ended = prediction.completed_at or p.prediction_created_at
        if ended is not None and _now() - ended > OUTPUT_LIFETIME:
            return _fail(p, PreviewFailure.OUTPUT_LOST, prediction, deps, notify)
        raise  # the sweep copies it later
    content_type = sniff_image(data)
    if content_type is None:
        return _fail(p, PreviewFailure.PREDICTION_FAILED, prediction, deps, notify)
    path = preview_path(p, content_type)
    deps.photos.put(path, data, content_type)
    done = deps.previews.update(
        p.id,
        {
            "status": PreviewStatus.READY,
            "storage_path": path,
            "content_type": content_type,
            "finished_at": _now(),
            **_cost(prediction, deps.settings),
        },
    )
    if done is None:
        current = deps.previews.get(p.id)
        if current is None or current.deleted_at is not None or current.storage_path != path:
            remove_quietly(deps.photos, [path])  # deleted meanwhile: leave nothing behind
        return current or p
    return _after_settled(done, deps) if notify else done


def _after_settled(p: Preview, deps: Deps) -> Preview:
    """The last picture of a completion set settled: its notice may go now."""
    if p.kind is PreviewKind.COMPLETION:
        pictures = [x for x in deps.previews.for_jobs([p.job_id]) if x.set_id == p.set_id]
        if all(x.status.is_final for x in pictures):
            job = deps.jobs.get(p.job_id)
            if job is not None:
                notify_once(job, deps)
    return p


# --- the webhook ---------------------------------------------------------------------------------


def apply_preview_webhook(
    picture_id: UUID, headers: dict[str, str], body: bytes, deps: Deps
) -> Preview:
    """A verified prediction webhook for one picture; a repeat or a late one changes nothing."""
    secret = deps.settings.replicate_webhook_secret
    if secret is None:
        raise UpstreamError(
            "Webhooks are not configured on this deployment.", ErrorCode.WEBHOOKS_DISABLED
        )
    webhooks.verify(secret.get_secret_value(), headers, body)
    try:
        # Bounded like the training webhook's: a deep body must not reach the parser.
        prediction = PredictionInfo.model_validate(json_input.loads(body, plain_strings=False))
    except ValueError:
        raise AppError(
            ErrorCode.BAD_WEBHOOK, "The webhook body is not a prediction object."
        ) from None
    p = deps.previews.get(picture_id)
    if p is None or p.deleted_at is not None:
        raise AppError(ErrorCode.PREVIEW_NOT_FOUND, "No preview with this id.")
    if p.prediction_id is None and _is_ours(p, prediction):
        # The webhook beat the creator to recording the id; version, seed and prompt prove it.
        p = deps.previews.update(p.id, {"prediction_id": prediction.id}) or p
    elif p.prediction_id != prediction.id:
        raise AppError(ErrorCode.PREDICTION_MISMATCH, "This webhook is for a different prediction.")
    if p.status.is_final or not prediction.is_terminal:
        return p
    return settle_picture(p, prediction, deps)


def _is_ours(p: Preview, prediction: PredictionInfo) -> bool:
    version_id = p.model_version.rsplit(":", 1)[-1]
    return (
        prediction.version in (version_id, p.model_version)
        and prediction.input.get("seed") == p.seed
        and prediction.input.get("prompt") == p.prompt
    )


# --- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedSets:
    """Sets per version, with signed URLs for their ready pictures."""

    sets: dict[UUID, list[PreviewSet]]
    urls: dict[str, str]
    expires_at: datetime | None

    def of(self, job_id: UUID) -> list[PreviewSet]:
        return self.sets.get(job_id, [])

    def completion(self, job_id: UUID) -> PreviewSet | None:
        return next((s for s in self.of(job_id) if s.kind is PreviewKind.COMPLETION), None)


def signed_sets(job_ids: Sequence[UUID], deps: Deps, expires_in: int | None = None) -> SignedSets:
    """The versions' sets and one signing round trip for every ready picture; without a
    version's previews (or when signing fails) the answer goes on without them."""
    if not job_ids:
        return SignedSets({}, {}, None)
    pictures = deps.previews.for_jobs(job_ids)
    sets: dict[UUID, list[PreviewSet]] = {}
    for s in group_sets(pictures):
        sets.setdefault(s.pictures[0].job_id, []).append(s)
    paths = [p.storage_path for p in pictures if p.storage_path and p.deleted_at is None]
    seconds = expires_in or deps.settings.preview_url_seconds
    urls: dict[str, str] = {}
    if paths:
        try:
            urls = deps.photos.signed_urls(paths, seconds)
        except Exception:
            logger.warning(
                "previews could not be signed; answered without their URLs", exc_info=True
            )
    return SignedSets(sets, urls, _now() + timedelta(seconds=seconds) if urls else None)


def set_settled(s: PreviewSet | None) -> bool:
    return s is None or s.status is not SetStatus.PENDING


# --- the sweep -----------------------------------------------------------------------------------


@dataclass
class PreviewReport(TaskReport):
    sets_started: int = 0
    settled: int = 0


def sweep_previews(deps: Deps, deadline: Deadline) -> PreviewReport:
    """The sweep's task: a completion set nobody made (the observer died first), then every
    pending picture (a create that died, a webhook missed, a prediction hung)."""
    report = PreviewReport()
    if deps.settings.preview_count:
        since = _now() - NOTICE_RETRY_WINDOW
        for job in deps.jobs.list_without_previews(since, PREVIEW_BATCH):
            if deadline.expired():
                break
            start_completion_previews(job, deps)
            report.sets_started += 1
    pending = deps.previews.list_unfinished(PREVIEW_BATCH)
    outcomes = for_each_job(
        pending,
        lambda p: run_picture(p, deps),
        deadline=deadline,
        workers=deps.settings.sweep_concurrency,
        failure="a preview could not be followed",
        log_key="preview_id",
    )

    def count(r: PreviewReport, _: Preview, after: Preview) -> None:
        r.settled += after.status.is_final

    report.seen = len(pending)
    return tally(report, outcomes, count)


# --- deletion ------------------------------------------------------------------------------------


def remove_previews(job: Job, deps: Deps, now: datetime) -> bool:
    """A version being deleted: its running predictions canceled, its rows anonymised (kept
    for the day's count and spend), then its pictures removed from the bucket. A picture being
    copied right now finds its row deleted and removes its own copy."""
    for p in deps.previews.for_jobs([job.id]):
        if p.status is PreviewStatus.PENDING and p.prediction_id:
            deps.predictor.cancel_prediction(p.prediction_id)
        changes: dict[str, Any] = {"deleted_at": now, "prompt": "", "storage_path": None}
        if p.status is PreviewStatus.PENDING:
            changes.update(
                status=PreviewStatus.FAILED,
                failure_code=PreviewFailure.DELETED,
                error_message=FAILURE_MESSAGES[PreviewFailure.DELETED],
                finished_at=now,
            )
        deps.previews.update(p.id, changes, expect_status=None)
    deps.photos.remove(deps.photos.list_names(preview_folder(job.user_id, job.id)))
    return True
