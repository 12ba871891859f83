"""The signed-in person making a request, and the rule that a claimed `userId` must be theirs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.errors import AppError, ErrorCode


@dataclass(frozen=True)
class Caller:
    """The signed-in person making a request."""

    user_id: UUID
    claims: dict[str, Any]


def check_claimed_user(caller: Caller, claimed: object) -> None:
    """A `userId` sent by the browser is optional, but when present it must be the caller."""
    if claimed in (None, ""):
        return
    try:
        same = UUID(str(claimed)) == caller.user_id
    except ValueError:
        same = False
    if not same:
        raise AppError(ErrorCode.USER_MISMATCH, "userId does not match the signed-in user.")
