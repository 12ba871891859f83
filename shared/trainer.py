"""Replicate behind a small interface: the Files API, the destination model, trainings.

We use the real `replicate` client (1.0.x) over HTTP, with two deliberate departures, both from
reference/replicate.md §7: its own retry transport (GET only, uncapped Retry-After) is replaced by
our bounded policy (`shared.retry`), and trainings are read as raw JSON so that the newer `aborted`
status, which its `Training` model rejects, still parses.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import IO, Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import UpstreamError
from shared.retry import NO_DEADLINE, Deadline, call_with_retry, status_of
from shared.settings import Settings

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "aborted"})
# Replicate's clock and ours may differ; look a little further back when searching trainings.
CLOCK_SKEW = timedelta(minutes=5)


class TrainingInfo(BaseModel):
    """The parts of Replicate's training object we use."""

    model_config = ConfigDict(extra="ignore")

    id: str
    status: str
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] | None = None
    logs: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    metrics: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def model_version(self) -> str | None:
        version = (self.output or {}).get("version")
        return str(version) if version else None

    @property
    def predict_time(self) -> float | None:
        value = (self.metrics or {}).get("predict_time")
        return float(value) if isinstance(value, int | float) else None


class UploadedFile(BaseModel):
    id: str
    url: str


class Trainer(Protocol):
    def upload_zip(self, fileobj: IO[bytes], filename: str, job_id: str) -> UploadedFile: ...

    def ensure_destination(self) -> None: ...

    def create_training(self, zip_url: str, webhook: str | None) -> TrainingInfo: ...

    def get_training(self, training_id: str) -> TrainingInfo | None:
        """None when Replicate does not know the id (404)."""
        ...

    def find_training(self, zip_url: str, created_after: datetime) -> TrainingInfo | None:
        """The training whose input is this zip, if one was created (crash recovery)."""
        ...

    def cancel_training(self, training_id: str) -> TrainingInfo | None: ...

    def delete_file(self, file_id: str) -> None: ...


def build_replicate_client(settings: Settings) -> Any:
    import replicate

    token = settings.replicate_api_token.get_secret_value()
    base_url = settings.replicate_base_url or "https://api.replicate.com"
    client = replicate.Client(api_token=token, base_url=base_url)
    # Replace the lazily built httpx client so no uncapped Retry-After sleep can happen inside it.
    client._Client__client = httpx.Client(  # type: ignore[attr-defined]
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "flurrty-twin-backend"},
        timeout=httpx.Timeout(10.0, read=30.0, write=60.0, connect=5.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=20),
    )
    return client


class ReplicateTrainer:
    def __init__(self, client: Any, settings: Settings, deadline: Deadline = NO_DEADLINE):
        self._client = client
        self._settings = settings
        self.deadline = deadline

    def _run(self, operation: Any, what: str) -> Any:
        try:
            return call_with_retry(operation, deadline=self.deadline)
        except httpx.TransportError as exc:
            raise UpstreamError(
                f"Replicate did not answer while {what}; try again shortly."
            ) from exc
        except Exception as exc:
            status = status_of(exc)
            if status == 429:
                raise UpstreamError(
                    f"Replicate is throttling us while {what}; try again in a minute.",
                    code="upstream_throttled",
                ) from exc
            if status is not None and status >= 500:
                raise UpstreamError(f"Replicate failed while {what}; try again shortly.") from exc
            raise

    def _get_json(self, path: str) -> Any:
        return self._client._request("GET", path).json()

    def upload_zip(self, fileobj: IO[bytes], filename: str, job_id: str) -> UploadedFile:
        def create() -> Any:
            fileobj.seek(0)
            return self._client.files.create(
                fileobj,
                filename=filename,
                content_type="application/zip",
                metadata={"job_id": job_id},
            )

        created = self._run(create, "uploading the photos")
        return UploadedFile(id=created.id, url=created.urls["get"])

    def ensure_destination(self) -> None:
        owner, name = self._settings.destination

        def ensure() -> None:
            try:
                self._client._request("GET", f"/v1/models/{owner}/{name}")
                return
            except Exception as exc:
                if status_of(exc) != 404:
                    raise
            try:
                self._client.models.create(
                    owner=owner,
                    name=name,
                    visibility="private",
                    hardware=self._settings.replicate_destination_hardware,
                    description="Flurrty Twin LoRAs: one version per trained twin.",
                )
            except Exception as exc:
                if status_of(exc) != 409:  # created meanwhile by another container
                    raise

        self._run(ensure, "preparing the destination model")

    def create_training(self, zip_url: str, webhook: str | None) -> TrainingInfo:
        s = self._settings
        body: dict[str, Any] = {
            "destination": s.replicate_destination_model,
            "input": {
                "input_images": zip_url,
                "trigger_word": s.training_trigger_word,
                "steps": s.training_steps,
            },
        }
        if webhook:
            body["webhook"] = webhook
            body["webhook_events_filter"] = ["start", "completed"]
        owner, name = s.replicate_trainer_model.split("/", 1)
        path = f"/v1/models/{owner}/{name}/versions/{s.replicate_trainer_version}/trainings"
        since = datetime.now().astimezone() - CLOCK_SKEW
        attempts = 0

        def create() -> TrainingInfo:
            nonlocal attempts
            attempts += 1
            # A POST is only repeated after checking that the earlier one did not land.
            if attempts > 1 and (existing := self.find_training(zip_url, since)) is not None:
                return existing
            return TrainingInfo.model_validate(
                self._client._request("POST", path, json=body).json()
            )

        result: TrainingInfo = self._run(create, "starting the training")
        return result

    def get_training(self, training_id: str) -> TrainingInfo | None:
        def get() -> TrainingInfo | None:
            try:
                return TrainingInfo.model_validate(self._get_json(f"/v1/trainings/{training_id}"))
            except Exception as exc:
                if status_of(exc) == 404:
                    return None
                raise

        result: TrainingInfo | None = self._run(get, "reading the training")
        return result

    def find_training(self, zip_url: str, created_after: datetime) -> TrainingInfo | None:
        def scan() -> TrainingInfo | None:
            page: Any = self._get_json("/v1/trainings")
            while True:
                for raw in page.get("results", []):
                    training = TrainingInfo.model_validate(raw)
                    if training.input.get("input_images") == zip_url:
                        return training
                    if training.created_at and training.created_at < created_after:
                        return None  # newest first: nothing older can be ours
                if not page.get("next"):
                    return None
                page = self._get_json(page["next"])

        result: TrainingInfo | None = self._run(scan, "looking for the training")
        return result

    def cancel_training(self, training_id: str) -> TrainingInfo | None:
        def cancel() -> TrainingInfo | None:
            try:
                resp = self._client._request("POST", f"/v1/trainings/{training_id}/cancel")
                return TrainingInfo.model_validate(resp.json())
            except Exception as exc:
                if status_of(exc) == 404:
                    return None
                raise

        result: TrainingInfo | None = self._run(cancel, "canceling the training")
        return result

    def delete_file(self, file_id: str) -> None:
        def delete() -> None:
            try:
                self._client._request("DELETE", f"/v1/files/{file_id}")
            except Exception as exc:
                if status_of(exc) != 404:
                    raise

        self._run(delete, "deleting the uploaded zip")
