"""A twin's preview pictures: a set as answered (in a job's status and in a twin's versions),
the request for new pictures, the preview webhook's answer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from pydantic import Field

from shared.contract.base import CamelModel
from shared.domain.previews import (
    STYLES,
    PreviewFailure,
    PreviewKind,
    PreviewSet,
    PreviewStatus,
    SetStatus,
)


class PreviewPicture(CamelModel):
    """One preview: a signed URL to our private copy once ready (never a Replicate URL)."""

    preview_id: UUID
    slot: int
    status: PreviewStatus
    url: str | None  # short-lived (urlExpiresAt); ask the status or twin route again for a new one
    url_expires_at: datetime | None
    content_type: str | None
    prompt: str
    error_code: PreviewFailure | None
    error_message: str | None


class PreviewSetView(CamelModel):
    """A set of previews: the version's first pictures (kind `completion`) or one request."""

    set_id: UUID
    kind: PreviewKind
    style: str | None
    status: SetStatus  # pending, ready, partly_ready or failed
    ready: int
    total: int
    created_at: datetime
    pictures: list[PreviewPicture]

    @classmethod
    def of_set(
        cls, s: PreviewSet | None, urls: Mapping[str, str], expires_at: datetime | None
    ) -> PreviewSetView | None:
        if s is None:
            return None
        pictures = []
        for p in s.pictures:
            url = urls.get(p.storage_path) if p.storage_path else None
            pictures.append(
                PreviewPicture(
                    preview_id=p.id,
                    slot=p.slot,
                    status=p.status,
                    url=url,
                    url_expires_at=expires_at if url else None,
                    content_type=p.content_type,
                    prompt=p.prompt,
                    error_code=p.failure_code,
                    error_message=p.error_message,
                )
            )
        return cls(
            set_id=s.set_id,
            kind=s.kind,
            style=s.style,
            status=s.status,
            ready=sum(p.status is PreviewStatus.READY for p in s.pictures),
            total=len(s.pictures),
            created_at=s.created_at,
            pictures=pictures,
        )


class PreviewRequest(CamelModel):
    """Body of POST /twins/{twinId}/previews: new pictures of the active version."""

    style: str | None = Field(
        default=None,
        max_length=100,
        description="One of " + ", ".join(STYLES) + ", or the twin's own hybridStyle; "
        "none: the twin's hybridStyle.",
    )
    count: int = Field(default=4, ge=1, le=4)
    # The same requestId again (a retry, a double click) answers the same set, counted once.
    request_id: UUID | None = None
    user_id: UUID | None = None


class PreviewWebhookResponse(CamelModel):
    preview_id: UUID
    status: PreviewStatus
