"""A stand-in for the Supabase API gateway (Kong): one loopback URL for the whole local project.

    /rest/v1/*                    -> PostgREST (prefix stripped), behind Kong's `apikey` check
    /storage/v1/*                 -> the Storage emulator (devstack.storage_emulator)
    GET /auth/v1/.well-known/jwks.json -> the configured JWKS
    GET /auth/v1/admin/users/{id} -> Supabase Auth's admin read of one user, from auth.users
    POST /auth/v1/signup          -> local e-mail + password sign-up (devstack.local_auth)
    POST /auth/v1/token?grant_type=password -> local password sign-in
    anything else                 -> 404 JSON

So `supabase.create_client(gateway.url, key)` works unchanged against the local stack. For tests
it can inject faults into Storage (or REST) requests, add a fixed latency, and counts requests.

CORS as Supabase's gateway answers it: Kong's `cors` plugin with its default configuration sits on
every /rest/v1, /storage/v1 and /auth/v1 route (Supabase's self-hosted and CLI kong.yml; the
Storage server leaves CORS to Kong). It runs before the apikey check: a preflight (OPTIONS with
Origin and Access-Control-Request-Method) is answered 200 with `Access-Control-Allow-Origin: *`,
the request's Access-Control-Request-Headers echoed as -Allow-Headers, and Kong's default methods;
every other response to a request with an Origin gets `Access-Control-Allow-Origin: *`.

    with SupabaseGateway(postgrest_url=rest.url, database_url=pg.dsn(), jwt_secret=secret,
                         data_dir=tmp) as gw:
        gw.storage_faults.add("POST", r"^/storage/v1/object/training-photos/", "status",
                              status=503, times=2)
        gw.counters.count("POST", "/storage/v1/object/")
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlsplit

import jwt

from devstack import local_auth
from devstack.ports import LOOPBACK, Lifecycle, TrackingHTTPServer, wait_for_port
from devstack.storage_emulator import (
    DEFAULT_UPLOAD_URL_TTL_SECONDS,
    StorageEmulator,
    StorageRequest,
    StorageResponse,
)

log = logging.getLogger(__name__)

# RFC 9110 hop-by-hop headers: never forwarded by a proxy.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_SET_BY_US = {"content-length", "date", "server"}
# Unread request bodies up to this size are drained so the connection can be kept alive.
_DRAIN_LIMIT = 64 * 1024 * 1024
_COPY_CHUNK = 256 * 1024
_JSON = "application/json; charset=utf-8"
# Kong's cors plugin answers preflights with these methods when none are configured.
KONG_CORS_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"


# --------------------------------------------------------------------------- faults


FAULT_KINDS = ("status", "slow", "drop")


@dataclass
class Fault:
    """One injected fault. `times=None` fires forever; `hits` counts how often it fired."""

    method: str
    path_regex: re.Pattern[str]
    kind: str
    times: int | None
    params: dict[str, Any]
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.path_regex.search(path) is not None


class FaultInjector:
    """Faults for one route family, matched in the order they were added (first match wins).

    `path_regex` is searched (`re.search`) in the request path as the client sent it, without
    the query string, e.g. `/storage/v1/object/training-photos/<user>/<job>/a.jpg`.

    Kinds and their parameters:
      - "status": answer `status` (default 503) with `body` (dict -> JSON, str or bytes; default
        a Storage-shaped error) and extra `headers` (e.g. {"Retry-After": "1"}); not forwarded.
      - "slow":   sleep `seconds` (default 1.0), then handle the request normally.
      - "drop":   close the connection without any response. `when="before"` (default) drops
        before the request is handled; `when="after"` handles it (it takes effect) and then
        drops the response: the ambiguous failure that retries must survive.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self, method: str, path_regex: str, kind: str, times: int | None = 1, **params: Any
    ) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if kind == "drop" and params.get("when", "before") not in ("before", "after"):
            raise ValueError("drop faults take when='before' or when='after'")
        fault = Fault(method.upper(), re.compile(path_regex), kind, times, params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this request, if any (consumes one of its `times`)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None


# --------------------------------------------------------------------------- counters


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    status: int | None = None  # None: no response was sent (dropped or connection lost)


class RequestCounters:
    """Every request the gateway received, for assertions such as "exactly one upload"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []

    def record(self, method: str, path: str) -> RecordedRequest:
        entry = RecordedRequest(method, path)
        with self._lock:
            self._requests.append(entry)
        return entry

    def count(self, method: str | None = None, prefix: str = "", status: int | None = None) -> int:
        """Requests whose method matches (None: any) and whose path starts with `prefix`."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (method is None or r.method == method.upper())
                and r.path.startswith(prefix)
                and (status is None or r.status == status)
            )

    def by_prefix(self, depth: int = 4) -> dict[tuple[str, str], int]:
        """Counts per (method, first `depth` path segments): ("POST", "/storage/v1/object/b")."""
        out: dict[tuple[str, str], int] = {}
        with self._lock:
            for r in self._requests:
                key = (r.method, "/".join(r.path.split("/")[: depth + 1]))
                out[key] = out.get(key, 0) + 1
        return out

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()


