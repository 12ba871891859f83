"""Replicate (the `Trainer` and `Predictor` ports): the Files API, the destination model,
trainings, and predictions on trained versions (previews).

We use the real `replicate` client (1.0.x) over HTTP, with two deliberate departures (see
docs/decisions.md): its own retry transport (GET only, uncapped Retry-After) is replaced by our
bounded policy (`shared.plumbing.retry`), and trainings are read as raw JSON so that the newer
`aborted` status, which its `Training` model rejects, still parses.

The POSTs are repeated only where that is safe or has been made safe: a file upload only after
looking for the file it may have left (job id + sha256); the destination model's creation treats
409 as done; a training's creation only after a refusal that proves it did not happen (429, 503,
no connection) and a look-up in the trainings list, never after an ambiguous failure; a cancel is
harmless to repeat.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.previews import PredictionInfo
from shared.domain.training import CLOCK_SKEW, TrainingInfo
from shared.errors import ErrorCode, UpstreamError
from shared.plumbing.deadline import NO_DEADLINE, Deadline
from shared.plumbing.retry import (
    call_with_retry,
    httpx_errors,
    is_transient,
    retry_after_of,
    status_of,
    was_refused,
)
from shared.plumbing.settings import Settings
from shared.ports import DeletionRefused, JobFile, UploadedFile

if TYPE_CHECKING:
    import ssl

    import httpx

# A request started just before the deadline still gets this long.
T = TypeVar("T")
MIN_REQUEST_SECONDS = 1.0


# Pages of a list walked in a look-up before giving up (100 entries each).
MAX_LOOKUP_PAGES = 50


class _ListedFile(BaseModel):
    """An entry of `GET /v1/files`."""

    model_config = ConfigDict(defer_build=True)

    id: str
    urls: dict[str, str]
    metadata: dict[str, Any] = Field(default_factory=dict)
    checksums: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = None


def build_replicate_client(
    settings: Settings, timeout: httpx.Timeout | None = None, tls: ssl.SSLContext | None = None
) -> Any:
    import httpx
    import replicate

    token = settings.replicate_api_token.get_secret_value()
    base_url = settings.replicate_base_url or "https://api.replicate.com"
    client = replicate.Client(api_token=token, base_url=base_url)
    # Replace the lazily built httpx client so no uncapped Retry-After sleep can happen inside it.
    client._Client__client = httpx.Client(  # type: ignore[attr-defined]
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "flurrty-twin-backend"},
        timeout=timeout or httpx.Timeout(10.0, read=30.0, write=60.0, connect=5.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=20),
        verify=tls or True,
    )
    return client


def _unless(status: int, call: Callable[[], T], default: T | None) -> T | None:
    """`call()`, or `default` when it fails with HTTP `status`: a 404 for something already
    gone (or never known), a 409 for something made meanwhile."""
    try:
        return call()
    except Exception as exc:
        if status_of(exc) != status:
            raise
        return default


class ReplicateTrainer:
    """Replicate through the real `replicate` client, which `connect` builds (importing the SDK)
    at the first Replicate call, so a request answered before reaching Replicate never pays for
    it."""

    def __init__(
        self, connect: Callable[[], Any], settings: Settings, deadline: Deadline = NO_DEADLINE
    ):
        self._connect = connect
        self._settings = settings
        self.deadline = deadline

    @functools.cached_property
    def _client(self) -> Any:
        return self._connect()

    def _run(
        self,
        operation: Any,
        what: str,
        *,
        deadline: Deadline | None = None,
        transient: Any = is_transient,
    ) -> Any:
        try:
            return call_with_retry(
                operation, deadline=deadline or self.deadline, transient=transient
            )
        except httpx_errors("TransportError") as exc:
            raise UpstreamError(
                f"Replicate did not answer while {what}; try again shortly."
            ) from exc
        except Exception as exc:
            status = status_of(exc)
            if status == 429:
                raise UpstreamError(
                    f"Replicate is throttling us while {what}; try again in a minute.",
                    ErrorCode.UPSTREAM_THROTTLED,
                    retry_after=retry_after_of(exc),
                ) from exc
            if status is not None and status >= 500:
                raise UpstreamError(f"Replicate failed while {what}; try again shortly.") from exc
            raise

    def _request(
        self, method: str, path: str, deadline: Deadline | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One HTTP call whose timeouts never reach past the deadline (by more than a second)."""
        import httpx  # loaded with the client already

        remaining = (deadline or self.deadline).remaining()
        if remaining != float("inf"):
            cap = max(remaining, MIN_REQUEST_SECONDS)
            base: httpx.Timeout = self._client._client.timeout
            kwargs["timeout"] = httpx.Timeout(
                connect=min(base.connect or cap, cap),
                read=min(base.read or cap, cap),
                write=min(base.write or cap, cap),
                pool=min(base.pool or cap, cap),
            )
        from replicate.exceptions import ReplicateError

        response: httpx.Response = self._client._client.request(method, path, **kwargs)
        if response.status_code >= 400:
            # The client's own error type, but keeping the response: its `Retry-After` header
            # is what our retry policy honours (the client's `_request` drops it).
            error = ReplicateError.from_response(response)
            error.response = response  # type: ignore[attr-defined]
            raise error
        return response

    def _get_json(self, path: str) -> Any:
        return self._request("GET", path).json()

    def upload_zip(self, fileobj: IO[bytes], filename: str, job_id: str) -> UploadedFile:
        since = datetime.now(UTC) - CLOCK_SKEW
        attempts = 0

        def create() -> UploadedFile:
            nonlocal attempts
            attempts += 1
            # A repeat after a lost answer would leave a second copy of the photos: look first
            # (hashing the zip only then: a first attempt needs no digest).
            if attempts > 1:
                fileobj.seek(0)
                digest = hashlib.file_digest(fileobj, "sha256").hexdigest()  # type: ignore[arg-type]
                if (found := self._find_file(job_id, digest, since)) is not None:
                    return found
            fileobj.seek(0)
            # Our own multipart POST, as the client's `files.create` builds it, but with a
            # timeout: the client sends uploads with none at all.
            created = self._request(
                "POST",
                "/v1/files",
                files={"content": (filename, fileobj, "application/zip")},
                data={"metadata": json.dumps({"job_id": job_id})},
            ).json()
            return UploadedFile(id=created["id"], url=created["urls"]["get"])

        uploaded: UploadedFile = self._run(create, "uploading the photos")
        return uploaded

    def _find_file(self, job_id: str, sha256: str, since: datetime) -> UploadedFile | None:
        """The file an earlier attempt uploaded for this job with these bytes, if any."""
        page: Any = self._get_json("/v1/files")
        for _ in range(MAX_LOOKUP_PAGES):
            for raw in page.get("results", []):
                listed = _ListedFile.model_validate(raw)
                if (
                    listed.metadata.get("job_id") == job_id
                    and listed.checksums.get("sha256") == sha256
                ):
                    return UploadedFile(id=listed.id, url=listed.urls["get"])
                if listed.created_at and listed.created_at < since:
                    return None  # newest first: nothing older can be ours
            if not page.get("next"):
                return None
            page = self._get_json(page["next"])
        return None

    def ensure_destination(self) -> None:
        owner, name = self._settings.destination

        def ensure() -> None:
            if (
                _unless(404, lambda: self._request("GET", f"/v1/models/{owner}/{name}"), None)
                is not None
            ):
                return
            model = {
                "owner": owner,
                "name": name,
                "visibility": "private",
                "hardware": self._settings.replicate_destination_hardware,
                "description": "Flurrty Twin LoRAs: one version per trained twin.",
            }
            # A 409: another container created it meanwhile.
            _unless(409, lambda: self._request("POST", "/v1/models", json=model), None)

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
        since = datetime.now(UTC) - CLOCK_SKEW
        # Every POST goes out within a third of the claim timeout. A resumer waits the whole
        # claim timeout after the claim was last renewed (just before this call), so anything we
        # sent has landed and is listed by the time it looks.
        budget = self.deadline.within(s.claim_timeout_seconds / 3)
        attempts = 0

        def create() -> TrainingInfo:
            nonlocal attempts
            attempts += 1
            # Repeated only after a refusal, and only once the list shows it did not land.
            if attempts > 1 and (existing := self._scan_trainings(zip_url, since)) is not None:
                return existing
            return TrainingInfo.model_validate(
                self._request("POST", path, budget, json=body).json()
            )

        def refused_but_not_throttled(exc: BaseException) -> bool:
            # A 429 is not retried here: the caller holds every admission back instead.
            return was_refused(exc) and status_of(exc) != 429

        try:
            result: TrainingInfo = self._run(
                create,
                "starting the training",
                deadline=budget,
                transient=refused_but_not_throttled,
            )
        except UpstreamError as exc:
            if exc.__cause__ is None or was_refused(exc.__cause__):
                raise
            # No answer: the training may exist. Adopt it if it is listed already; otherwise do
            # not POST again. The claim stays, and its resumer looks again once it has landed.
            if (existing := self.find_training(zip_url, since)) is not None:
                return existing
            raise
        return result

    def get_training(self, training_id: str) -> TrainingInfo | None:
        def get() -> TrainingInfo | None:
            raw = _unless(404, lambda: self._get_json(f"/v1/trainings/{training_id}"), None)
            return None if raw is None else TrainingInfo.model_validate(raw)

        result: TrainingInfo | None = self._run(get, "reading the training")
        return result

    def find_training(self, zip_url: str, created_after: datetime) -> TrainingInfo | None:
        result: TrainingInfo | None = self._run(
            lambda: self._scan_trainings(zip_url, created_after), "looking for the training"
        )
        return result

    def _scan_trainings(self, zip_url: str, created_after: datetime) -> TrainingInfo | None:
        page: Any = self._get_json("/v1/trainings")
        for _ in range(MAX_LOOKUP_PAGES):
            for raw in page.get("results", []):
                training = TrainingInfo.model_validate(raw)
                if training.input.get("input_images") == zip_url:
                    return training
                if training.created_at and training.created_at < created_after:
                    return None  # newest first: nothing older can be ours
            if not page.get("next"):
                return None
            page = self._get_json(page["next"])
        raise UpstreamError("Replicate's trainings list is too long to search; try again later.")

    def cancel_training(self, training_id: str) -> TrainingInfo | None:
        def cancel() -> TrainingInfo | None:
            # Safe to repeat: canceling a canceled (or finished) training changes nothing.
            answer = _unless(
                404, lambda: self._request("POST", f"/v1/trainings/{training_id}/cancel"), None
            )
            return None if answer is None else TrainingInfo.model_validate(answer.json())

        result: TrainingInfo | None = self._run(cancel, "canceling the training")
        return result

    def delete_file(self, file_id: str) -> None:
        def delete() -> None:
            _unless(404, lambda: self._request("DELETE", f"/v1/files/{file_id}"), None)

        self._refusable(lambda: self._run(delete, "deleting the uploaded zip"), f"file {file_id}")

    def list_job_files(self, limit: int) -> list[JobFile]:
        def scan() -> list[JobFile]:
            found: list[JobFile] = []
            page: Any = self._get_json("/v1/files")
            for _ in range(MAX_LOOKUP_PAGES):
                for raw in page.get("results", []):
                    listed = _ListedFile.model_validate(raw)
                    job_id = listed.metadata.get("job_id")
                    if isinstance(job_id, str) and job_id:
                        found.append(JobFile(listed.id, job_id, listed.created_at))
                if len(found) >= limit or not page.get("next"):
                    break
                page = self._get_json(page["next"])
            return found[:limit]

        result: list[JobFile] = self._run(scan, "listing the uploaded zips")
        return result

    def delete_model_version(self, model_version: str) -> None:
        model, _, version_id = model_version.partition(":")
        if model.count("/") != 1 or not version_id:
            raise ValueError(f"not a model version: {model_version!r}")
        path = f"/v1/models/{model}/versions/{version_id}"

        def delete() -> None:
            # 202: Replicate removes the version (and its predictions) asynchronously.
            _unless(404, lambda: self._request("DELETE", path), None)

        self._refusable(
            lambda: self._run(delete, "deleting the trained model version"),
            f"model version {model_version}",
        )

    @staticmethod
    def _refusable(call: Any, what: str) -> None:
        """A deletion; Replicate's refusal for good (403 forbidden, 409 conflict: e.g. a
        version still in use) becomes `DeletionRefused`, which is not retried."""
        try:
            call()
        except Exception as exc:
            status = status_of(exc)
            if status in (403, 409):
                raise DeletionRefused(what, status) from exc
            raise


