"""Which twin an upload becomes a version of: a new twin made from the upload's name and
customisation, or a retrain of one of the caller's twins, refused before any photo is looked at
when it cannot happen (someone else's twin, one being deleted, one with a version on its way).
Both upload flows use it; the twin routes (`services.twins`) use its ownership check."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.domain.caller import Caller
from shared.domain.job import validate_furrsona_name
from shared.domain.twin import Twin, version_on_its_way
from shared.errors import AppError, ErrorCode
from shared.services.deps import Deps
from shared.services.intake import parse_customization

logger = Logger(child=True)

Field = Callable[[str], object]  # a request field by name: a form's or a JSON body's


def twin_not_found() -> AppError:
    return AppError(ErrorCode.TWIN_NOT_FOUND, "No twin with this id belongs to you.")


def parse_twin_id(raw: object) -> UUID:
    try:
        return UUID(str(raw))
    except ValueError:
        raise AppError(ErrorCode.INVALID_TWIN_ID, "twinId must be a twin id (a UUID).") from None


def owned_twin(deps: Deps, twin_id: UUID, user_id: UUID, *, include_deleted: bool = False) -> Twin:
    """The caller's twin; someone else's, or one being deleted, answers like a missing one."""
    twin = deps.twins.get(twin_id)
    hidden = twin is not None and twin.being_deleted and not include_deleted
    if twin is None or twin.user_id != user_id or hidden:
        raise twin_not_found()
    return twin


@dataclass(frozen=True)
class VersionPlan:
    """Which twin an upload becomes a version of: `twin` (a retrain) or a new one made from
    `name` and `customization` once the photos have passed their checks."""

    name: str
    customization: dict[str, Any]
    twin: Twin | None


def plan_version(caller: Caller, field: Field, deps: Deps) -> VersionPlan:
    """Read `twinId`, `fursonaName` and `customizationData` of an upload request; refuse, before
    any photo is looked at, a retrain that cannot happen."""
    raw_twin = field("twinId")
    if raw_twin in (None, ""):
        name = validate_furrsona_name(field("fursonaName"))
        return VersionPlan(name, parse_customization(field("customizationData")), None)
    twin = deps.twins.get(parse_twin_id(raw_twin))
    if twin is None or twin.user_id != caller.user_id:
        raise twin_not_found()
    if twin.being_deleted:
        raise AppError(
            ErrorCode.TWIN_DELETING, "This twin is being deleted; it cannot be retrained."
        )
    if field("fursonaName") not in (None, "") or field("customizationData") not in (None, ""):
        raise AppError(
            ErrorCode.INVALID_FIELD,
            "A retrain takes the twin's own name and customisation: leave out fursonaName and "
            "customizationData, or change them with PATCH /twins/{twinId}.",
        )
    refuse_if_busy(twin, deps)
    return VersionPlan(twin.name, twin.customization_data, twin)


def refuse_if_busy(twin: Twin, deps: Deps) -> None:
    busy = version_on_its_way(deps.jobs.list_versions([twin.id]))
    if busy is not None:
        raise AppError(
            ErrorCode.TWIN_BUSY,
            f"Version {busy.version} of this twin is still {busy.status.value}; wait for it to "
            "finish (or cancel it) before training another.",
        )


def open_twin(caller: Caller, plan: VersionPlan, deps: Deps) -> tuple[Twin, bool]:
    """The twin of the new version, made now if the plan asks for a new one; True if it was."""
    if plan.twin is not None:
        return plan.twin, False
    twin = deps.twins.insert(
        {
            "id": uuid.uuid4(),  # ours, so a repeated insert finds the row it made
            "user_id": caller.user_id,
            "name": plan.name,
            "customization_data": plan.customization,
        }
    )
    return twin, True


def drop_twin_if_unused(twin_id: UUID | None, deps: Deps) -> None:
    """Remove a twin that never got a version (its first upload was refused); the database keeps
    one that has (a retrain that slipped in), and that refusal is fine here."""
    if twin_id is None or deps.jobs.list_versions([twin_id]):
        return
    try:
        deps.twins.delete(twin_id)
    except AppError:
        logger.info("twin kept: it has a version now", extra={"twin_id": str(twin_id)})
