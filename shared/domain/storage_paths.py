"""Where a job's objects live in the private bucket: everything under `{user}/{job}/`, the
checked photos as `NN.jpg`, raw signed uploads under `upload/` (never a name the trainer reads)."""

from __future__ import annotations

from uuid import UUID

from shared.photos.rules import photo_object_name


def job_folder(user_id: UUID, job_id: UUID) -> str:
    return f"{user_id}/{job_id}"


def upload_folder(user_id: UUID, job_id: UUID) -> str:
    return f"{job_folder(user_id, job_id)}/upload"


def final_photo_path(user_id: UUID, job_id: UUID, index: int) -> str:
    """Where the `index`-th normalised photo lives: `{user}/{job}/NN.jpg`."""
    return f"{job_folder(user_id, job_id)}/{photo_object_name(index)}"


def raw_photo_path(user_id: UUID, job_id: UUID, index: int) -> str:
    """Where the browser PUTs the `index`-th photo of a signed upload."""
    return f"{upload_folder(user_id, job_id)}/{index:02d}"
