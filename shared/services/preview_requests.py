"""Pictures on demand: the owner asks for new pictures of a twin's active version, in a style,
at most `previews_per_day` pictures a day (UTC), counted by the database in one atomic call so
concurrent requests cannot pass the limit together. Each picture then runs like a completion
preview (`shared.services.previews`), with its cost recorded and counted in the day's spend."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

from shared.contract.previews import PreviewRequest
from shared.domain.job import JobStatus
from shared.domain.previews import PREVIEW_NAMESPACE, STYLES, PreviewKind, PreviewSet, group_sets
from shared.errors import AppError, ErrorCode
from shared.services.deps import Deps
from shared.services.previews import new_rows, run_pictures
from shared.services.versions import owned_twin


def request_previews(
    user_id: UUID, twin_id: UUID, request: PreviewRequest, deps: Deps
) -> PreviewSet:
    twin = owned_twin(deps, twin_id, user_id)
    per_day = deps.settings.previews_per_day
    if per_day == 0:
        raise AppError(ErrorCode.PREVIEWS_OFF, "Pictures on demand are switched off here.")
    job = deps.jobs.get(twin.active_job_id) if twin.active_job_id else None
    if job is None or job.status is not JobStatus.COMPLETED or not job.replicate_model_version:
        raise AppError(
            ErrorCode.NO_ACTIVE_VERSION,
            "This twin has no trained version yet; ask again once its training has completed.",
        )
    own = twin.customization_data.get("hybridStyle")
    if request.style is not None and request.style not in STYLES and request.style != own:
        raise AppError(
            ErrorCode.INVALID_FIELD,
            "style must be one of " + ", ".join(STYLES) + (f", or {own!r}" if own else "") + ".",
        )
    # A repeated requestId names the same set (per owner: another's id cannot collide).
    request_key = request.request_id or uuid.uuid4()
    set_id = uuid.uuid5(PREVIEW_NAMESPACE, f"on_demand:{user_id}:{request_key}")
    rows = new_rows(
        job,
        set_id,
        PreviewKind.ON_DEMAND,
        request.count,
        twin.customization_data,
        request.style or own,
        deps.settings,
    )
    accepted, used = deps.previews.request_on_demand(user_id, rows, per_day, datetime.now(UTC))
    if not accepted:
        raise AppError(
            ErrorCode.PREVIEW_LIMIT_REACHED,
            f"You can ask for {per_day} pictures a day and have {max(per_day - used, 0)} left "
            "today; ask for fewer, or again tomorrow.",
        )
    pictures = [p for p in deps.previews.for_jobs([job.id]) if p.set_id == set_id]
    run_pictures(pictures, deps)
    pictures = [p for p in deps.previews.for_jobs([job.id]) if p.set_id == set_id]
    return group_sets(pictures)[0]
