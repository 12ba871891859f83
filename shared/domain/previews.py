"""Previews: the twin's first pictures, made with a completed version on Replicate and kept in
our private bucket. Rules without I/O: the rows, their states, the prompts, the ids and seeds
that make every step safe to repeat, where the pictures live, the words of a failure."""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

# Fixed: the ids of a version's completion set, and of each picture of a set, derive from it, so
# a repeated (or concurrent) creation of the set names the same rows.
PREVIEW_NAMESPACE = UUID("1f0c7a3e-5b7d-4d8e-9a51-6a7c2f0e4b19")


class PreviewStatus(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self is not PreviewStatus.PENDING


class SetStatus(enum.StrEnum):
    """What a person reads of a set: still coming, all there, some there, none."""

    PENDING = "pending"
    READY = "ready"
    PARTLY_READY = "partly_ready"
    FAILED = "failed"


class PreviewKind(enum.StrEnum):
    COMPLETION = "completion"  # made once when the version completes
    ON_DEMAND = "on_demand"  # asked for by the owner (counted against the daily limit)


class PreviewFailure(enum.StrEnum):
    UNSAFE = "unsafe"
    TIMED_OUT = "timed_out"
    PREDICTION_FAILED = "prediction_failed"
    OUTPUT_LOST = "output_lost"
    DELETED = "deleted"


FAILURE_MESSAGES: dict[PreviewFailure, str] = {
    PreviewFailure.UNSAFE: "The picture was flagged as unsafe, so it was not kept.",
    PreviewFailure.TIMED_OUT: "The picture took too long to make and was canceled.",
    PreviewFailure.PREDICTION_FAILED: "Replicate could not make this picture.",
    PreviewFailure.OUTPUT_LOST: "The picture was made but could not be saved in time.",
    PreviewFailure.DELETED: "The version was deleted.",
}


class Preview(BaseModel):
    """One row of `twin_previews`: one picture."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: UUID
    job_id: UUID
    user_id: UUID
    set_id: UUID
    kind: PreviewKind
    slot: int
    style: str | None = None
    status: PreviewStatus = PreviewStatus.PENDING
    prompt: str
    seed: int
    lora_scale: float
    model_version: str
    prediction_id: str | None = None
    prediction_created_at: datetime | None = None
    claim_token: UUID | None = None
    claimed_at: datetime | None = None
    storage_path: str | None = None
    content_type: str | None = None
    failure_code: PreviewFailure | None = None
    error_message: str | None = None
    predict_time_seconds: float | None = None
    cost_usd: float | None = None
    reserved_cost_usd: float | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    deleted_at: datetime | None = None


class PredictionInfo(BaseModel):
    """The parts of a Replicate prediction we read (create, get, list, webhook)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: str
    status: str
    version: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    error: Any = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled", "aborted")

    @property
    def predict_time(self) -> float | None:
        value = self.metrics.get("predict_time")
        return float(value) if isinstance(value, int | float) else None

    @property
    def output_url(self) -> str | None:
        """The first output (a trained FLUX version returns a list of image URLs)."""
        out = self.output
        if isinstance(out, list) and out and isinstance(out[0], str):
            return out[0]
        return out if isinstance(out, str) else None


@dataclass(frozen=True)
class PreviewSet:
    """The pictures of one set (a completion, or one on-demand request), in slot order."""

    set_id: UUID
    kind: PreviewKind
    style: str | None
    pictures: list[Preview]

    @property
    def status(self) -> SetStatus:
        return set_status(self.pictures)

    @property
    def created_at(self) -> datetime:
        return min(p.created_at for p in self.pictures)


def set_status(pictures: Sequence[Preview]) -> SetStatus:
    if any(p.status is PreviewStatus.PENDING for p in pictures):
        return SetStatus.PENDING
    ready = sum(p.status is PreviewStatus.READY for p in pictures)
    if ready == len(pictures) and ready:
        return SetStatus.READY
    return SetStatus.PARTLY_READY if ready else SetStatus.FAILED


def group_sets(previews: Sequence[Preview]) -> list[PreviewSet]:
    """Sets newest first (a page shows the latest pictures first; the completion set is the
    oldest)."""
    by_set: dict[UUID, list[Preview]] = {}
    for p in previews:
        if p.deleted_at is None:
            by_set.setdefault(p.set_id, []).append(p)
    sets = [
        PreviewSet(sid, rows[0].kind, rows[0].style, sorted(rows, key=lambda p: p.slot))
        for sid, rows in by_set.items()
    ]
    sets.sort(key=lambda s: (s.created_at, s.kind is PreviewKind.ON_DEMAND), reverse=True)
    return sets


def completion_set_id(job_id: UUID) -> UUID:
    return uuid.uuid5(PREVIEW_NAMESPACE, f"completion:{job_id}")


def preview_id(set_id: UUID, slot: int) -> UUID:
    return uuid.uuid5(set_id, f"slot:{slot}")


def seed_of(preview: UUID) -> int:
    """The prediction's seed: fixed by the picture's id, so a resumer recognises the prediction
    an attempt that died created (same version, seed and prompt), and the picture reproduces."""
    return int.from_bytes(preview.bytes[:4], "big") & 0x7FFFFFFF


def preview_folder(user_id: UUID, job_id: UUID) -> str:
    """Under the owner's folder but apart from the job's photos (their retention is not ours)."""
    return f"{user_id}/previews/{job_id}"


PREVIEW_EXTENSIONS = {"image/webp": "webp", "image/png": "png", "image/jpeg": "jpg"}


def preview_path(p: Preview, content_type: str) -> str:
    return f"{preview_folder(p.user_id, p.job_id)}/{p.id}.{PREVIEW_EXTENSIONS[content_type]}"


def sniff_image(data: bytes) -> str | None:
    """The content type of a WebP, PNG or JPEG by its first bytes; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    return None


def failure_of(prediction: PredictionInfo) -> PreviewFailure:
    """Why a prediction that did not succeed failed, as a person reads it."""
    error = str(prediction.error or "")
    if "NSFW" in error or "nsfw" in error:
        return PreviewFailure.UNSAFE
    if prediction.status in ("canceled", "aborted"):
        return PreviewFailure.TIMED_OUT
    return PreviewFailure.PREDICTION_FAILED


def hung(p: Preview, now: datetime, timeout_seconds: float, since: datetime | None = None) -> bool:
    """A prediction running past its bound (counted from its creation, or `since`)."""
    started = since or p.prediction_created_at or p.claimed_at
    return started is not None and now - started > timedelta(seconds=timeout_seconds)


def claim_alive(p: Preview, now: datetime, claim_timeout_seconds: float) -> bool:
    return p.claimed_at is not None and now - p.claimed_at < timedelta(
        seconds=claim_timeout_seconds
    )


# --- prompts -------------------------------------------------------------------------------------

# Styles an owner may ask for on demand (beside the twin's own hybrid style).
STYLES: dict[str, str] = {
    "digital_art": "digital art",
    "cartoon": "cartoon",
    "anime": "anime",
    "watercolor": "watercolor painting",
    "3d_render": "3D animated film",
    "comic": "comic book",
    "pixel_art": "pixel art",
    "realistic": "photorealistic",
}
DEFAULT_STYLE = "digital art"

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "portrait of {trigger} as an anthropomorphic {species} character, {fur} fur, {style} style, "
    "expressive eyes, {personality} expression, full head and shoulders, soft studio light",
    "{trigger} as an anthropomorphic {species} character exploring a sunlit forest, {fur} fur, "
    "{style} style, {personality} mood, full body",
    "close-up of {trigger}, an anthropomorphic {species}, {fur} fur, {style} style, smiling, "
    "city street at golden hour",
    "{trigger} as an anthropomorphic {species} character reading in a cosy library, {fur} fur, "
    "{style} style, warm light",
)
PLACEHOLDERS = frozenset({"trigger", "species", "fur", "style", "personality"})
_PLACEHOLDER = re.compile(r"\{(\w*)\}")


def template_problem(template: str) -> str | None:
    """Why a prompt template cannot be used; None if it can."""
    names = set(_PLACEHOLDER.findall(template))
    if unknown := names - PLACEHOLDERS:
        return f"unknown placeholder(s) {sorted(unknown)}; use {sorted(PLACEHOLDERS)}"
    if "trigger" not in names:
        return "a template needs {trigger} (the trained word)"
    if re.sub(_PLACEHOLDER, "", template).count("{") or "}" in re.sub(_PLACEHOLDER, "", template):
        return "stray brace"
    return None


def _clean(value: object, limit: int = 60) -> str:
    """A customisation value fit for a prompt: text only, one line, no braces, bounded."""
    text = " ".join(str(value).replace("{", " ").replace("}", " ").split())
    return text[:limit].strip()


def style_phrase(style: str | None) -> str:
    if style is None:
        return DEFAULT_STYLE
    return STYLES.get(style, _clean(style) or DEFAULT_STYLE)


def prompt_values(customization: Mapping[str, Any], trigger: str, style: str | None) -> dict:
    colours = customization.get("colors") or []
    colour_text = " and ".join(_clean(c, 30) for c in colours[:3] if _clean(c, 30))
    fur = " ".join(x for x in (_clean(customization.get("furType") or ""), colour_text) if x)
    return {
        "trigger": trigger,
        "species": _clean(customization.get("type") or "") or "fox",
        "fur": fur or "soft",
        "style": style_phrase(style or customization.get("hybridStyle")),
        "personality": _clean(customization.get("personality") or "", 40) or "friendly",
    }


def prompts(
    templates: Sequence[str],
    customization: Mapping[str, Any],
    trigger: str,
    count: int,
    style: str | None = None,
) -> list[str]:
    """`count` prompts, the templates taken in turn."""
    values = prompt_values(customization, trigger, style)
    return [templates[i % len(templates)].format_map(values) for i in range(count)]


def prediction_input(prompt: str, seed: int, lora_scale: float) -> dict[str, Any]:
    """The trained version's input (cog-flux HotswapPredictor): one square webp, seed fixed."""
    return {
        "prompt": prompt,
        "seed": seed,
        "lora_scale": lora_scale,
        "num_outputs": 1,
        "aspect_ratio": "1:1",
        "output_format": "webp",
        "output_quality": 90,
        "go_fast": False,  # seeds reproduce only without it
    }
