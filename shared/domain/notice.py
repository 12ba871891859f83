"""The completion notice a person receives: who, which twin, and the words."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from shared.domain.job import Job, JobStatus


@dataclass(frozen=True)
class CompletionNotice:
    job_id: UUID
    user_id: UUID
    furrsona_name: str
    status: JobStatus
    model_version: str | None
    error_message: str | None
    version: int | None = None  # of the twin; a retrain (2, 3, ...) is news of a new version
    preview_urls: tuple[str, ...] = ()  # signed links to the version's first pictures

    @classmethod
    def of(cls, job: Job, preview_urls: tuple[str, ...] = ()) -> CompletionNotice:
        return cls(
            job_id=job.id,
            user_id=job.user_id,
            furrsona_name=job.furrsona_name,
            status=job.status,
            model_version=job.replicate_model_version,
            error_message=job.error_message,
            version=job.version,
            preview_urls=preview_urls,
        )

    @property
    def is_retrain(self) -> bool:
        return (self.version or 1) > 1

    @property
    def subject(self) -> str:
        if self.status is JobStatus.COMPLETED and self.is_retrain:
            return f"Version {self.version} of your Flurrty Twin {self.furrsona_name} is ready"
        if self.status is JobStatus.COMPLETED:
            return f"Your Flurrty Twin {self.furrsona_name} is ready"
        return f"Your Flurrty Twin {self.furrsona_name} could not be trained"

    @property
    def text(self) -> str:
        return self._words + self._pictures

    @property
    def _pictures(self) -> str:
        if not self.preview_urls:
            return ""
        lines = "".join(f"  {url}\n" for url in self.preview_urls)
        return f"\nIts first pictures (the links work for a few days):\n{lines}"

    @property
    def _words(self) -> str:
        if self.status is JobStatus.COMPLETED and self.is_retrain:
            return (
                f"Good news: version {self.version} of your Flurrty Twin {self.furrsona_name} has "
                "finished training and is now the active one. Open flurrty.me to see it; you "
                "can go back to an earlier version there at any time.\n"
            )
        if self.status is JobStatus.COMPLETED:
            return (
                f"Good news: your Flurrty Twin {self.furrsona_name} has finished training and is "
                "ready. Open flurrty.me to create pictures of your twin.\n"
            )
        reason = self.error_message or "The training failed."
        return (
            f"We could not train your Flurrty Twin {self.furrsona_name}.\n\n{reason}\n\n"
            "You can start a new training at flurrty.me.\n"
        )
