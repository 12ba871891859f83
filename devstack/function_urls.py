"""Local Function URLs: HTTP requests become Lambda Function URL (payload 2.0) events for the real
handlers, and a timer fires the EventBridge schedule, as AWS would.

Each function gets its own port (a Function URL is its own host). Like AWS, a request whose event
would exceed 6 MB is refused with 413 before the handler runs, and binary bodies arrive base64.

CORS is the URL's, as in AWS: each function's `FunctionUrlConfig.Cors` is read from template.yaml
(`template_cors`), a preflight is answered by the URL without invoking the function, and every other
response gets the configured headers (the URL's win over any the function sent). What Lambda sends
(team reference serverless.md 0.3; the AWS guide "Cross-origin resource sharing (CORS)" and a
published capture of a live URL):
  preflight (OPTIONS with Origin and Access-Control-Request-Method): 200, empty body,
    `Content-Type: application/json`, `Vary: Origin`; for an allowed origin also
    Access-Control-Allow-Origin (the origin, or `*` for a wildcard), -Allow-Methods and
    -Allow-Headers (the configured lists joined by ","), -Max-Age (when configured) and
    -Allow-Credentials: true (when configured);
  any other request with an Origin: the function's response plus `Vary: Origin`; for an allowed
    origin also Access-Control-Allow-Origin, -Expose-Headers and -Allow-Credentials as configured.
A refused origin gets no Access-Control-* header at all, so the browser blocks the call; that the
preflight still answers 200 is our reading (no capture of a refused preflight was found).

Every answer a function gives is recorded (`FunctionUrls.answers`: function, method, the route
that matched, status, error code, and a few bodies of each), so the test suite can check the
API contract against what the handlers really answered (tests/contract_check.py).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from devstack.ports import LOOPBACK, Lifecycle

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
INVOKE_LIMIT_BYTES = 6 * 1024 * 1024
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
SCHEDULE_EVENT = {"source": "flurrty.schedule", "action": "sweep"}

# Seconds each function may run (template.yaml); the context's remaining time counts down from it.
TIMEOUTS = {"upload_training_photos": 29, "start_ai_training": 120, "check_training_status": 60}

Handler = Callable[[dict[str, Any], Any], Any]
NO_ENVELOPE = "<no error envelope>"

# Response headers the URL owns when CORS is configured (lower case).
_CORS_HEADERS = frozenset(
    {
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-allow-credentials",
        "access-control-expose-headers",
        "access-control-max-age",
    }
)


@dataclass(frozen=True)
class UrlCors:
    """One Function URL's `Cors` (AWS::Lambda::Url Cors), applied the way Lambda applies it."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def allowed_origin(self, origin: str) -> str | None:
        """The Access-Control-Allow-Origin value for this request origin, None if refused."""
        if "*" in self.allow_origins:
            return "*"
        return origin if origin in self.allow_origins else None

    def preflight_headers(self, origin: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Vary": "Origin"}
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return headers
        headers["Access-Control-Allow-Origin"] = allowed
        if self.allow_headers:
            headers["Access-Control-Allow-Headers"] = ",".join(self.allow_headers)
        if self.allow_methods:
            headers["Access-Control-Allow-Methods"] = ",".join(self.allow_methods)
        if self.max_age is not None:
            headers["Access-Control-Max-Age"] = str(self.max_age)
        if self.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def response_headers(self, origin: str, headers: Mapping[str, str]) -> dict[str, str]:
        """The function's response headers with the URL's CORS headers put in their place."""
        out = {k: v for k, v in headers.items() if k.lower() not in _CORS_HEADERS}
        vary = next((k for k in out if k.lower() == "vary"), None)
        out[vary or "Vary"] = f"{out[vary]}, Origin" if vary else "Origin"
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return out
        out["Access-Control-Allow-Origin"] = allowed
        if self.expose_headers:
            out["Access-Control-Expose-Headers"] = ",".join(self.expose_headers)
        if self.allow_credentials:
            out["Access-Control-Allow-Credentials"] = "true"
        return out


@dataclass(frozen=True)
class Answer:
    """One kind of answer a function gave: what the contract checks compare with the registry."""

    function: str
    method: str
    route: str | None  # the matched route as registered (`/uploads/<job_id>/complete`); None: none
    status: int
    code: str | None  # an error answer's code (NO_ENVELOPE without our envelope); None: success

    def __str__(self) -> str:
        answered = f"{self.status} {self.code}" if self.code else str(self.status)
        return f"{self.function} {self.method} {self.route or '(no route)'} -> {answered}"


class AnswerLog:
    """Every distinct answer the local URLs gave, with up to `SAMPLES` distinct bodies of each
    (bounded, so a long `make up` session keeps a fixed amount)."""

    SAMPLES = 5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bodies: dict[Answer, list[Any]] = {}

    def record(self, answer: Answer, body: Any) -> None:
        with self._lock:
            kept = self.bodies.setdefault(answer, [])
            if len(kept) < self.SAMPLES and body not in kept:
                kept.append(body)

    def answers(self) -> set[Answer]:
        with self._lock:
            return set(self.bodies)


def matched_route(app: Any, method: str, path: str) -> str | None:
    """The route Powertools' resolver picks for this request (its own matching, `_resolve`)."""
    for route in app._static_routes + app._dynamic_routes:
        if route.method == method.upper() and route.rule.match(path):
            return str(route.path)
    return None


def answer_of(
    function: str, app: Any, event: dict[str, Any], status: int, payload: bytes
) -> tuple[Answer, Any]:
    """What the function answered, read from its response, and the body as JSON."""
    try:
        body = json.loads(payload) if payload else None
    except ValueError:
        body = None
    code = None
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        code = code if isinstance(code, str) else NO_ENVELOPE
    method = event["requestContext"]["http"]["method"]
    route = matched_route(app, method, event["rawPath"])
    return Answer(function, method, route, status, code), body


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags: `!Ref X` becomes {"Ref": "X"}, `!If [...]` becomes
    {"Fn::If": [...]}, and so on, as CloudFormation reads them."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=_TemplateLoader)  # a SafeLoader subclass
    return loaded


def template_cors(
    parameter_overrides: Mapping[str, Sequence[str] | str] | None = None, path: Path = TEMPLATE
) -> dict[str, UrlCors]:
    """Each function's (named by its CodeUri folder) Function URL CORS from template.yaml, with
    `!Ref` parameters resolved to their defaults unless overridden, as `sam deploy
    --parameter-overrides` would."""
    template = load_template(path)
    parameters = template.get("Parameters", {})
    overrides = dict(parameter_overrides or {})

    def resolve(value: Any, where: str) -> Any:
        if isinstance(value, list):
            return [resolve(item, where) for item in value]
        if isinstance(value, dict) and set(value) == {"Ref"}:
            name = value["Ref"]
            if name in overrides:
                return overrides[name]
            if name not in parameters or "Default" not in parameters[name]:
                raise ValueError(
                    f"{where}: parameter {name!r} has no default; pass it as an override"
                )
            default = parameters[name]["Default"]
            if parameters[name].get("Type") == "CommaDelimitedList":
                return [item.strip() for item in str(default).split(",") if item.strip()]
            return default
        if isinstance(value, dict):
            raise ValueError(f"{where}: {value!r} cannot be resolved locally")
        return value

    def strings(value: Any, where: str) -> tuple[str, ...]:
        resolved = resolve(value, where)
        if isinstance(resolved, str):
            resolved = [resolved]
        flat: list[str] = []
        for item in resolved:
            flat.extend(item if isinstance(item, list) else [item])
        return tuple(str(item) for item in flat)

    out: dict[str, UrlCors] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        cors = (props.get("FunctionUrlConfig") or {}).get("Cors")
        if not cors:
            continue
        where = f"{logical_id}.FunctionUrlConfig.Cors"
        max_age = resolve(cors.get("MaxAge"), where)
        out[Path(str(props["CodeUri"])).name] = UrlCors(
            allow_origins=strings(cors.get("AllowOrigins", []), where),
            allow_methods=strings(cors.get("AllowMethods", []), where),
            allow_headers=strings(cors.get("AllowHeaders", []), where),
            expose_headers=strings(cors.get("ExposeHeaders", []), where),
            max_age=None if max_age is None else int(max_age),
            allow_credentials=bool(resolve(cors.get("AllowCredentials", False), where)),
        )
    return out


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py under a unique module name (three modules are called app)."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"functions_{name}_app", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    timeout_seconds: float
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = (
            f"arn:aws:lambda:local:000000000000:function:{self.function_name}"
        )
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def is_text(content_type: str | None) -> bool:
    return bool(content_type) and any(t in content_type.lower() for t in TEXT_TYPES)  # type: ignore[union-attr]


def build_event(
    method: str, raw_target: str, headers: list[tuple[str, str]], body: bytes, host: str
) -> dict[str, Any]:
    parts = urlsplit(raw_target)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = datetime.now(UTC)
    text = is_text(merged.get("content-type"))
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": merged,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": LOOPBACK,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": not text and bool(body),
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = (
            body.decode("utf-8", errors="replace") if text else base64.b64encode(body).decode()
        )
    return event


class _FunctionServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent calls (the default 5 resets connections)

    def __init__(
        self, name: str, module: ModuleType, port: int, answers: AnswerLog, cors: UrlCors | None
    ):
        self.function_name = name
        self.handler: Handler = module.handler
        self.app = module.app
        self.answers = answers
        self.cors = cors
        super().__init__((LOOPBACK, port), _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _FunctionServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet; handlers log themselves
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        origin = self.headers.get("origin")
        cors = self.server.cors
        if (
            cors is not None
            and self.command == "OPTIONS"
            and origin
            and self.headers.get("access-control-request-method")
        ):
            # The URL answers a preflight itself; the function never sees it.
            self._send(200, cors.preflight_headers(origin), b"", preflight=True)
            return
        event = build_event(
            self.command, self.path, list(self.headers.items()), body, self.headers.get("host", "")
        )
        if len(json.dumps(event)) > INVOKE_LIMIT_BYTES:
            self._send(
                413,
                {"content-type": "application/json"},
                json.dumps(
                    {
                        "Message": f"Request must be smaller than {INVOKE_LIMIT_BYTES} bytes for the InvokeFunction operation"
                    }
                ).encode(),
            )
            return
        context = LambdaContext(
            self.server.function_name, TIMEOUTS.get(self.server.function_name, 30)
        )
        try:
            result = self.server.handler(event, context)
        except Exception:
            # Lambda answers a crashed invocation with a bare 502.
            self._send(
                502, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
            )
            return
        status, headers, payload = _decode_result(result)
        server = self.server
        server.answers.record(*answer_of(server.function_name, server.app, event, status, payload))
        self._send(status, headers, payload)

    def _send(
        self, status: int, headers: dict[str, str], payload: bytes, preflight: bool = False
    ) -> None:
        origin = self.headers.get("origin")
        if self.server.cors is not None and origin and not preflight:
            headers = self.server.cors.response_headers(origin, headers)
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle


def _decode_result(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Lambda's interpretation of a Function URL response (payload 2.0)."""
    if isinstance(result, dict) and "statusCode" in result:
        headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for cookie in result.get("cookies") or []:
            headers.setdefault("set-cookie", cookie)
        body = result.get("body") or ""
        payload = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        return int(result["statusCode"]), headers, payload
    return 200, {"content-type": "application/json"}, json.dumps(result).encode()


class FunctionUrls(Lifecycle):
    """The three handlers on their own loopback ports, plus the schedule."""

    def __init__(
        self,
        ports: dict[str, int],
        schedule_seconds: float | None = 3.0,
        cors: Mapping[str, UrlCors] | None = None,
    ):
        self.ports = ports
        self.schedule_seconds = schedule_seconds
        self.cors = dict(cors or {})
        self._servers: list[_FunctionServer] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.sweeps = 0
        self.handlers: dict[str, Handler] = {}
        self.answers = AnswerLog()

    def url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[name]}/"

    def start(self) -> None:
        for name, port in self.ports.items():
            module = load_function(name)
            self.handlers[name] = module.handler
            server = _FunctionServer(name, module, port, self.answers, self.cors.get(name))
            thread = threading.Thread(target=server.serve_forever, name=f"fn-{name}", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        if self.schedule_seconds:
            timer = threading.Thread(target=self._schedule_loop, name="fn-schedule", daemon=True)
            timer.start()
            self._threads.append(timer)

    def fire_schedule(self) -> Any:
        """One scheduled invocation of check_training_status, as EventBridge Scheduler sends it."""
        handler = self.handlers["check_training_status"]
        result = handler(
            dict(SCHEDULE_EVENT),
            LambdaContext("check_training_status", TIMEOUTS["check_training_status"]),
        )
        self.sweeps += 1
        return result

    def _schedule_loop(self) -> None:
        assert self.schedule_seconds
        while not self._stop.wait(self.schedule_seconds):
            try:
                self.fire_schedule()
            except Exception:
                continue

    def stop(self) -> None:
        self._stop.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