# An output file is one picture: anything larger is not what a trained FLUX version returns.
MAX_OUTPUT_BYTES = 20 * 1024 * 1024


class ReplicatePredictor(ReplicateTrainer):
    """Predictions on a trained version (the `Predictor` port), through the same client, retry
    policy and deadline as the trainings. A create is repeated only after a refusal that proves
    it did not land; after an ambiguous failure the caller's resumer looks it up by its seed."""

    def __init__(
        self,
        connect: Callable[[], Any],
        settings: Settings,
        deadline: Deadline = NO_DEADLINE,
        *,
        connect_downloads: Callable[[], httpx.Client],
    ):
        super().__init__(connect, settings, deadline)
        self._connect_downloads = connect_downloads

    def create_prediction(
        self,
        version: str,
        input: dict[str, Any],
        webhook: str | None,
        *,
        wait_seconds: int,
        cancel_after_seconds: int,
    ) -> PredictionInfo:
        body: dict[str, Any] = {"version": version, "input": input}
        if webhook:
            body["webhook"] = webhook
            body["webhook_events_filter"] = ["completed"]
        headers = {"Cancel-After": f"{cancel_after_seconds}s"}
        # Never hold the create open past the invocation's time (less a margin for the copy).
        wait = min(wait_seconds, int(self.deadline.remaining() - 8))
        if wait >= 1:
            headers["Prefer"] = f"wait={wait}"
        budget = self.deadline.within(self._settings.claim_timeout_seconds / 3)

        def create() -> PredictionInfo:
            answer = self._request("POST", "/v1/predictions", budget, json=body, headers=headers)
            return PredictionInfo.model_validate(answer.json())

        def refused_but_not_throttled(exc: BaseException) -> bool:
            return was_refused(exc) and status_of(exc) != 429

        result: PredictionInfo = self._run(
            create, "making a preview", deadline=budget, transient=refused_but_not_throttled
        )
        return result

    def get_prediction(self, prediction_id: str) -> PredictionInfo | None:
        def get() -> PredictionInfo | None:
            raw = _unless(404, lambda: self._get_json(f"/v1/predictions/{prediction_id}"), None)
            return None if raw is None else PredictionInfo.model_validate(raw)

        result: PredictionInfo | None = self._run(get, "reading a preview")
        return result

    def find_prediction(
        self, version: str, input: dict[str, Any], created_after: datetime
    ) -> PredictionInfo | None:
        version_id = version.rsplit(":", 1)[-1]

        def scan() -> PredictionInfo | None:
            page: Any = self._get_json("/v1/predictions")
            for _ in range(MAX_LOOKUP_PAGES):
                for raw in page.get("results", []):
                    found = PredictionInfo.model_validate(raw)
                    if (
                        found.version in (version_id, version)
                        and found.input.get("seed") == input.get("seed")
                        and found.input.get("prompt") == input.get("prompt")
                    ):
                        return found
                    if found.created_at and found.created_at < created_after:
                        return None  # newest first: nothing older can be ours
                if not page.get("next"):
                    return None
                page = self._get_json(page["next"])
            raise UpstreamError("Replicate's predictions list is too long to search; try later.")

        result: PredictionInfo | None = self._run(scan, "looking for a preview")
        return result

    def cancel_prediction(self, prediction_id: str) -> PredictionInfo | None:
        def cancel() -> PredictionInfo | None:
            answer = _unless(
                404, lambda: self._request("POST", f"/v1/predictions/{prediction_id}/cancel"), None
            )
            return None if answer is None else PredictionInfo.model_validate(answer.json())

        result: PredictionInfo | None = self._run(cancel, "canceling a preview")
        return result

    def fetch_output(self, url: str) -> bytes:
        """The output file, over a client without our token (it is not Replicate's API)."""
        http = self._connect_downloads()

        def get() -> bytes:
            remaining = self.deadline.remaining()
            timeout = None if remaining == float("inf") else max(remaining, MIN_REQUEST_SECONDS)
            with http.stream("GET", url, timeout=timeout or 30.0) as response:
                response.raise_for_status()
                data = bytearray()
                for chunk in response.iter_bytes(256 * 1024):
                    data += chunk
                    if len(data) > MAX_OUTPUT_BYTES:
                        raise ValueError("the preview's output is larger than a picture")
                return bytes(data)

        try:
            data: bytes = call_with_retry(get, deadline=self.deadline, transient=is_transient)
        except httpx_errors("TransportError") as exc:
            raise UpstreamError("Replicate's file server did not answer; try again.") from exc
        except httpx_errors("HTTPStatusError") as exc:
            raise UpstreamError("Replicate's file server would not give the picture.") from exc
        return data
