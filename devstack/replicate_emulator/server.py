"""The HTTP server and the `ReplicateEmulator` facade (see the package docstring)."""

from __future__ import annotations

import contextlib
import errno
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qs, urlsplit

from devstack.ports import LOOPBACK, Lifecycle, TrackingHTTPServer, free_port, wait_for_port
from devstack.replicate_emulator import common, http_io
from devstack.replicate_emulator import predictor as pr
from devstack.replicate_emulator import trainer as tr
from devstack.replicate_emulator.common import JSON
from devstack.replicate_emulator.faults import FaultAction, Faults
from devstack.replicate_emulator.http_io import (
    FormError,
    HeaderError,
    parse_multipart,
    read_body,
    trained_model_tar,
)
from devstack.replicate_emulator.store import HARDWARE, OUTCOMES, ApiError, State
from devstack.replicate_emulator.webhooks import WebhookDispatcher, WebhookFaults

MAX_FILE_BYTES = 100 * 1024 * 1024
_FORM_OVERHEAD = 1 << 20
_JSON_LIMIT = 16 << 20
# Per minute: prediction create has its own bucket, every other endpoint shares one
# (team reference, Replicate 8).
RATE_LIMITS = {"predictions": 600, "other": 3000}
WAIT_POLL_SECONDS = 0.02

# (method, route template, handler name); templates are what `count()` takes.
ROUTE_TABLE: tuple[tuple[str, str, str], ...] = (
    ("GET", "/v1/account", "account"),
    ("GET", "/v1/hardware", "hardware"),
    ("GET", "/v1/files", "files_list"),
    ("POST", "/v1/files", "files_create"),
    ("GET", "/v1/files/{id}", "files_get"),
    ("DELETE", "/v1/files/{id}", "files_delete"),
    ("GET", "/v1/files/{id}/download", "files_download"),
    ("GET", "/v1/models", "models_list"),
    ("POST", "/v1/models", "models_create"),
    ("GET", "/v1/models/{owner}/{name}", "models_get"),
    ("DELETE", "/v1/models/{owner}/{name}", "models_delete"),
    ("GET", "/v1/models/{owner}/{name}/versions", "versions_list"),
    ("GET", "/v1/models/{owner}/{name}/versions/{version}", "versions_get"),
    ("DELETE", "/v1/models/{owner}/{name}/versions/{version}", "versions_delete"),
    ("POST", "/v1/models/{owner}/{name}/versions/{version}/trainings", "trainings_create"),
    ("GET", "/v1/trainings", "trainings_list"),
    ("GET", "/v1/trainings/{id}", "trainings_get"),
    ("POST", "/v1/trainings/{id}/cancel", "trainings_cancel"),
    ("GET", "/v1/predictions", "predictions_list"),
    ("POST", "/v1/predictions", "predictions_create"),
    ("GET", "/v1/predictions/{id}", "predictions_get"),
    ("POST", "/v1/predictions/{id}/cancel", "predictions_cancel"),
    ("GET", "/v1/webhooks/default/secret", "webhook_secret_get"),
    ("GET", "/delivery/{prefix}/{id}/trained_model.tar", "delivery"),
    ("GET", "/delivery/{prefix}/{id}/{filename}", "delivery_output"),
)
# Like replicate.delivery, whose need for auth is unconfirmed (team reference, Replicate 2.5).
UNAUTHENTICATED_ROUTES = frozenset(
    {"/delivery/{prefix}/{id}/trained_model.tar", "/delivery/{prefix}/{id}/{filename}"}
)


def _compile(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "/?$")


_ROUTES = [(m, t, _compile(t), h) for m, t, h in ROUTE_TABLE]


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    body_size: int

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, common.problem(400, f"Invalid JSON body: {exc}")) from exc


@dataclass
class Response:
    status: int
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


def _find_route(method: str, path: str) -> tuple[str | None, str | None, dict[str, str], bool]:
    """(template, handler, params, path_known): path_known without a handler means 405."""
    template_seen = None
    for route_method, template, pattern, handler in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        template_seen = template
        if route_method == method:
            return template, handler, match.groupdict(), True
    return template_seen, None, {}, template_seen is not None


