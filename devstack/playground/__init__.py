"""The playground page (static HTML + ES modules in this folder) on its own loopback port.

It serves only the page's own files and `config.json` (the public URLs and the anon key the page
calls, as a deployed frontend would have them in its build settings). The page is a different
origin from every API it calls, so it goes through the same CORS a deployed frontend meets.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from devstack.ports import LOOPBACK, Lifecycle, TrackingHTTPServer, wait_for_port

HERE = Path(__file__).resolve().parent
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # ES modules load only with a JavaScript type
    ".css": "text/css; charset=utf-8",
}
# Every file the page consists of: nothing else in this folder is served.
PAGE_FILES = {"/index.html", "/api.js", "/ui.js", "/chart.js", "/style.css"}


class Playground(Lifecycle):
    """`config` becomes /config.json: uploadUrl, startUrl, statusUrl, supabaseUrl,
    supabaseAnonKey, statusRefreshSeconds."""

    def __init__(self, config: dict[str, Any], port: int = 0) -> None:
        self.config = config
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address, ending in a slash (its origin is this without the slash)."""
        if self._server is None:
            raise RuntimeError("playground not started")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}/"

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = _Server((LOOPBACK, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="playground",
            daemon=True,
        )
        self._thread.start()
        wait_for_port(int(self._server.server_address[1]), what="playground")

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def content_security_policy(self) -> str:
        # The page may talk only to itself and the public URLs in its config.
        apis = sorted(
            {
                _origin(str(self.config[key]))
                for key in ("uploadUrl", "startUrl", "statusUrl", "supabaseUrl")
            }
        )
        # Pictures come from Storage's signed URLs (the Supabase origin); photo thumbnails are blobs.
        storage = _origin(str(self.config["supabaseUrl"]))
        return (
            f"default-src 'self'; img-src 'self' blob: {storage}; style-src 'self'; "
            f"connect-src 'self' {' '.join(apis)}; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


class _Server(TrackingHTTPServer):
    block_on_close = False

    def __init__(self, address: tuple[str, int], playground: Playground) -> None:
        self.playground = playground
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            path = "/index.html"
        if path == "/config.json":
            self._reply(200, "application/json", json.dumps(self.server.playground.config).encode())
        elif path in PAGE_FILES:
            file = HERE / path.lstrip("/")
            self._reply(200, CONTENT_TYPES[file.suffix], file.read_bytes())
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found\n")

    do_HEAD = do_GET

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy", self.server.playground.content_security_policy()
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
