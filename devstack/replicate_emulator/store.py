"""In-memory account state: files, models, versions, trainings and predictions.

Run state is computed from the clock on every read (see runs.py). What time passing does to
the world (a training's success adds a version; a run's end frees a slot; webhooks fall due)
is applied by `advance()` and `collect_webhook_events()` from time-ordered heaps, so one read
costs the same with ten runs or ten thousand.
"""

from __future__ import annotations

import hashlib
import heapq
import http.client
import itertools
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from devstack.replicate_emulator import common
from devstack.replicate_emulator import predictor as pr
from devstack.replicate_emulator import trainer as tr
from devstack.replicate_emulator.common import JSON
from devstack.replicate_emulator.runs import (
    DEFAULT_FAILURE,
    PredictionRecord,
    Run,
    TrainingRecord,
)

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
_OWN_FILE_PATH = re.compile(r"^/v1/files/([^/]+)(?:/download)?/?$")
_VERSION_ID = re.compile(r"[0-9a-f]{64}")
PREDICTION_FIELDS = frozenset(
    {"version", "input", "webhook", "webhook_completed", "webhook_events_filter", "stream"}
)


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
    runnable: bool = False  # the emulator runs predictions only on versions trainings made


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
class WebhookEvent:
    run_id: str
    kind: str  # "training" | "prediction"
    event: str
    url: str
    body: bytes


