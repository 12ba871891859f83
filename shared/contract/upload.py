"""upload_training_photos: the multipart form, the signed-upload bodies and the answers, and the
customisation form a new twin is made from (PATCH /twins/{twinId} takes it too)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.contract.base import CamelModel
from shared.domain.job import Job, JobStatus


class CustomizationData(BaseModel):
    """The frontend's customisation form; known fields are checked, extra ones are kept."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, alias_generator=to_camel, defer_build=True
    )

    type: str | None = Field(default=None, max_length=100)
    hybrid_style: str | None = Field(default=None, max_length=100)
    personality: str | None = Field(default=None, max_length=500)
    voice_tone: str | None = Field(default=None, max_length=100)
    fur_type: str | None = Field(default=None, max_length=100)
    colors: list[str] | None = Field(default=None, max_length=20)


class UploadResponse(CamelModel):
    """The job, its photos stored (pending, 20)."""

    job_id: UUID
    twin_id: UUID | None  # the twin this job is a version of
    version: int | None  # its number within the twin: 1, 2, ...
    photo_urls: list[str]  # object paths in the private bucket, never public URLs
    status: JobStatus
    progress: int

    @classmethod
    def of(cls, job: Job) -> UploadResponse:
        return cls(
            job_id=job.id,
            twin_id=job.twin_id,
            version=job.version,
            photo_urls=job.photo_urls,
            status=job.status,
            progress=job.progress,
        )


class DeclaredPhoto(BaseModel):
    """One photo the browser is about to upload, as it describes it (not trusted)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", defer_build=True
    )

    filename: str = Field("", max_length=1024)
    content_type: str | None = Field(None, max_length=255)
    size: int = Field(strict=True, ge=0)


class UploadTarget(CamelModel):
    """Where and how to send one photo: `PUT url` with `Content-Type: contentType` (or
    supabase-js `uploadToSignedUrl(path, token, file)`), before `expiresAt`."""

    photo: int  # 1-based, in the order declared
    path: str  # the object path in the bucket
    url: str
    method: str = "PUT"
    token: str
    content_type: str
    expires_at: datetime


class SignedUploadResponse(CamelModel):
    """The job (uploading) and where to PUT each photo."""

    job_id: UUID
    twin_id: UUID
    version: int | None
    status: JobStatus
    progress: int
    expires_at: datetime
    uploads: list[UploadTarget]


class SignedUploadRequest(CamelModel):
    """Body of `POST /uploads`: the photos to come, and either a new twin's name and
    customisation or the `twinId` of the twin this job retrains."""

    fursona_name: str | None = Field(None, max_length=100)  # a new twin's name
    customization_data: CustomizationData | None = None
    twin_id: UUID | None = None  # retrain this twin: leave out the name and customisation
    photos: list[DeclaredPhoto]
    user_id: UUID | None = None


class CompleteRequest(CamelModel):
    """Body of `POST /uploads/{jobId}/complete`; it may also be empty."""

    user_id: UUID | None = None


class UploadForm(CamelModel):
    """The multipart form of `POST /` on the upload URL (a browser's FormData)."""

    photos: list[bytes]  # 3-6 files, each a JPEG, PNG, WebP or HEIC photo
    fursona_name: str | None = Field(None, max_length=100)  # a new twin's name
    customization_data: str | None = None  # a JSON object, as a string
    twin_id: UUID | None = None  # retrain this twin: leave out the name and customisation
    user_id: UUID | None = None