class _Server(TrackingHTTPServer):
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: ReplicateEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind httpx
    server_version = "replicate-emulator"
    timeout = 60
    # Headers and body go out in two writes; Nagle + delayed ACK would add ~40 ms to each.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests assert on counters, not on access logs

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        emulator = cast(_Server, self.server).emulator
        try:
            emulator._serve(self, method)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def read_request_body(self, keep: int) -> tuple[bytes, int]:
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        length_header = self.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else 0
        return read_body(cast(BinaryIO, self.rfile), length, chunked, keep)

    def send(self, resp: Response, extra_headers: dict[str, str]) -> None:
        if resp.raw is not None:
            payload = resp.raw
        elif resp.body is None:
            payload = b""
        else:
            payload = common.dumps(resp.body)
        self.send_response(resp.status)
        if resp.status != 204:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in {**extra_headers, **resp.headers}.items():
            self.send_header(key, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _problem(err: ApiError) -> Response:
    return Response(err.status, err.body, "application/problem+json", dict(err.headers))


class ReplicateEmulator(Lifecycle):
    """A local Replicate HTTP API (files, models, trainings, webhooks) on 127.0.0.1."""

    def __init__(
        self,
        *,
        api_token: str,
        webhook_secret: str | None = None,
        owner: str = "flurrty",
        port: int | None = None,
        clock: Callable[[], float] = time.time,
        boot_seconds: float = 0.5,
        train_seconds: float = 3.0,
        latency_seconds: float = 0.0,
        page_size: int = 100,
        max_file_bytes: int = MAX_FILE_BYTES,
        timing_hook: Callable[[JSON], tuple[float, float] | None] | None = None,
        webhook_retry_delays: Sequence[float] = (0.1, 0.3, 1.0),
        webhook_timeout: float = 5.0,
        allow_remote_webhooks: bool = False,
        predict_boot_seconds: float = 0.1,
        predict_seconds: float = 1.0,
        output_retention_seconds: float = pr.OUTPUT_RETENTION_SECONDS,
        log_phases: dict[str, float] | None = None,
    ) -> None:
        self.api_token = api_token
        self.webhook_secret = webhook_secret or common.new_webhook_secret()
        self.owner = owner
        self._auto_port = port is None
        self.port = port if port is not None else free_port()
        self.clock = clock
        self.latency_seconds = latency_seconds
        self.max_file_bytes = max_file_bytes
        self.faults = Faults()
        self.state = State(
            owner=owner,
            clock=clock,
            base_url=lambda: self.base_url,
            boot_seconds=boot_seconds,
            train_seconds=train_seconds,
            page_size=page_size,
            timing_hook=timing_hook,
            predict_boot_seconds=predict_boot_seconds,
            predict_seconds=predict_seconds,
            output_retention_seconds=output_retention_seconds,
            log_phases=log_phases,
        )
        self._dispatcher = WebhookDispatcher(
            self.state,
            lambda: self.webhook_secret,
            retry_delays=webhook_retry_delays,
            timeout=webhook_timeout,
            allow_remote=allow_remote_webhooks,
        )
        self.webhook_faults: WebhookFaults = self._dispatcher.faults
        self._calls: Counter[tuple[str, str]] = Counter()
        self._calls_lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}  # bucket -> (minute, requests in it)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What `replicate.Client(base_url=...)` takes: no `/v1`."""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> ReplicateEmulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        for _attempt in range(5):
            try:
                self._server = _Server((LOOPBACK, self.port), self)
                break
            except OSError as exc:
                # free_port() can race with another process; pick again if it was ours to pick.
                if exc.errno != errno.EADDRINUSE or not self._auto_port:
                    raise
                self.port = free_port()
        if self._server is None:
            raise RuntimeError("could not bind the Replicate emulator")
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"replicate-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._dispatcher.start()
        wait_for_port(self.port, timeout=5, what="Replicate emulator")
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on latency/slow faults
        self._dispatcher.stop()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # --- test controls ------------------------------------------------------------------

    @property
    def boot_seconds(self) -> float:
        return self.state.boot_seconds

    @boot_seconds.setter
    def boot_seconds(self, value: float) -> None:
        self.state.boot_seconds = value

    @property
    def train_seconds(self) -> float:
        return self.state.train_seconds

    @train_seconds.setter
    def train_seconds(self, value: float) -> None:
        self.state.train_seconds = value

    @property
    def predict_boot_seconds(self) -> float:
        """Emulator seconds a new prediction spends `starting`."""
        return self.state.predict_boot_seconds

    @predict_boot_seconds.setter
    def predict_boot_seconds(self, value: float) -> None:
        self.state.predict_boot_seconds = value

    @property
    def predict_seconds(self) -> float:
        """Emulator seconds a prediction spends `processing` (its `metrics.predict_time`)."""
        return self.state.predict_seconds

    @predict_seconds.setter
    def predict_seconds(self, value: float) -> None:
        self.state.predict_seconds = value

    @property
    def output_retention_seconds(self) -> float:
        """Emulator seconds after completion until a prediction's input, output and logs go."""
        return self.state.output_retention_seconds

    @output_retention_seconds.setter
    def output_retention_seconds(self, value: float) -> None:
        self.state.output_retention_seconds = value

    @property
    def log_phases(self) -> dict[str, float]:
        """Each trainer log phase's share of the processing time (new trainings take it)."""
        return dict(self.state.log_phases)

    @log_phases.setter
    def log_phases(self, shares: dict[str, float]) -> None:
        self.state.log_phases = tr.phase_shares(shares)

    @property
    def webhooks_enabled(self) -> bool:
        """False drops every webhook that falls due (nothing is sent, nothing is retried)."""
        return self._dispatcher.enabled

    @webhooks_enabled.setter
    def webhooks_enabled(self, value: bool) -> None:
        self._dispatcher.enabled = value

    @property
    def calls(self) -> dict[tuple[str, str], int]:
        """Requests received per (method, route template), faulted ones included."""
        with self._calls_lock:
            return dict(self._calls)

    def count(self, method: str, route: str) -> int:
        with self._calls_lock:
            return self._calls[(method.upper(), route)]

    def reset_calls(self) -> None:
        with self._calls_lock:
            self._calls.clear()

    def reset(self) -> None:
        """Forget files, models, trainings, faults, counters and deliveries."""
        self.state.reset()
        self.faults.clear()
        self._dispatcher.reset()
        self.webhooks_enabled = True
        self.reset_calls()

    def add_model(
        self,
        name: str,
        *,
        owner: str | None = None,
        visibility: str = "private",
        hardware: str = "cpu",
        **fields: Any,
    ) -> JSON:
        """Create a model as `POST /v1/models` would (for seeding a destination)."""
        body = {
            "owner": owner or self.owner,
            "name": name,
            "visibility": visibility,
            "hardware": hardware,
            **fields,
        }
        return self.state.create_model(body)

    def add_file(
        self,
        data: bytes,
        *,
        name: str = "file",
        content_type: str = "application/octet-stream",
        metadata: JSON | None = None,
    ) -> JSON:
        return self.state.create_file(name, content_type, data, metadata or {})

    def training(self, training_id: str) -> JSON:
        """The training as `GET /v1/trainings/{id}` shows it now."""
        return self.state.get_training(training_id)

    def settle(self, training_id: str) -> JSON:
        """Run the rest of the training now: it ends as it would have, at this instant."""
        result = self.state.settle(training_id)
        self._dispatcher.wake()
        return result

    def finish_now(
        self, training_id: str, outcome: str = "succeeded", error: str | None = None
    ) -> JSON:
        """End a running training now with `outcome` (succeeded|failed|canceled|aborted).
        A terminal training is left unchanged."""
        result = self.state.finish_now(training_id, outcome, error)
        self._dispatcher.wake()
        return result

    def set_timing(
        self,
        training_id: str,
        *,
        boot_seconds: float | None = None,
        train_seconds: float | None = None,
    ) -> JSON:
        """Per-training override of the phase lengths (counted from its creation)."""
        result = self.state.set_timing(training_id, boot_seconds, train_seconds)
        self._dispatcher.wake()
        return result

    def next_training_outcome(
        self, outcome: str, error: str | None = None, *, times: int = 1
    ) -> None:
        """Make the next `times` trainings end with `outcome` (a failure carries `error`)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        with self.state.lock:
            self.state.outcomes.extend([(outcome, error)] * times)

    def seed_trainings(
        self,
        count: int,
        *,
        destination: str | None = None,
        input: JSON | None = None,
        images: int = tr.ASSUMED_REMOTE_IMAGES,
        webhook: str | None = None,
        webhook_events_filter: Sequence[str] = ("start", "completed"),
        boot_seconds: float | None = None,
        train_seconds: float | None = None,
        started_ago: float = 0.0,
    ) -> list[str]:
        """Create `count` trainings at once for a benchmark (no HTTP, no zip to read), each
        `started_ago` seconds into processing. Returns their ids, oldest first."""
        params = {"input_images": f"{self.base_url}/v1/files/seeded", "steps": 1000}
        result = self.state.seed_trainings(
            count,
            destination=destination or f"{self.owner}/twins",
            input_={**params, **(input or {})},
            images=images,
            webhook=webhook,
            events=tuple(webhook_events_filter),
            boot_seconds=boot_seconds,
            train_seconds=train_seconds,
            started_ago=started_ago,
        )
        self._dispatcher.wake()
        return result

    def stats(self) -> JSON:
        """trainings, trainings_in_flight (not terminal now), max_trainings_in_flight (the most
        at once since start or `reset_stats()`), predictions, predictions_created per version."""
        return self.state.stats()

    def reset_stats(self) -> None:
        """Start the in-flight maximum again from the current count."""
        self.state.reset_max_in_flight()

    def prediction(self, prediction_id: str) -> JSON:
        """The prediction as `GET /v1/predictions/{id}` shows it now."""
        return self.state.get_prediction(prediction_id)

    def next_prediction_nsfw(self, *, times: int = 1, flagged: int | None = None) -> None:
        """The safety checker flags the next `times` predictions with valid input: all their
        outputs (they fail with the NSFW error), or only the first `flagged` ones (dropped
        from the output). With `disable_safety_checker` nothing is flagged."""
        if flagged is not None and flagged < 1:
            raise ValueError("flagged must be at least 1 (or None for every output)")
        with self.state.lock:
            self.state.nsfw_next.extend([flagged] * times)

    def next_prediction_hangs(self, *, times: int = 1) -> None:
        """The next `times` predictions stay `processing` until canceled or past Cancel-After."""
        with self.state.lock:
            self.state.hangs_next += times

    @property
    def webhook_deliveries(self) -> list[JSON]:
        """Every delivery attempt: webhook_id, training_id or prediction_id, event, url,
        attempt, status_code, error, lost, at."""
        return self._dispatcher.deliveries

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until no webhook is due or pending; False on timeout."""
        return self._dispatcher.wait_idle(timeout)

    # --- request handling -----------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _ratelimit_headers(self, bucket: str) -> dict[str, str]:
        now = time.time()
        minute = int(now // 60)
        with self._calls_lock:
            current, used = self._windows.get(bucket, (0, 0))
            used = used + 1 if current == minute else 1
            self._windows[bucket] = (minute, used)
        remaining = max(RATE_LIMITS[bucket] - used, 0)
        reset = max(int(60 - now % 60), 1)
        return {"ratelimit-remaining": str(remaining), "ratelimit-reset": str(reset)}

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, token = header.strip().partition(" ")
        return scheme.lower() in ("bearer", "token") and token.strip() == self.api_token

    def _serve(self, handler: _Handler, method: str) -> None:
        url = urlsplit(handler.path)
        path = url.path
        if path.startswith("/_emulator"):
            body, _ = handler.read_request_body(_JSON_LIMIT)
            handler.send(self._control(method, path, body), {})
            return
        template, name, params, known = _find_route(method, path)
        with self._calls_lock:
            self._calls[(method, template or path)] += 1
        keep = self.max_file_bytes + _FORM_OVERHEAD
        body, size = handler.read_request_body(keep)
        request = Request(
            method=method,
            path=path,
            params=params,
            query=parse_qs(url.query),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            body_size=size,
        )
        bucket = "predictions" if (method, template) == ("POST", "/v1/predictions") else "other"
        self._sleep(self.latency_seconds)  # no lock is held while a request sleeps
        action: FaultAction | None = self.faults.take(method, path)
        if action is not None:
            if action.kind == "drop":
                handler.drop()
                return
            if action.kind == "slow":
                self._sleep(action.seconds)
            else:
                resp = Response(action.status, action.body, "application/problem+json")
                resp.headers.update(action.headers)
                handler.send(resp, self._ratelimit_headers(bucket))
                return
        response = self._dispatch(request, template, name, known)
        handler.send(response, self._ratelimit_headers(bucket))

    def _dispatch(
        self, req: Request, template: str | None, name: str | None, known: bool
    ) -> Response:
        if name is None:
            if known:
                detail = f'Method "{req.method}" not allowed.'
                return _problem(ApiError(405, common.problem(405, detail)))
            return _problem(ApiError(404, common.NOT_FOUND))
        if template not in UNAUTHENTICATED_ROUTES and not self._authorized(
            req.headers.get("authorization")
        ):
            return _problem(ApiError(401, common.UNAUTHENTICATED))
        try:
            handler: Callable[[Request], Response] = getattr(self, f"_api_{name}")
            return handler(req)
        except ApiError as err:
            return _problem(err)
        finally:
            self._dispatcher.wake()

    def _cursor(self, req: Request) -> str | None:
        values = req.query.get("cursor")
        return values[0] if values else None

    # --- API endpoints ----------------------------------------------------------------------

    def _api_account(self, req: Request) -> Response:
        return Response(
            200,
            {
                "type": "organization",
                "username": self.owner,
                "name": self.owner,
                "github_url": None,
            },
        )

    def _api_hardware(self, req: Request) -> Response:
        return Response(200, HARDWARE)

    def _api_files_list(self, req: Request) -> Response:
        return Response(200, self.state.list_files(self._cursor(req)))

    def _api_files_create(self, req: Request) -> Response:
        if req.body_size > self.max_file_bytes + _FORM_OVERHEAD:
            raise ApiError(413, common.FILE_TOO_LARGE)
        content_type = req.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(400, common.problem(400, "Expected a multipart/form-data body"))
        try:
            parts = parse_multipart(req.body, content_type)
        except FormError as exc:
            raise ApiError(400, common.problem(400, str(exc))) from exc
        content = parts.get("content")
        if content is None:
            raise ApiError(
                422, common.invalid_fields(("required", "content", "content is required"))
            )
        if len(content.data) > self.max_file_bytes:
            raise ApiError(413, common.FILE_TOO_LARGE)
        filename = (
            parts["filename"].data.decode("utf-8", "replace")
            if "filename" in parts
            else content.filename or "file"
        )
        if len(filename.encode()) > 255:
            raise ApiError(
                422, common.invalid_fields(("max_length", "filename", "filename is too long"))
            )
        mime = (
            parts["type"].data.decode("utf-8", "replace")
            if "type" in parts
            else content.content_type or "application/octet-stream"
        )
        metadata: Any = {}
        if "metadata" in parts:
            try:
                metadata = json.loads(parts["metadata"].data or b"{}")
            except ValueError:
                metadata = None
            if not isinstance(metadata, dict):
                raise ApiError(
                    422,
                    common.invalid_fields(("type", "metadata", "metadata must be a JSON object")),
                )
        return Response(201, self.state.create_file(filename, mime, bytes(content.data), metadata))

    def _api_files_get(self, req: Request) -> Response:
        return Response(200, self.state.file_json(self.state.get_file(req.params["id"])))

    def _api_files_delete(self, req: Request) -> Response:
        self.state.delete_file(req.params["id"])
        return Response(204)

    def _api_files_download(self, req: Request) -> Response:
        rec = self.state.get_file(req.params["id"])
        return Response(200, content_type=rec.content_type, raw=rec.data)

    def _api_models_list(self, req: Request) -> Response:
        return Response(200, self.state.list_models(self._cursor(req)))

    def _api_models_create(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, common.problem(400, "Request body must be a JSON object"))
        return Response(201, self.state.create_model(body))

    def _api_models_get(self, req: Request) -> Response:
        with self.state.lock:
            self.state.advance(self.clock())
            model = self.state.get_model(req.params["owner"], req.params["name"])
            return Response(200, self.state.model_json(model))

    def _api_models_delete(self, req: Request) -> Response:
        self.state.delete_model(req.params["owner"], req.params["name"])
        return Response(204)

    def _api_versions_list(self, req: Request) -> Response:
        with self.state.lock:
            self.state.advance(self.clock())
            return Response(200, self.state.list_versions(req.params["owner"], req.params["name"]))

    def _api_versions_get(self, req: Request) -> Response:
        p = req.params
        with self.state.lock:
            self.state.advance(self.clock())
            ver = self.state.get_version(p["owner"], p["name"], p["version"])
            return Response(200, self.state.version_json(ver))

    def _api_versions_delete(self, req: Request) -> Response:
        p = req.params
        self.state.delete_version(p["owner"], p["name"], p["version"])
        return Response(202)  # asynchronous on the real service

    def _api_trainings_create(self, req: Request) -> Response:
        p = req.params
        result = self.state.create_training(
            p["owner"], p["name"], p["version"], req.json(), self.port
        )
        return Response(201, result)

    def _api_trainings_list(self, req: Request) -> Response:
        return Response(200, self.state.list_trainings(self._cursor(req)))

    def _api_trainings_get(self, req: Request) -> Response:
        return Response(200, self.state.get_training(req.params["id"]))

    def _api_trainings_cancel(self, req: Request) -> Response:
        return Response(200, self.state.cancel_training(req.params["id"]))

    def _api_predictions_create(self, req: Request) -> Response:
        try:
            wait = http_io.prefer_wait(req.headers.get("prefer"))
            deadline = http_io.cancel_after(req.headers.get("cancel-after"))
        except HeaderError as exc:  # emulator: the real answer to a bad header is unconfirmed
            raise ApiError(422, common.problem(422, str(exc))) from exc
        rec = self.state.create_prediction(req.json(), deadline)
        self._dispatcher.wake()
        created = rec.created_body(self.base_url)
        if wait is None:
            return Response(201, created)
        final = self._wait_for_prediction(rec.id, wait)
        # SPEC: 201 with the final output when it finished in time; past the wait the
        # prediction "will be returned in a starting state" (202: "does not yet have all
        # outputs"; which code the real API sends then is our reading of the SPEC).
        return Response(201, final) if final is not None else Response(202, created)

    def _wait_for_prediction(self, prediction_id: str, seconds: float) -> JSON | None:
        """The terminal body, or None once `seconds` pass (wall time, or emulator time when
        the clock is driven by a test). Sleeps without holding the state lock."""
        started_wall, started_emu = time.monotonic(), self.clock()
        while not self._stopping.is_set():
            body, remaining = self.state.terminal_prediction(prediction_id)
            if body is not None:
                return body
            waited = max(time.monotonic() - started_wall, self.clock() - started_emu)
            if waited >= seconds:
                return None
            self._sleep(min(WAIT_POLL_SECONDS, max(remaining, 0.001), seconds - waited))
        return None

    def _api_predictions_list(self, req: Request) -> Response:
        return Response(200, self.state.list_predictions(self._cursor(req)))

    def _api_predictions_get(self, req: Request) -> Response:
        # A training id also works here: the training create answer points at this route.
        prediction_id = req.params["id"]
        if prediction_id in self.state.trainings:
            return Response(200, self.state.get_training(prediction_id))
        return Response(200, self.state.get_prediction(prediction_id))

    def _api_predictions_cancel(self, req: Request) -> Response:
        run_id = req.params["id"]
        if run_id in self.state.trainings:
            return Response(200, self.state.cancel_training(run_id))
        return Response(200, self.state.cancel_prediction(run_id))

    def _api_delivery_output(self, req: Request) -> Response:
        data, content_type = self.state.prediction_output(req.params["id"], req.params["filename"])
        return Response(200, content_type=content_type, raw=data)

    def _api_webhook_secret_get(self, req: Request) -> Response:
        return Response(200, {"key": self.webhook_secret})

    def _api_delivery(self, req: Request) -> Response:
        body = self.state.get_training(req.params["id"])
        if body["status"] != "succeeded":
            raise ApiError(404, common.NOT_FOUND)
        rec = self.state.get_record(req.params["id"])
        facts = rec.logs.facts if rec.logs is not None else tr.ZipFacts()
        captions = tr.caption_files(facts, bool(tr.setting(rec.input, "autocaption")))
        tar = trained_model_tar(rec.id, captions, str(tr.setting(rec.input, "trigger_word")))
        return Response(200, content_type="application/x-tar", raw=tar)

    # --- /_emulator control API -------------------------------------------------------------

    def _control(self, method: str, path: str, raw: bytes) -> Response:
        try:
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            return self._control_route(method, path.rstrip("/"), body)
        except ApiError as err:
            return _problem(err)
        except (ValueError, TypeError, KeyError, re.error) as exc:
            return Response(400, {"detail": str(exc), "status": 400}, "application/problem+json")

    def _control_route(self, method: str, path: str, body: JSON) -> Response:
        route = (method, path)
        if route == ("GET", "/_emulator/health"):
            return Response(200, {"ok": True, "base_url": self.base_url})
        if route == ("POST", "/_emulator/reset"):
            self.reset()
            return Response(200, {"ok": True})
        if route == ("GET", "/_emulator/faults"):
            return Response(200, {"faults": self.faults.list()})
        if route == ("POST", "/_emulator/faults"):
            params = {
                k: v for k, v in body.items() if k not in ("method", "path_regex", "kind", "times")
            }
            fault_id = self.faults.add(
                body.get("method"),
                body.get("path_regex", ""),
                body["kind"],
                body.get("times", 1),
                **params,
            )
            return Response(201, {"id": fault_id})
        if route == ("DELETE", "/_emulator/faults"):
            self.faults.clear()
            return Response(200, {"ok": True})
        if route == ("POST", "/_emulator/faults/probability"):
            extra = {k: v for k, v in body.items() if k not in ("p", "kinds", "seed")}
            kinds = body.get("kinds", ["429", "503", "drop"])
            self.faults.probability(float(body["p"]), kinds, body.get("seed"), **extra)
            return Response(200, {"ok": True})
        if route == ("GET", "/_emulator/calls"):
            calls = [{"method": m, "route": r, "count": c} for (m, r), c in self.calls.items()]
            return Response(200, {"calls": calls})
        if route == ("DELETE", "/_emulator/calls"):
            self.reset_calls()
            return Response(200, {"ok": True})
        if route == ("POST", "/_emulator/config"):
            if "latency_seconds" in body:
                self.latency_seconds = float(body["latency_seconds"])
            if "boot_seconds" in body:
                self.boot_seconds = float(body["boot_seconds"])
            if "train_seconds" in body:
                self.train_seconds = float(body["train_seconds"])
            if "webhooks_enabled" in body:
                self.webhooks_enabled = bool(body["webhooks_enabled"])
            for key in ("predict_boot_seconds", "predict_seconds", "output_retention_seconds"):
                if key in body:
                    setattr(self, key, float(body[key]))
            if "log_phases" in body:
                self.log_phases = body["log_phases"]
            return Response(
                200,
                {
                    "latency_seconds": self.latency_seconds,
                    "boot_seconds": self.boot_seconds,
                    "train_seconds": self.train_seconds,
                    "webhooks_enabled": self.webhooks_enabled,
                    "predict_boot_seconds": self.predict_boot_seconds,
                    "predict_seconds": self.predict_seconds,
                    "output_retention_seconds": self.output_retention_seconds,
                    "log_phases": self.log_phases,
                },
            )
        if route == ("POST", "/_emulator/models"):
            fields = {k: v for k, v in body.items() if k != "name"}
            return Response(201, self.add_model(body["name"], **fields))
        if route == ("POST", "/_emulator/next-training-outcome"):
            self.next_training_outcome(
                body["outcome"], body.get("error"), times=int(body.get("times", 1))
            )
            return Response(200, {"ok": True})
        if route == ("POST", "/_emulator/next-prediction-nsfw"):
            self.next_prediction_nsfw(times=int(body.get("times", 1)), flagged=body.get("flagged"))
            return Response(200, {"ok": True})
        if route == ("POST", "/_emulator/next-prediction-hang"):
            self.next_prediction_hangs(times=int(body.get("times", 1)))
            return Response(200, {"ok": True})
        if route == ("GET", "/_emulator/stats"):
            return Response(200, self.stats())
        if route == ("DELETE", "/_emulator/stats"):
            self.reset_stats()
            return Response(200, self.stats())
        if route == ("GET", "/_emulator/webhooks/deliveries"):
            return Response(200, {"deliveries": self.webhook_deliveries})
        if route == ("POST", "/_emulator/webhooks/faults"):
            self.webhook_faults.add(body["kind"], body.get("times", 1), body.get("event"))
            return Response(201, {"ok": True})
        if route == ("DELETE", "/_emulator/webhooks/faults"):
            self.webhook_faults.clear()
            return Response(200, {"ok": True})
        if route == ("POST", "/_emulator/webhooks/wait"):
            idle = self.wait_for_webhooks(float(body.get("timeout", 5.0)))
            return Response(200, {"idle": idle})
        match = re.fullmatch(r"/_emulator/trainings/([^/]+)/(settle|finish|timing)", path)
        if match and method == "POST":
            training_id, verb = match.groups()
            if verb == "settle":
                return Response(200, self.settle(training_id))
            if verb == "finish":
                outcome = body.get("outcome", "succeeded")
                return Response(200, self.finish_now(training_id, outcome, body.get("error")))
            return Response(
                200,
                self.set_timing(
                    training_id,
                    boot_seconds=body.get("boot_seconds"),
                    train_seconds=body.get("train_seconds"),
                ),
            )
        return _problem(ApiError(404, common.NOT_FOUND))