def _webhook_params(body: Mapping[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """The webhook URL and events filter of a create body (422 when malformed)."""
    webhook = body.get("webhook") or body.get("webhook_completed")
    if webhook is not None and (
        not isinstance(webhook, str) or urlsplit(webhook).scheme not in ("http", "https")
    ):
        raise ApiError(
            422, common.invalid_fields(("format", "webhook", "webhook must be an HTTPS URL"))
        )
    events_raw = body.get("webhook_events_filter")
    if events_raw is None:
        return webhook, ("completed",) if body.get("webhook_completed") else DEFAULT_WEBHOOK_EVENTS
    if isinstance(events_raw, list) and all(e in WEBHOOK_EVENTS for e in events_raw):
        return webhook, tuple(events_raw)
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


def _body_problems(
    body: Mapping[str, Any], required: tuple[str, ...], allowed: frozenset[str]
) -> None:
    """422 with `invalid_fields` in the shape of the 2024 validation changelog."""
    problems = [("required", "", f"{f} is required") for f in required if f not in body]
    problems += [
        ("additional_property_not_allowed", "", f"Additional property {k} is not allowed")
        for k in body
        if k not in allowed
    ]
    if problems:
        raise ApiError(422, common.invalid_fields(*problems))


def _seed_of(run_id: str) -> int:
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big")


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
        predict_boot_seconds: float = 0.1,
        predict_seconds: float = 1.0,
        output_retention_seconds: float = pr.OUTPUT_RETENTION_SECONDS,
        log_phases: Mapping[str, float] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.owner = owner
        self.clock = clock
        self.base_url = base_url
        self.boot_seconds = boot_seconds
        self.train_seconds = train_seconds
        self.predict_boot_seconds = predict_boot_seconds
        self.predict_seconds = predict_seconds
        self.output_retention_seconds = output_retention_seconds
        self.log_phases = tr.phase_shares(log_phases)
        self.page_size = page_size
        self.timing_hook = timing_hook
        self.logs_webhook_interval = logs_webhook_interval
        self.files: dict[str, FileRecord] = {}
        self.models: dict[tuple[str, str], ModelRecord] = {}
        self.deleted_models: set[tuple[str, str]] = set()
        self.version_models: dict[str, tuple[str, str]] = {}  # version id -> model key
        self.trainings: dict[str, TrainingRecord] = {}
        self.predictions: dict[str, PredictionRecord] = {}
        self.outcomes: list[tuple[str, str | None]] = []
        self.nsfw_next: list[int | None] = []  # outputs flagged per upcoming prediction (None: all)
        self.hangs_next = 0
        self.predictions_created: Counter[str] = Counter()  # per version id
        self._seq = 0
        self._tiebreak = itertools.count()
        self._ends: list[tuple[float, int, str]] = []  # unmaterialized trainings by end time
        self._webhooks_due: list[tuple[float, int, str]] = []  # run ids to look at, by time
        self.webhook_open: set[str] = set()  # runs with a webhook still to send
        self.in_flight = 0  # non-terminal trainings
        self.max_in_flight = 0
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
        self.models[(model.owner, model.name)] = model
        schema = tr.trainer_openapi_schema()
        # Newest first; older versions get earlier creation times.
        for i, v in enumerate((tr.TRAINER_VERSION, *tr.OLDER_TRAINER_VERSIONS)):
            self._add_version(
                model, VersionRecord(id=v, created=now - 86400 * (30 * i + 1), schema=schema)
            )

    def reset(self) -> None:
        with self.lock:
            self.files.clear()
            self.models.clear()
            self.deleted_models.clear()
            self.version_models.clear()
            self.trainings.clear()
            self.predictions.clear()
            self.outcomes.clear()
            self.nsfw_next.clear()
            self.hangs_next = 0
            self.predictions_created.clear()
            self._ends.clear()
            self._webhooks_due.clear()
            self.webhook_open.clear()
            self.in_flight = self.max_in_flight = 0
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

    def _add_version(self, model: ModelRecord, ver: VersionRecord) -> None:
        model.versions.append(ver)
        model.versions.sort(key=lambda v: -v.created)
        self.version_models[ver.id] = (model.owner, model.name)

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
            del self.version_models[version_id]
            # SPEC: deleting a version deletes all its predictions, output files included.
            doomed = [p.id for p in self.predictions.values() if p.version == version_id]
            for prediction_id in doomed:
                del self.predictions[prediction_id]
                self.webhook_open.discard(prediction_id)

    # --- scheduling ------------------------------------------------------------------

    def _touch(self, rec: Run) -> None:
        """Re-schedule a run whose timing changed (create, cancel, settle, finish, timing)."""
        if isinstance(rec, TrainingRecord) and not rec.materialized:
            end = rec.terminal()[0]
            heapq.heappush(self._ends, (end, next(self._tiebreak), rec.id))
        if rec.webhook and not rec.webhook_done:
            self.webhook_open.add(rec.id)
            heapq.heappush(self._webhooks_due, (self.clock(), next(self._tiebreak), rec.id))

    def advance(self, now: float) -> None:
        """Apply what trainings ended by `now` do to the world, in the order they ended:
        free their slot and push the destination version of each success."""
        with self.lock:
            while self._ends and self._ends[0][0] <= now:
                _, _, training_id = heapq.heappop(self._ends)
                rec = self.trainings.get(training_id)
                if rec is None or rec.materialized:
                    continue
                end, status, _ = rec.terminal()
                if end > now:
                    continue  # moved later since; its newer entry is still queued
                rec.materialized = True
                self.in_flight -= 1
                if status != "succeeded":
                    continue
                owner, _, name = rec.destination.partition("/")
                model = self.models.get((owner, name))
                if model is None:
                    # The real service fails after training when it cannot push the version.
                    rec.outcome, rec.error = "failed", DEFAULT_FAILURE
                    continue
                version = VersionRecord(
                    id=rec.new_version,
                    created=end,
                    schema=pr.predictor_openapi_schema(),
                    runnable=True,
                )
                self._add_version(model, version)

    def _run(self, run_id: str) -> Run | None:
        return self.trainings.get(run_id) or self.predictions.get(run_id)

    def stats(self) -> JSON:
        """Counters for benchmarks: trainings in flight now and the most ever seen at once."""
        with self.lock:
            self.advance(self.clock())
            return {
                "trainings": len(self.trainings),
                "trainings_in_flight": self.in_flight,
                "max_trainings_in_flight": self.max_in_flight,
                "predictions": len(self.predictions),
                "predictions_created": dict(self.predictions_created),
            }

    def reset_max_in_flight(self) -> None:
        with self.lock:
            self.advance(self.clock())
            self.max_in_flight = self.in_flight

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
            return tr.ZipFacts.assumed(tr.ASSUMED_REMOTE_IMAGES)
        own = _OWN_FILE_PATH.match(parts.path)
        if own and parts.port == port:
            try:
                return tr.inspect_zip(self.get_file(own.group(1)).data)
            except ApiError:
                return tr.ZipFacts(error=f"input_images could not be downloaded: {value} (404)")
        return _fetch_loopback(value)

    def _check_training_target(
        self, trainer_key: tuple[str, str], version: str, destination: Any
    ) -> str:
        trainer = self.models.get(trainer_key)
        known = {v.id for v in trainer.versions} if trainer else set()
        if trainer_key != (tr.TRAINER_OWNER, tr.TRAINER_NAME) or version not in known:
            raise ApiError(422, common.INVALID_VERSION)
        dest_key = tuple(destination.split("/", 1)) if isinstance(destination, str) else ()
        if len(dest_key) != 2 or dest_key not in self.models or dest_key[0] != self.owner:
            raise ApiError(404, common.DESTINATION_MISSING)
        return str(destination)

    def _add_training(
        self,
        *,
        version: str,
        input_: JSON,
        destination: str,
        webhook: str | None,
        events: tuple[str, ...],
        boot: float,
        train: float,
        facts: tr.ZipFacts,
        early_error: str | None = None,
        created: float | None = None,
    ) -> TrainingRecord:
        """Record a training (lock held): counts it in flight and schedules its end."""
        rec = TrainingRecord(
            id=common.new_training_id(),
            seq=self._next_seq(),
            model=tr.TRAINER_MODEL,
            version=version,
            input=input_,
            webhook=webhook,
            events=events,
            created=common.whole_microseconds(self.clock() if created is None else created),
            boot=boot,
            destination=destination,
            train=train,
            early_error=early_error,
            trainer_error=facts.error if early_error is None else None,
        )
        if self.outcomes:
            rec.outcome, rec.error = self.outcomes.pop(0)
        if early_error is None:
            rec.logs = tr.TrainerLogs(_seed_of(rec.id), facts, input_, self.log_phases)
        self.trainings[rec.id] = rec
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._touch(rec)
        return rec

    def create_training(
        self, trainer_owner: str, trainer_name: str, version: str, body: Any, port: int
    ) -> JSON:
        if not isinstance(body, dict):
            raise ApiError(400, common.problem(400, "Request body must be a JSON object"))
        allowed = frozenset(
            {"destination", "input", "webhook", "webhook_completed", "webhook_events_filter"}
        )
        _body_problems(body, ("destination", "input"), allowed)
        input_ = body["input"]
        if not isinstance(input_, dict):
            raise ApiError(422, common.invalid_fields(("type", "input", "input must be an object")))
        webhook, events = _webhook_params(body)
        with self.lock:
            destination = self._check_training_target(
                (trainer_owner, trainer_name), version, body["destination"]
            )

        early_error = tr.validation_error(input_)
        facts = tr.ZipFacts()
        if early_error is None:
            trainer_error = tr.early_trainer_error(input_)
            if trainer_error is not None:
                facts = tr.ZipFacts(error=trainer_error)
            else:
                facts = self.resolve_zip(input_["input_images"], port)

        with self.lock:
            self.advance(self.clock())  # earlier ends first, so the in-flight peak is exact
            boot, train = self.boot_seconds, self.train_seconds
            if self.timing_hook is not None:
                override = self.timing_hook(body)
                if override is not None:
                    boot, train = override
            rec = self._add_training(
                version=version,
                input_=input_,
                destination=destination,
                webhook=webhook,
                events=events,
                boot=boot,
                train=train,
                facts=facts,
                early_error=early_error,
            )
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

    def seed_trainings(
        self,
        count: int,
        *,
        destination: str,
        input_: JSON,
        images: int,
        webhook: str | None,
        events: tuple[str, ...],
        boot_seconds: float | None,
        train_seconds: float | None,
        started_ago: float,
    ) -> list[str]:
        """`count` trainings as if created `started_ago` + boot seconds ago, in one go: no HTTP,
        no zip to read (every one trains on `images` photos)."""
        if count < 0:
            raise ValueError("count must be >= 0")
        error = tr.validation_error(input_) or tr.early_trainer_error(input_)
        if error is not None:
            raise ValueError(f"the seeded trainings' input is not valid: {error}")
        facts = tr.ZipFacts.assumed(images)
        with self.lock:
            destination = self._check_training_target(
                (tr.TRAINER_OWNER, tr.TRAINER_NAME), tr.TRAINER_VERSION, destination
            )
            now = self.clock()
            self.advance(now)
            boot = self.boot_seconds if boot_seconds is None else boot_seconds
            train = self.train_seconds if train_seconds is None else train_seconds
            created = now - boot - started_ago
            return [
                self._add_training(
                    version=tr.TRAINER_VERSION,
                    input_=input_,
                    destination=destination,
                    webhook=webhook,
                    events=events,
                    boot=boot,
                    train=train,
                    facts=facts,
                    created=created,
                ).id
                for _ in range(count)
            ]

    def get_record(self, training_id: str) -> TrainingRecord:
        with self.lock:
            rec = self.trainings.get(training_id)
            if rec is None:
                raise ApiError(404, common.NOT_FOUND)
            return rec

    def get_training(self, training_id: str) -> JSON:
        with self.lock:
            now = self.clock()
            self.advance(now)
            return self.get_record(training_id).body(now, self.base_url())

    def list_trainings(self, cursor: str | None) -> JSON:
        with self.lock:
            now = self.clock()
            self.advance(now)
            base = self.base_url()
            # Insertion order is creation order; list items carry no logs (SPEC example).
            items = list(reversed(self.trainings.values()))
            return self._page(
                items, cursor, "/v1/trainings", lambda r: r.body(now, base, with_logs=False)
            )

    def cancel_training(self, training_id: str) -> JSON:
        with self.lock:
            now = self.clock()
            self.advance(now)
            rec = self.get_record(training_id)
            if now < rec.terminal()[0]:  # a terminal training is left as it is
                rec.forced = ("canceled", now, None)
                self._touch(rec)
            self.advance(now)
            return rec.body(now, self.base_url())

    def settle(self, training_id: str) -> JSON:
        with self.lock:
            now = self.clock()
            rec = self.get_record(training_id)
            if now < rec.terminal()[0]:
                rec.shrink_to(now)
                self._touch(rec)
            self.advance(now)
            return rec.body(now, self.base_url())

    def finish_now(self, training_id: str, outcome: str, error: str | None) -> JSON:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        with self.lock:
            now = self.clock()
            self.advance(now)
            rec = self.get_record(training_id)
            if now >= rec.terminal()[0]:
                return rec.body(now, self.base_url())
            if outcome in ("canceled", "aborted"):
                rec.forced = (outcome, now, error)
            else:
                rec.early_error = None
                rec.trainer_error = None
                rec.outcome = outcome
                rec.error = (error or DEFAULT_FAILURE) if outcome == "failed" else None
                rec.shrink_to(now)
            self._touch(rec)
            self.advance(now)
            return rec.body(now, self.base_url())

    def set_timing(
        self, training_id: str, boot_seconds: float | None, train_seconds: float | None
    ) -> JSON:
        with self.lock:
            rec = self.get_record(training_id)
            if boot_seconds is not None:
                rec.boot = boot_seconds
            if train_seconds is not None:
                rec.train = train_seconds
            self._touch(rec)
            now = self.clock()
            self.advance(now)
            return rec.body(now, self.base_url())

    # --- predictions -----------------------------------------------------------------

    def _runnable_version(self, ref: Any) -> tuple[tuple[str, str], str]:
        """(model key, version id) for `owner/name:<64 hex>` or a bare id (SPEC formats)."""
        if not isinstance(ref, str):
            raise ApiError(
                422, common.invalid_fields(("type", "version", "version must be a string"))
            )
        named, _, version_id = ref.rpartition(":")
        key = self.version_models.get(version_id) if _VERSION_ID.fullmatch(version_id) else None
        # `owner/name` alone is only for official models, which the emulator has none of.
        if key is None or (named and named != "/".join(key)):
            raise ApiError(422, common.INVALID_VERSION)
        if not self.get_version(*key, version_id).runnable:
            detail = "The emulator runs predictions only on versions its trainings created."
            raise ApiError(422, common.problem(422, detail))  # emulator
        return key, version_id

    def create_prediction(self, body: Any, cancel_after: float | None) -> PredictionRecord:
        if not isinstance(body, dict):
            raise ApiError(400, common.problem(400, "Request body must be a JSON object"))
        _body_problems(body, ("version", "input"), PREDICTION_FIELDS)
        input_ = body["input"]
        if not isinstance(input_, dict):
            raise ApiError(422, common.invalid_fields(("type", "input", "input must be an object")))
        webhook, events = _webhook_params(body)
        early_error = pr.validation_error(input_)
        with self.lock:
            key, version_id = self._runnable_version(body["version"])
            now = common.whole_microseconds(self.clock())
            self.advance(now)
            rec = PredictionRecord(
                id=common.new_training_id(),
                seq=self._next_seq(),
                model="/".join(key),
                version=version_id,
                input=input_,
                webhook=webhook,
                events=events,
                created=now,
                boot=self.predict_boot_seconds,
                early_error=early_error,
                deadline=now + cancel_after if cancel_after is not None else None,
                predict=self.predict_seconds,
                retention=self.output_retention_seconds,
            )
            if early_error is None:
                rec.run = self._predictor_run(rec.id, input_)
                if self.hangs_next:
                    self.hangs_next -= 1
                    rec.hang = True
            self.predictions[rec.id] = rec
            self.predictions_created[version_id] += 1
            self._touch(rec)
            return rec

    def _predictor_run(self, prediction_id: str, input_: JSON) -> pr.PredictorRun:
        """The run of a valid input, taking the next NSFW switch (lock held)."""
        probe = pr.PredictorRun(input_, 0)
        seed = probe.setting("seed")
        if seed is None or seed < 0:
            # cog-flux draws a 16-bit seed (os.urandom(2)); ours follows the id.
            seed = _seed_of(prediction_id) % 65536
        flagged = 0
        if self.nsfw_next:
            want = self.nsfw_next.pop(0)
            flagged = int(probe.setting("num_outputs")) if want is None else want
        if probe.setting("disable_safety_checker"):
            flagged = 0  # the checker never runs
        return pr.PredictorRun(input_, int(seed), flagged)

    def prediction_record(self, prediction_id: str) -> PredictionRecord:
        with self.lock:
            rec = self.predictions.get(prediction_id)
            if rec is None:
                raise ApiError(404, common.NOT_FOUND)
            return rec

    def get_prediction(self, prediction_id: str) -> JSON:
        with self.lock:
            now = self.clock()
            self.advance(now)
            return self.prediction_record(prediction_id).body(now, self.base_url())

    def terminal_prediction(self, prediction_id: str) -> tuple[JSON | None, float]:
        """(the body if the prediction has ended, else None; emulator seconds until it ends)."""
        with self.lock:
            now = self.clock()
            self.advance(now)
            rec = self.prediction_record(prediction_id)
            moment = rec.moment(now)
            if moment.terminal:
                return rec.body(now, self.base_url()), 0.0
            return None, moment.end - now

    def list_predictions(self, cursor: str | None) -> JSON:
        with self.lock:
            now = self.clock()
            base = self.base_url()
            items = list(reversed(self.predictions.values()))
            return self._page(
                items, cursor, "/v1/predictions", lambda r: r.body(now, base, with_logs=False)
            )

    def cancel_prediction(self, prediction_id: str) -> JSON:
        with self.lock:
            now = self.clock()
            rec = self.prediction_record(prediction_id)
            if now < rec.terminal()[0]:
                rec.forced = ("canceled", now, None)
                self._touch(rec)
            return rec.body(now, self.base_url())

    def prediction_output(self, prediction_id: str, name: str) -> tuple[bytes, str]:
        """An output file's bytes and type; 404 once removed (retention, version delete)."""
        with self.lock:
            now = self.clock()
            rec = self.predictions.get(prediction_id)
            if rec is None or rec.run is None:
                raise ApiError(404, common.NOT_FOUND)
            moment = rec.moment(now)
            if moment.status != "succeeded" or rec.data_removed(moment, now):
                raise ApiError(404, common.NOT_FOUND)
            run = rec.run
        image = run.image(name)  # rendered outside the lock: every other request waits on it
        if image is None:
            raise ApiError(404, common.NOT_FOUND)
        return image

    # --- webhooks --------------------------------------------------------------------

    def has_pending_webhooks(self) -> bool:
        with self.lock:
            return bool(self.webhook_open)

    def webhook_finished(self, run_id: str) -> bool:
        with self.lock:
            rec = self._run(run_id)
            return rec is None or rec.webhook_done

    def _next_webhook_check(self, rec: Run, now: float) -> float | None:
        """When something may next fall due for `rec` (None: only a change can wake it)."""
        end = rec.terminal()[0]
        candidates = [end]
        start = rec.created + rec.boot
        if "start" in rec.events and "start" not in rec.sent and rec.early_error is None:
            candidates.append(start)
        if "logs" in rec.events and now < end:
            candidates.append(max(start, now + self.logs_webhook_interval))
        due = min(candidates)
        return None if due == float("inf") else max(due, now)

    def collect_webhook_events(self) -> list[WebhookEvent]:
        """Events due by now, in the order the real service would send them."""
        out: list[WebhookEvent] = []
        with self.lock:
            now = self.clock()
            self.advance(now)
            base = self.base_url()
            seen: set[str] = set()
            while self._webhooks_due and self._webhooks_due[0][0] <= now:
                _, _, run_id = heapq.heappop(self._webhooks_due)
                rec = self._run(run_id)
                if rec is None or rec.webhook_done or run_id in seen:
                    continue
                seen.add(run_id)
                self._emit_due(rec, now, base, out)
                if rec.webhook_done:
                    self.webhook_open.discard(run_id)
                    continue
                due = self._next_webhook_check(rec, now)
                if due is not None:
                    heapq.heappush(self._webhooks_due, (due, next(self._tiebreak), run_id))
        return out

    def _emit_due(self, rec: Run, now: float, base: str, out: list[WebhookEvent]) -> None:
        assert rec.webhook is not None
        kind = "training" if isinstance(rec, TrainingRecord) else "prediction"

        def emit(event: str, at: float) -> None:
            assert rec.webhook is not None
            snapshot = rec.body(at, base, run_start=event == "start")
            out.append(WebhookEvent(rec.id, kind, event, rec.webhook, common.dumps(snapshot)))
            rec.sent.add(event)

        moment = rec.moment(now)
        if "start" in rec.events and "start" not in rec.sent and moment.started is not None:
            emit("start", moment.started)
        if "logs" in rec.events and moment.started is not None and not moment.terminal:
            due = rec.last_logs_at is None or now - rec.last_logs_at >= self.logs_webhook_interval
            logs = (rec.logs_text(now, moment) or "") if due else ""
            if due and len(logs) != rec.last_logs_len:
                rec.last_logs_at, rec.last_logs_len = now, len(logs)
                emit("logs", now)
        if moment.terminal:
            if "output" in rec.events and moment.status == "succeeded":
                emit("output", moment.end)
            if "completed" in rec.events:
                emit("completed", moment.end)
            rec.webhook_done = True


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