# --------------------------------------------------------------------------- HTTP plumbing


class _RequestBody:
    """The request body as a stream: Content-Length or chunked, never read past its end."""

    def __init__(self, rfile: io.BufferedIOBase, headers: Mapping[str, str]) -> None:
        self._rfile = rfile
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "0") or "0"
        self._remaining = 0 if self._chunked else max(int(length), 0)
        self._chunk_left = 0
        self._done = not self._chunked and self._remaining == 0

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read(_COPY_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        if self._done or n == 0:
            return b""
        if not self._chunked:
            data = self._rfile.read(min(n, self._remaining))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            self._remaining -= len(data)
            self._done = self._remaining == 0
            return data
        if self._chunk_left == 0:
            line = self._rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self._done = True
                return b""
            self._chunk_left = size
        data = self._rfile.read(min(n, self._chunk_left))
        if not data:
            raise ConnectionError("client closed the connection mid-body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(3)  # the CRLF after each chunk
        return data

    def drain(self, limit: int = _DRAIN_LIMIT) -> bool:
        """Read and discard the rest; False if more than `limit` bytes remain."""
        seen = 0
        while not self._done:
            if seen > limit:
                return False
            seen += len(self.read(_COPY_CHUNK))
        return True


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: BinaryIO | None = None
    length: int | None = None


def _json_reply(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> _Reply:
    return _Reply(status, [("Content-Type", _JSON), *(headers or [])], json.dumps(payload).encode())


_API_VERSION_HEADER = "x-supabase-api-version"
_API_VERSION_2024 = "2024-01-01"


def _gotrue_error(error: local_auth.AuthError, api_version: str) -> _Reply:
    """GoTrue's error body: `{code, message}` for clients that send API version 2024-01-01 or
    later (supabase-js, supabase-py; the version is echoed), else `{code: <status>, error_code,
    msg}`."""
    if api_version >= _API_VERSION_2024:
        payload: dict[str, Any] = {"code": error.code, "message": error.message}
        headers = [("X-Supabase-Api-Version", _API_VERSION_2024)]
    else:
        payload = {"code": error.status, "error_code": error.code, "msg": error.message}
        headers = []
    payload.update(error.extra or {})
    return _json_reply(error.status, payload, headers)


def _kong_preflight(request_headers: str | None) -> _Reply:
    """Kong's cors plugin's own answer to a preflight, with its default configuration."""
    headers = [("Access-Control-Allow-Origin", "*")]
    if request_headers:
        headers.append(("Access-Control-Allow-Headers", request_headers))
    headers.append(("Access-Control-Allow-Methods", KONG_CORS_METHODS))
    return _Reply(200, headers)


class _Server(TrackingHTTPServer):
    block_on_close = False

    def __init__(self, address: tuple[str, int], gateway: SupabaseGateway) -> None:
        self.gateway = gateway
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the real gateway
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    # Headers and body go out in separate writes; with Nagle on, every keep-alive response
    # waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("gateway: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        self._cors = False  # set per request: is this a route Kong's cors plugin covers?
        gw = self.server.gateway
        method = self.command.upper()
        path, _, query = self.path.partition("?")
        record = gw.counters.record(method, path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = _RequestBody(self.rfile, headers)
        except ValueError:
            self._send(_json_reply(400, {"message": "Bad Content-Length"}), method, record)
            self.close_connection = True
            return

        route = "other"
        faults: FaultInjector | None = None
        if path == "/rest/v1" or path.startswith("/rest/v1/"):
            route, faults = "rest", gw.rest_faults
        elif path.startswith("/storage/v1/"):
            route, faults = "storage", gw.storage_faults
        self._cors = route != "other" or path.startswith("/auth/v1/")
        origin = headers.get("origin")
        if (
            self._cors
            and method == "OPTIONS"
            and origin
            and "access-control-request-method" in headers
        ):
            body.drain()
            self._send(
                _kong_preflight(headers.get("access-control-request-headers")), method, record
            )
            return
        fault = faults.take(method, path) if faults is not None else None
        if faults is not None and gw.latency_seconds > 0:
            time.sleep(gw.latency_seconds)

        drop_after = False
        try:
            if fault is not None and fault.kind == "slow":
                time.sleep(float(fault.params.get("seconds", 1.0)))
            elif fault is not None and fault.kind == "drop":
                if fault.params.get("when", "before") == "before":
                    body.drain()
                    self.close_connection = True
                    return
                drop_after = True
            elif fault is not None and fault.kind == "status":
                body.drain()
                self._send(self._fault_reply(fault), method, record)
                return

            if route == "rest":
                reply = gw._proxy_rest(method, path, query, list(self.headers.items()), body)
            elif route == "storage":
                reply = gw._storage(method, path, query, headers, body)
            elif path == "/auth/v1/.well-known/jwks.json" and method in ("GET", "HEAD"):
                reply = _json_reply(200, gw.jwks)
            elif path.startswith("/auth/v1/admin/users/") and method == "GET":
                reply = gw._auth_admin_user(path.rsplit("/", 1)[-1], headers, query)
            elif path in ("/auth/v1/signup", "/auth/v1/token") and method == "POST":
                reply = gw._auth_password(path.rsplit("/", 1)[-1], headers, query, body.read())
            else:
                # Kong's answer for a path no route matches.
                reply = _json_reply(404, {"message": "no Route matched with those values"})

            if drop_after:
                if reply.stream is not None:
                    reply.stream.close()
                self.close_connection = True
                body.drain()
                return
            if not body.drain():
                self.close_connection = True
            self._send(reply, method, record)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away mid-request
        except Exception:
            # A bug here must still answer (and show up in the log), not just cut the connection.
            log.exception("gateway: %s %s failed", method, path)
            self.close_connection = True
            if record.status is None:
                with contextlib.suppress(OSError):
                    self._send(
                        _json_reply(500, {"message": "An unexpected error occurred"}),
                        method,
                        record,
                    )

    @staticmethod
    def _fault_reply(fault: Fault) -> _Reply:
        status = int(fault.params.get("status", 503))
        payload = fault.params.get(
            "body",
            {"statusCode": str(status), "error": "Injected", "message": "injected fault"},
        )
        extra = list((fault.params.get("headers") or {}).items())
        if isinstance(payload, bytes | str):
            data = payload.encode() if isinstance(payload, str) else payload
            return _Reply(status, [("Content-Type", "text/plain; charset=utf-8"), *extra], data)
        return _json_reply(status, payload, extra)

    def _send(self, reply: _Reply, method: str, record: RecordedRequest) -> None:
        headers = reply.headers
        if self._cors and self.headers.get("origin"):
            # Kong's cors plugin (header_filter) on every Supabase route's response.
            headers = [h for h in headers if h[0].lower() != "access-control-allow-origin"]
            headers.append(("Access-Control-Allow-Origin", "*"))
        try:
            self.send_response(reply.status)
            names = set()
            for name, value in headers:
                names.add(name.lower())
                self.send_header(name, value)
            if "content-length" not in names:
                length = reply.length if reply.length is not None else len(reply.body)
                self.send_header("Content-Length", str(length))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            record.status = reply.status
            if method == "HEAD":
                return
            if reply.stream is not None:
                while chunk := reply.stream.read(_COPY_CHUNK):
                    self.wfile.write(chunk)
            else:
                self.wfile.write(reply.body)
        finally:
            if reply.stream is not None:
                reply.stream.close()


# --------------------------------------------------------------------------- the gateway


class SupabaseGateway(Lifecycle):
    """One ThreadingHTTPServer on 127.0.0.1 that plays the Supabase API gateway.

    `database_url` is a superuser DSN for the Storage emulator (which switches to each request's
    JWT role itself); `postgrest_url` is the PostgREST base URL; object bytes go to `data_dir`.
    `latency_seconds` is added to every /rest/v1 and /storage/v1 request (mutable at run time).
    """

    def __init__(
        self,
        *,
        postgrest_url: str,
        database_url: str,
        jwt_secret: str,
        data_dir: Path,
        port: int | None = None,
        jwks: dict[str, Any] | None = None,
        latency_seconds: float = 0.0,
        upload_url_ttl_seconds: int = DEFAULT_UPLOAD_URL_TTL_SECONDS,
    ) -> None:
        upstream = urlsplit(postgrest_url)
        self._rest_host = upstream.hostname or LOOPBACK
        self._rest_port = upstream.port or 80
        self._rest_base = upstream.path.rstrip("/")
        self.jwt_secret = jwt_secret
        self._jwks: dict[str, Any] = jwks if jwks is not None else {"keys": []}
        self.data_dir = Path(data_dir)
        self.latency_seconds = latency_seconds
        self.storage_faults = FaultInjector()
        self.rest_faults = FaultInjector()
        self.counters = RequestCounters()
        self._requested_port = port
        self._database_url = database_url
        self._upload_url_ttl_seconds = upload_url_ttl_seconds
        self._storage_emulator: StorageEmulator | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("gateway not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def jwks(self) -> dict[str, Any]:
        """The JWKS served at /auth/v1/.well-known/jwks.json, also trusted by Storage."""
        return self._jwks

    @jwks.setter
    def jwks(self, value: dict[str, Any]) -> None:
        # Settable at run time so a test can switch the project to asymmetric signing keys.
        self._jwks = value
        if self._storage_emulator is not None:
            self._storage_emulator.jwks = dict(value)

    @property
    def storage(self) -> StorageEmulator:
        """The Storage emulator (e.g. to set `upload_url_ttl_seconds` or `clock` in tests)."""
        if self._storage_emulator is None:
            raise RuntimeError("gateway not started")
        return self._storage_emulator

    def start(self) -> None:
        if self._server is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._storage_emulator = StorageEmulator(
            database_url=self._database_url,
            jwt_secret=self.jwt_secret,
            data_dir=self.data_dir,
            jwks=self.jwks,
            upload_url_ttl_seconds=self._upload_url_ttl_seconds,
        )
        self._server = _Server((LOOPBACK, self._requested_port or 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"supabase-gateway:{self.port}",
            daemon=True,
        )
        self._thread.start()
        wait_for_port(self.port, what="supabase gateway")

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._storage_emulator is not None:
            self._storage_emulator.close()
            self._storage_emulator = None

    # ------------------------------------------------------------------ routes

    def _valid_api_key(self, key: str) -> bool:
        # Kong only knows the project's anon and service_role keys: JWTs with those roles.
        try:
            claims = jwt.decode(
                key, self.jwt_secret, algorithms=["HS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return False
        return claims.get("role") in ("anon", "service_role")

    def _api_key_refusal(self, headers: Mapping[str, str], query: str) -> _Reply | None:
        """Kong's key-auth: the `apikey` header (or query parameter) must be a project key."""
        api_key = headers.get("apikey") or dict(parse_qsl(query)).get("apikey")
        if not api_key:
            return _json_reply(401, {"message": "No API key found in request"})
        if not self._valid_api_key(api_key):
            return _json_reply(401, {"message": "Invalid authentication credentials"})
        return None

    def _proxy_rest(
        self,
        method: str,
        path: str,
        query: str,
        header_list: list[tuple[str, str]],
        body: _RequestBody,
    ) -> _Reply:
        refusal = self._api_key_refusal({k.lower(): v for k, v in header_list}, query)
        if refusal is not None:
            return refusal
        data = body.read()
        target = self._rest_base + (path[len("/rest/v1") :] or "/")
        if query:
            target += "?" + query
        conn = http.client.HTTPConnection(self._rest_host, self._rest_port, timeout=120)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", f"{self._rest_host}:{self._rest_port}")
            for name, value in header_list:
                if name.lower() in _HOP_BY_HOP or name.lower() in ("host", "content-length"):
                    continue
                conn.putheader(name, value)
            if data or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data or None)
            resp = conn.getresponse()
            payload = resp.read()
            # Our own server adds Date, Server and Content-Length.
            out = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower() not in _HOP_BY_HOP and k.lower() not in _SET_BY_US
            ]
            reply = _Reply(resp.status, out, payload)
            if method == "HEAD":
                reply.length = int(resp.getheader("Content-Length") or 0)
            return reply
        except (OSError, http.client.HTTPException) as exc:
            log.warning("gateway: PostgREST unreachable: %s", exc)
            return _json_reply(
                502, {"message": "An invalid response was received from the upstream server"}
            )
        finally:
            conn.close()

    def _auth_admin_user(self, user_id: str, headers: dict[str, str], query: str) -> _Reply:
        """GoTrue's `GET /admin/users/{id}` (bodies as GoTrue sends them without an API-version
        header): Kong's apikey check, then a service-role bearer, then the auth.users row."""
        import uuid

        refusal = self._api_key_refusal(headers, query)
        if refusal is not None:
            return refusal
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _json_reply(
                401,
                {
                    "code": 401,
                    "error_code": "no_authorization",
                    "msg": "This endpoint requires a Bearer token",
                },
            )
        try:
            claims = jwt.decode(
                token.strip(), self.jwt_secret, algorithms=["HS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError as exc:
            return _json_reply(
                403, {"code": 403, "error_code": "bad_jwt", "msg": f"invalid JWT: {exc}"}
            )
        if claims.get("role") not in ("service_role", "supabase_admin"):
            return _json_reply(
                403, {"code": 403, "error_code": "not_admin", "msg": "User not allowed"}
            )
        try:
            uuid.UUID(user_id)
        except ValueError:
            return _json_reply(
                404,
                {"code": 404, "error_code": "validation_failed", "msg": "user_id must be an UUID"},
            )
        user = local_auth.read_user(self._database_url, user_id)
        if user is None:
            return _json_reply(
                404, {"code": 404, "error_code": "user_not_found", "msg": "User not found"}
            )
        return _json_reply(200, user)

    def _auth_password(
        self, endpoint: str, headers: dict[str, str], query: str, body: bytes
    ) -> _Reply:
        """GoTrue's `POST /signup` and `POST /token?grant_type=password`, behind Kong's apikey
        check. Errors in the shape the request's `X-Supabase-Api-Version` asks for."""
        refusal = self._api_key_refusal(headers, query)
        if refusal is not None:
            return refusal
        version = headers.get(_API_VERSION_HEADER, "")
        try:
            if endpoint == "token":
                grant = dict(parse_qsl(query)).get("grant_type")
                if grant != "password":
                    # Our choice: only the password grant is served locally.
                    raise local_auth.AuthError(
                        400, "validation_failed", f"unsupported_grant_type: {grant or '(none)'}"
                    )
                user_id = local_auth.sign_in(self._database_url, body)
            else:
                user_id = local_auth.sign_up(self._database_url, body)
        except local_auth.AuthError as exc:
            return _gotrue_error(exc, version)
        return _json_reply(
            200, local_auth.session(self._database_url, self.jwt_secret, self.url, user_id)
        )

    def _storage(
        self, method: str, path: str, query: str, headers: dict[str, str], body: _RequestBody
    ) -> _Reply:
        request = StorageRequest(
            method=method,
            path=path[len("/storage/v1") :],
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers=headers,
            body=body,
        )
        response: StorageResponse = self.storage.handle(request)
        return _Reply(
            response.status,
            list(response.headers.items()),
            response.body,
            response.stream,
            response.length,
        )
