"""In-memory accounts state: files, models, versions and trainings on a compressed clock.

Training state is a pure function of the clock and a few stored times, computed on every
read; nothing ticks in the background. The only side effect of time passing (a success
adds a version to the destination) is applied by `advance()`, which every request and the
webhook thread call first.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from devstack.replicate_emulator import common
from devstack.replicate_emulator import trainer as tr
from devstack.replicate_emulator.common import JSON

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
OUTCOMES = ("succeeded", "failed", "canceled", "aborted")
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
# The API's default when no filter is given: "new outputs or the training has finished".
DEFAULT_WEBHOOK_EVENTS = ("output", "completed")
HARDWARE = [
    {"name": "CPU", "sku": "cpu"},
    {"name": "Nvidia T4 GPU", "sku": "gpu-t4"},
    {"name": "Nvidia A40 GPU", "sku": "gpu-a40-small"},
    {"name": "Nvidia A40 (Large) GPU", "sku": "gpu-a40-large"},
    {"name": "Nvidia L40S GPU", "sku": "gpu-l40s"},
    {"name": "Nvidia A100 (80GB) GPU", "sku": "gpu-a100-large"},
    {"name": "Nvidia H100 GPU", "sku": "gpu-h100"},
]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# A bad input fails about 5 ms after create (replicate-python#308); a trainer-raised error
# (bad zip) right after `train()` starts.
VALIDATION_FAIL_SECONDS = 0.005
TRAINER_FAIL_SECONDS = 0.05
CANCEL_BEFORE_START_PREDICT_TIME = 3e-06  # as recorded for a cancel right after create
DEFAULT_FAILURE = common.TRAINED_IMAGE_FAILED
_OWN_FILE_PATH = re.compile(r"^/v1/files/([^/]+)(?:/download)?/?$")


class ApiError(Exception):
    """An HTTP error answer (problem+json) raised from the state layer."""

    def __init__(self, status: int, body: JSON, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class FileRecord:
    id: str
    name: str
    content_type: str
    data: bytes
    metadata: JSON
    created: float
    seq: int
    md5: str  # hex digests, computed once: the bytes never change
    sha256: str


@dataclass
class VersionRecord:
    id: str
    created: float
    schema: JSON = field(default_factory=dict)


@dataclass
class ModelRecord:
    owner: str
    name: str
    visibility: str
    hardware: str
    seq: int
    description: str | None = None
    github_url: str | None = None
    paper_url: str | None = None
    license_url: str | None = None
    cover_image_url: str | None = None
    run_count: int = 0
    versions: list[VersionRecord] = field(default_factory=list)  # newest first


@dataclass
class TrainingRecord:
    id: str
    seq: int
    model: str
    version: str
    input: JSON
    destination: str
    webhook: str | None
    events: tuple[str, ...]
    created: float
    boot: float
    train: float
    outcome: str = "succeeded"
    error: str | None = None
    early_error: str | None = None  # Cog input validation: never starts
    trainer_error: str | None = None  # raised at the top of train()
    logs: tr.TrainerLogs | None = None
    new_version: str = field(default_factory=common.new_version_id)
    forced: tuple[str, float, str | None] | None = None  # (status, at, error)
    materialized: bool = False
    # webhook bookkeeping, only touched by collect_webhook_events()
    sent: set[str] = field(default_factory=set)
    last_logs_at: float | None = None
    last_logs_len: int = -1
    webhook_done: bool = False

    def start_time(self) -> float | None:
        if self.early_error is not None:
            return None
        return self.created + self.boot

    def terminal(self) -> tuple[float, str, str | None]:
        """When the training ends, and how, given what has been decided so far."""
        start = self.created + self.boot
        natural: tuple[float, str, str | None]
        if self.early_error is not None:
            natural = (self.created + VALIDATION_FAIL_SECONDS, "failed", self.early_error)
        elif self.outcome == "aborted":
            natural = (start, "aborted", None)
        elif self.trainer_error is not None:
            natural = (start + min(TRAINER_FAIL_SECONDS, self.train), "failed", self.trainer_error)
        elif self.outcome == "canceled":
            natural = (start + self.train / 2, "canceled", None)
        elif self.outcome == "failed":
            natural = (start + self.train, "failed", self.error or DEFAULT_FAILURE)
        else:
            natural = (start + self.train, "succeeded", None)
        if self.forced is not None and self.forced[1] < natural[0]:
            return self.forced[1], self.forced[0], self.forced[2]
        return natural

    def started_at(self, at: float) -> float | None:
        start = self.start_time()
        end, status, _ = self.terminal()
        if start is None or at < start or start > end:
            return None
        if status == "aborted" and start >= end:
            return None
        return start

    def shrink_to(self, now: float) -> None:
        """Move the natural end to `now` (settle): the rest of the run happens instantly."""
        if self.early_error is not None:
            self.early_error_delay(now)
            return
        start = self.created + self.boot
        if now <= start or self.outcome == "aborted" or self.trainer_error is not None:
            self.boot = max(0.0, min(self.boot, now - self.created))
            self.train = 0.0
            return
        elapsed = now - start
        self.train = elapsed * 2 if self.outcome == "canceled" else elapsed

    def early_error_delay(self, now: float) -> None:
        # Validation failures already end 5 ms after create; move create back if needed.
        if now < self.created + VALIDATION_FAIL_SECONDS:
            self.created = now - VALIDATION_FAIL_SECONDS


@dataclass
class WebhookEvent:
    training_id: str
    event: str
    url: str
    body: bytes


class State:
    """Everything the emulated account holds. All public methods are thread-safe."""

    def __init__(
        self,
        *,
        owner: str,
        clock: Callable[[], float],
        base_url: Callable[[], str],
        boot_seconds: float,
        train_seconds: float,
        page_size: int,
        timing_hook: Callable[[JSON], tuple[float, float] | None] | None = None,
        logs_webhook_interval: float = 0.5,
    ) -> None:
        self.lock = threading.RLock()
        self.owner = owner
        self.clock = clock
        self.base_url = base_url
        self.boot_seconds = boot_seconds
        self.train_seconds = train_seconds
        self.page_size = page_size
        self.timing_hook = timing_hook
        self.logs_webhook_interval = logs_webhook_interval
        self.files: dict[str, FileRecord] = {}
        self.models: dict[tuple[str, str], ModelRecord] = {}
        self.deleted_models: set[tuple[str, str]] = set()
        self.trainings: dict[str, TrainingRecord] = {}
        self.outcomes: list[tuple[str, str | None]] = []
        self._seq = 0
        self._add_trainer()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _add_trainer(self) -> None:
        now = self.clock()
        model = ModelRecord(
            owner=tr.TRAINER_OWNER,
            name=tr.TRAINER_NAME,
            visibility="public",
            hardware="gpu-h100",
            seq=self._next_seq(),
            description="Fine-tune FLUX.1-dev using ai-toolkit",
            github_url="https://github.com/replicate/flux-fine-tuner",
            run_count=1_000_000,
        )
        schema = tr.trainer_openapi_schema()
        ids = (tr.TRAINER_VERSION, *tr.OLDER_TRAINER_VERSIONS)
        # Newest first; older versions get earlier creation times.
        model.versions = [
            VersionRecord(id=v, created=now - 86400 * (30 * i + 1), schema=schema)
            for i, v in enumerate(ids)
        ]
        self.models[(model.owner, model.name)] = model

    def reset(self) -> None:
        with self.lock:
            self.files.clear()
            self.models.clear()
            self.deleted_models.clear()
            self.trainings.clear()
            self.outcomes.clear()
            self._add_trainer()

    # --- files -----------------------------------------------------------------------

    def file_json(self, rec: FileRecord) -> JSON:
        return {
            "id": rec.id,
            "name": rec.name,
            "content_type": rec.content_type,
            "size": len(rec.data),
            "etag": rec.md5,
            "checksums": {"sha256": rec.sha256, "md5": rec.md5},
            "metadata": rec.metadata,
            "created_at": common.iso(rec.created, 3),
            "expires_at": common.iso(rec.created + 86400, 3),  # 24 h, as recorded
            "urls": {"get": f"{self.base_url()}/v1/files/{rec.id}"},
        }

    def create_file(self, name: str, content_type: str, data: bytes, metadata: JSON) -> JSON:
        # Hashed outside the lock: every other request waits while it is held.
        md5, sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
        with self.lock:
            rec = FileRecord(
                id=common.new_file_id(),
                name=name,
                content_type=content_type,
                data=data,
                metadata=metadata,
                created=self.clock(),
                seq=self._next_seq(),
                md5=md5,
                sha256=sha256,
            )
            self.files[rec.id] = rec
            return self.file_json(rec)

    def get_file(self, file_id: str) -> FileRecord:
        with self.lock:
            rec = self.files.get(file_id)
            if rec is None or self.clock() >= rec.created + 86400:
                raise ApiError(404, common.FILE_NOT_FOUND)
            return rec

    def delete_file(self, file_id: str) -> None:
        with self.lock:
            self.get_file(file_id)
            del self.files[file_id]

    def list_files(self, cursor: str | None) -> JSON:
        with self.lock:
            items = sorted(self.files.values(), key=lambda r: -r.seq)
            return self._page(items, cursor, "/v1/files", self.file_json)

    def _page(
        self,
        items: list[Any],
        cursor: str | None,
        path: str,
        render: Callable[[Any], JSON],
    ) -> JSON:
        base = self.base_url()
        page = common.paginate(
            items,
            lambda r: int(r.seq),
            cursor,
            self.page_size,
            lambda c: f"{base}{path}?cursor={c}",
        )
        if page is None:
            raise ApiError(400, common.problem(400, "Invalid cursor"))
        results, next_url, previous_url = page
        return {"next": next_url, "previous": previous_url, "results": [render(r) for r in results]}

    # --- models ----------------------------------------------------------------------

    @staticmethod
    def version_json(ver: VersionRecord) -> JSON:
        return {
            "id": ver.id,
            "created_at": common.iso(ver.created, 6),
            "cog_version": tr.COG_VERSION,
            "openapi_schema": ver.schema,
        }

    def model_json(self, m: ModelRecord) -> JSON:
        return {
            "url": f"{self.base_url()}/{m.owner}/{m.name}",
            "owner": m.owner,
            "name": m.name,
            "description": m.description,
            "visibility": m.visibility,
            "github_url": m.github_url,
            "paper_url": m.paper_url,
            "license_url": m.license_url,
            "run_count": m.run_count,
            "cover_image_url": m.cover_image_url,
            "default_example": None,
            "latest_version": self.version_json(m.versions[0]) if m.versions else None,
        }

    def create_model(self, body: JSON) -> JSON:
        missing = [f for f in ("owner", "name", "visibility", "hardware") if not body.get(f)]
        if missing:
            raise ApiError(
                422,
                common.invalid_fields(*[("required", f, f"{f} is required") for f in missing]),
            )
        owner, name = str(body["owner"]), str(body["name"])
        if body["visibility"] not in ("public", "private"):
            raise ApiError(
                422,
                common.invalid_fields(
                    ("enum", "visibility", "visibility must be one of: public, private")
                ),
            )
        if body["hardware"] not in {h["sku"] for h in HARDWARE}:
            raise ApiError(
                422,
                common.invalid_fields(("enum", "hardware", f"Invalid hardware {body['hardware']}")),
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
            raise ApiError(
                422,
                common.invalid_fields(
                    ("format", "name", "name may only hold lowercase letters, digits, - _ .")
                ),
            )
        if owner != self.owner:
            raise ApiError(
                403, common.problem(403, f"You do not have permission to create models in {owner}")
            )
        with self.lock:
            key = (owner, name)
            # A deleted model's name stays taken (replicate-python#323).
            if key in self.models or key in self.deleted_models:
                raise ApiError(409, common.MODEL_EXISTS)
            optional = ("description", "github_url", "paper_url", "license_url", "cover_image_url")
            model = ModelRecord(
                owner=owner,
                name=name,
                visibility=str(body["visibility"]),
                hardware=str(body["hardware"]),
                seq=self._next_seq(),
            )
            for key_name in optional:
                setattr(model, key_name, body.get(key_name))
            self.models[key] = model
            return self.model_json(model)

    def get_model(self, owner: str, name: str) -> ModelRecord:
        with self.lock:
            model = self.models.get((owner, name))
            if model is None:
                raise ApiError(404, common.NOT_FOUND)
            return model

    def delete_model(self, owner: str, name: str) -> None:
        with self.lock:
            model = self.get_model(owner, name)
            if owner != self.owner:
                raise ApiError(
                    403, common.problem(403, "You do not have permission to delete this model.")
                )
            if model.visibility != "private":
                raise ApiError(409, common.problem(409, "Only private models can be deleted."))
            if model.versions:
                raise ApiError(
                    409,
                    common.problem(409, "Delete this model's versions before deleting the model."),
                )
            del self.models[(owner, name)]
            self.deleted_models.add((owner, name))

    def list_models(self, cursor: str | None) -> JSON:
        with self.lock:
            items = sorted(self.models.values(), key=lambda m: -m.seq)
            return self._page(items, cursor, "/v1/models", self.model_json)

    def list_versions(self, owner: str, name: str) -> JSON:
        with self.lock:
            model = self.get_model(owner, name)
            versions = [self.version_json(v) for v in model.versions]
            return {"next": None, "previous": None, "results": versions}

    def get_version(self, owner: str, name: str, version_id: str) -> VersionRecord:
        with self.lock:
            for ver in self.get_model(owner, name).versions:
                if ver.id == version_id:
                    return ver
            raise ApiError(404, common.NOT_FOUND)

    def delete_version(self, owner: str, name: str, version_id: str) -> None:
        with self.lock:
            model = self.get_model(owner, name)
            ver = self.get_version(owner, name, version_id)
            if owner != self.owner or model.visibility != "private":
                raise ApiError(
                    403, common.problem(403, "You do not have permission to delete this version.")
                )
            model.versions.remove(ver)

    # --- trainings -------------------------------------------------------------------

    def resolve_zip(self, value: Any, port: int) -> tr.ZipFacts:
        """Fetch `input_images` like Cog would; only the emulator and loopback are reachable."""
        if not isinstance(value, str):
            return tr.ZipFacts(error=tr.ZIP_ERROR)
        if value.startswith("data:"):
            return tr.inspect_zip(tr.decode_data_uri(value))
        parts = urlsplit(value)
        host = parts.hostname or ""
        if host not in LOOPBACK_HOSTS:
            # No outside network: trust the URL and assume a typical zip.
            images = [f"image_{i:02d}.jpg" for i in range(1, tr.ASSUMED_REMOTE_IMAGES + 1)]
            return tr.ZipFacts(files=len(images), images=images)
        own = _OWN_FILE_PATH.match(parts.path)
        if own and parts.port == port:
            try:
                return tr.inspect_zip(self.get_file(own.group(1)).data)
            except ApiError:
                return tr.ZipFacts(error=f"input_images could not be downloaded: {value} (404)")
        return _fetch_loopback(value)

    def create_training(
        self, trainer_owner: str, trainer_name: str, version: str, body: Any, port: int
    ) -> JSON:
        if not isinstance(body, dict):
            raise ApiError(400, common.problem(400, "Request body must be a JSON object"))
        allowed = {"destination", "input", "webhook", "webhook_completed", "webhook_events_filter"}
        problems = [
            ("required", "", f"{f} is required") for f in ("destination", "input") if f not in body
        ]
        problems += [
            ("additional_property_not_allowed", "", f"Additional property {k} is not allowed")
            for k in body
            if k not in allowed
        ]
        if problems:
            raise ApiError(422, common.invalid_fields(*problems))
        input_ = body["input"]
        if not isinstance(input_, dict):
            raise ApiError(422, common.invalid_fields(("type", "input", "input must be an object")))
        webhook = body.get("webhook") or body.get("webhook_completed")
        if webhook is not None and (
            not isinstance(webhook, str) or urlsplit(webhook).scheme not in ("http", "https")
        ):
            raise ApiError(
                422, common.invalid_fields(("format", "webhook", "webhook must be an HTTPS URL"))
            )
        events_raw = body.get("webhook_events_filter")
        if events_raw is None:
            events: tuple[str, ...] = (
                ("completed",) if body.get("webhook_completed") else DEFAULT_WEBHOOK_EVENTS
            )
        elif isinstance(events_raw, list) and all(e in WEBHOOK_EVENTS for e in events_raw):
            events = tuple(events_raw)
        else:
            raise ApiError(
                422,
                common.invalid_fields(
                    (
                        "enum",
                        "webhook_events_filter",
                        "webhook_events_filter items must be start, output, logs or completed",
                    )
                ),
            )

        with self.lock:
            trainer = self.models.get((trainer_owner, trainer_name))
            known = {v.id for v in trainer.versions} if trainer else set()
            is_trainer = trainer_owner == tr.TRAINER_OWNER and trainer_name == tr.TRAINER_NAME
            if not is_trainer or version not in known:
                raise ApiError(422, common.INVALID_VERSION)
            destination = body["destination"]
            dest_key = tuple(destination.split("/", 1)) if isinstance(destination, str) else ()
            if len(dest_key) != 2 or dest_key not in self.models or dest_key[0] != self.owner:
                raise ApiError(404, common.DESTINATION_MISSING)

        early_error = tr.validation_error(input_)
        facts = tr.ZipFacts()
        if early_error is None:
            if input_.get("input_images") is None:
                facts = tr.ZipFacts(error=tr.MISSING_IMAGES_ERROR)
            else:
                facts = self.resolve_zip(input_["input_images"], port)

        with self.lock:
            boot, train = self.boot_seconds, self.train_seconds
            if self.timing_hook is not None:
                override = self.timing_hook(body)
                if override is not None:
                    boot, train = override
            rec = TrainingRecord(
                id=common.new_training_id(),
                seq=self._next_seq(),
                model=f"{trainer_owner}/{trainer_name}",
                version=version,
                input=input_,
                destination=destination,
                webhook=webhook,
                events=events,
                created=self.clock(),
                boot=boot,
                train=train,
                early_error=early_error,
                trainer_error=facts.error if early_error is None else None,
            )
            if self.outcomes:
                rec.outcome, rec.error = self.outcomes.pop(0)
            if early_error is None:
                rec.logs = tr.TrainerLogs(
                    seed=rec.id,
                    facts=facts,
                    steps=int(tr.setting(input_, "steps")),
                    learning_rate=float(tr.setting(input_, "learning_rate")),
                    trigger_word=str(tr.setting(input_, "trigger_word")),
                    autocaption=bool(tr.setting(input_, "autocaption")),
                )
            self.trainings[rec.id] = rec
            pred = f"{self.base_url()}/v1/predictions/{rec.id}"
            # The create answer is thinner than a GET and points at /v1/predictions (recorded).
            return {
                "id": rec.id,
                "model": rec.model,
                "version": rec.version,
                "input": rec.input,
                "logs": "",
                "error": None,
                "status": "starting",
                "created_at": common.iso(rec.created, 9),
                "urls": {"cancel": f"{pred}/cancel", "get": pred},
            }

    def get_record(self, training_id: str) -> TrainingRecord:
        with self.lock:
            rec = self.trainings.get(training_id)
            if rec is None:
                raise ApiError(404, common.NOT_FOUND)
            return rec

    def training_json(
        self, rec: TrainingRecord, at: float, *, with_logs: bool = True, run_start: bool = False
    ) -> JSON:
        """The GET body of a training as it stood at emulator time `at`.

        `run_start` gives the body at the moment train() began, even when a settle made the
        run take no time (the `start` webhook always shows `processing`).
        """
        end, final_status, final_error = rec.terminal()
        started = rec.started_at(at)
        if run_start and started is not None:
            end = float("inf")
        if at >= end:
            status = final_status
        elif started is not None:
            status = "processing"
        else:
            status = "starting"
        terminal = status in TERMINAL
        base = self.base_url()
        body: JSON = {
            "id": rec.id,
            "model": rec.model,
            "version": rec.version,
            "input": rec.input,
        }
        if with_logs:
            body["logs"] = "" if run_start else self._logs(rec, at, started, status, final_error)
        output = None
        if status == "succeeded":
            dest = f"{rec.destination}:{rec.new_version}"
            weights = f"{base}/delivery/xezq/{rec.id}/trained_model.tar"
            output = {"version": dest, "weights": weights}
        metrics: JSON = {}
        if terminal:
            predict = end - started if started is not None else CANCEL_BEFORE_START_PREDICT_TIME
            metrics = {"predict_time": round(predict, 6), "total_time": round(end - rec.created, 6)}
        body.update(
            {
                "output": output,
                "data_removed": False,
                "error": final_error if terminal else None,
                "status": status,
                "source": "api",
                "created_at": common.iso(rec.created),
                "started_at": common.iso(started) if started is not None else None,
                "completed_at": common.iso(end) if terminal else None,
                "urls": {
                    "get": f"{base}/v1/trainings/{rec.id}",
                    "cancel": f"{base}/v1/trainings/{rec.id}/cancel",
                },
                "metrics": metrics,
            }
        )
        return body

    def _logs(
        self,
        rec: TrainingRecord,
        at: float,
        started: float | None,
        status: str,
        error: str | None,
    ) -> str | None:
        if started is None:
            # Never ran: "" while queued, null once canceled/aborted (as recorded).
            return None if status in ("canceled", "aborted") else ""
        lines: list[str] = []
        end, _, _ = rec.terminal()
        if rec.trainer_error is not None:
            if rec.logs is not None and rec.logs.facts.files:
                lines.append(f"Extracted {rec.logs.facts.files} files from zip to input_images")
        elif rec.logs is not None:
            progress = 1.0 if rec.train <= 0 else (min(at, end) - started) / rec.train
            lines = rec.logs.lines(progress)
        if status == "failed" and error:
            lines.append(error)
        return "".join(line + "\n" for line in lines)

    def get_training(self, training_id: str) -> JSON:
        with self.lock:
            now = self.clock()
            self.advance(now)
            return self.training_json(self.get_record(training_id), now)

    def list_trainings(self, cursor: str | None) -> JSON:
        with self.lock:
            now = self.clock()
            self.advance(now)
            items = sorted(self.trainings.values(), key=lambda r: -r.seq)
            # List items carry no logs, like the SPEC's example.
            return self._page(
                items,
                cursor,
                "/v1/trainings",
                lambda r: self.training_json(r, now, with_logs=False),
            )

    def cancel_training(self, training_id: str) -> JSON:
        with self.lock:
            now = self.clock()
            self.advance(now)
            rec = self.get_record(training_id)
            end, _, _ = rec.terminal()
            if now < end:  # a terminal training is left as it is
                rec.forced = ("canceled", now, None)
            return self.training_json(rec, now)

    def settle(self, training_id: str) -> JSON:
        with self.lock:
            now = self.clock()
            rec = self.get_record(training_id)
            if now < rec.terminal()[0]:
                rec.shrink_to(now)
            self.advance(now)
            return self.training_json(rec, now)

    def finish_now(self, training_id: str, outcome: str, error: str | None) -> JSON:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        with self.lock:
            now = self.clock()
            self.advance(now)
            rec = self.get_record(training_id)
            if now >= rec.terminal()[0]:
                return self.training_json(rec, now)
            if outcome in ("canceled", "aborted"):
                rec.forced = (outcome, now, error)
            else:
                rec.early_error = None
                rec.trainer_error = None
                rec.outcome = outcome
                rec.error = (error or DEFAULT_FAILURE) if outcome == "failed" else None
                rec.shrink_to(now)
            self.advance(now)
            return self.training_json(rec, now)

    def set_timing(
        self, training_id: str, boot_seconds: float | None, train_seconds: float | None
    ) -> JSON:
        with self.lock:
            rec = self.get_record(training_id)
            if boot_seconds is not None:
                rec.boot = boot_seconds
            if train_seconds is not None:
                rec.train = train_seconds
            now = self.clock()
            self.advance(now)
            return self.training_json(rec, now)

    def advance(self, now: float) -> None:
        """Apply what finished trainings do to the world: push the destination version."""
        with self.lock:
            for rec in self.trainings.values():
                if rec.materialized:
                    continue
                end, status, _ = rec.terminal()
                if now < end:
                    continue
                rec.materialized = True
                if status != "succeeded":
                    continue
                owner, _, name = rec.destination.partition("/")
                model = self.models.get((owner, name))
                if model is None:
                    # The real service fails after training when it cannot push the version.
                    rec.outcome, rec.error = "failed", DEFAULT_FAILURE
                    continue
                model.versions.append(VersionRecord(id=rec.new_version, created=end))
                model.versions.sort(key=lambda v: -v.created)

    # --- webhooks --------------------------------------------------------------------

    def has_pending_webhooks(self) -> bool:
        with self.lock:
            return any(r.webhook and not r.webhook_done for r in self.trainings.values())

    def collect_webhook_events(self) -> list[WebhookEvent]:
        """Events due by now, in the order the real service would send them."""
        out: list[WebhookEvent] = []
        with self.lock:
            now = self.clock()
            self.advance(now)
            for rec in self.trainings.values():
                if not rec.webhook or rec.webhook_done:
                    continue

                def emit(event: str, at: float, rec: TrainingRecord = rec) -> None:
                    assert rec.webhook is not None
                    snapshot = self.training_json(rec, at, run_start=event == "start")
                    body = common.dumps(snapshot)
                    out.append(WebhookEvent(rec.id, event, rec.webhook, body))
                    rec.sent.add(event)

                end, status, _ = rec.terminal()
                started = rec.started_at(now)
                if "start" in rec.events and "start" not in rec.sent and started is not None:
                    emit("start", started)
                if "logs" in rec.events and started is not None and now < end:
                    due = (
                        rec.last_logs_at is None
                        or now - rec.last_logs_at >= self.logs_webhook_interval
                    )
                    logs = self._logs(rec, now, started, "processing", None) or ""
                    if due and len(logs) != rec.last_logs_len:
                        rec.last_logs_at, rec.last_logs_len = now, len(logs)
                        emit("logs", now)
                if now >= end:
                    if "output" in rec.events and status == "succeeded":
                        emit("output", end)
                    if "completed" in rec.events:
                        emit("completed", end)
                    rec.webhook_done = True
        return out


def _fetch_loopback(url: str) -> tr.ZipFacts:
    """GET a loopback URL (another local emulator, e.g. a signed Storage URL)."""
    parts = urlsplit(url)
    conn_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_type(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        data = resp.read()
    except OSError as exc:
        return tr.ZipFacts(error=f"input_images could not be downloaded: {exc}")
    finally:
        conn.close()
    if resp.status != 200:
        return tr.ZipFacts(error=f"input_images could not be downloaded: HTTP {resp.status}")
    return tr.inspect_zip(data)
