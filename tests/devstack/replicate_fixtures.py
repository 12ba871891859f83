"""Fixtures and helpers for the Replicate emulator's tests (the real `replicate` client).

Import what a test module uses (`from tests.devstack.replicate_fixtures import emu, client`).
"""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import replicate

from devstack.ports import LOOPBACK
from devstack.replicate_emulator import TRAINER_MODEL, TRAINER_VERSION, ReplicateEmulator

TOKEN = "r8_emulator_test_token"
CREATE_ROUTE = "/v1/models/{owner}/{name}/versions/{version}/trainings"
TRAINER_BAR = re.compile(r"flux_train_replicate:\s*(\d{1,3})%\|[^|]*\|\s*(\d+)/(\d+)")
BARE_BAR = re.compile(r"^\s*\d+%\|")


class FakeClock:
    """Emulator time that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[ReplicateEmulator]:
    emulator = ReplicateEmulator(api_token=TOKEN, clock=clock, boot_seconds=10, train_seconds=100)
    with emulator:
        emulator.add_model("twins")
        yield emulator


@pytest.fixture
def client(emu: ReplicateEmulator) -> replicate.Client:
    return replicate.Client(api_token=TOKEN, base_url=emu.base_url)


@pytest.fixture
def raw(emu: ReplicateEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ) as http:
        yield http


def photos_zip(names: tuple[str, ...] = ("a.jpg", "b.jpg", "c.png")) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in names:
            archive.writestr(name, b"\xff\xd8\xff not really a jpeg")
    return buf.getvalue()


def upload_zip(client: replicate.Client, data: bytes | None = None) -> str:
    uploaded = client.files.create(io.BytesIO(data or photos_zip()), filename="photos.zip")
    return uploaded.urls["get"]


def start_training(client: replicate.Client, input_images: Any, **extra: Any) -> Any:
    params: dict[str, Any] = {"input_images": input_images, "steps": 40}
    params.update(extra.pop("input", {}))
    return client.trainings.create(
        model=TRAINER_MODEL,
        version=TRAINER_VERSION,
        input=params,
        destination="flurrty/twins",
        **extra,
    )


class Receiver:
    """A loopback webhook receiver answering with the given statuses (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], str]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}/webhooks/replicate?job=1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def events(self) -> list[tuple[str, str]]:
        """(status in the body, webhook-id) per request received."""
        out = []
        for headers, body in self.requests:
            lower = {k.lower(): v for k, v in headers.items()}
            out.append((json.loads(body)["status"], lower["webhook-id"]))
        return out


def trained_version(emu: ReplicateEmulator, client: replicate.Client) -> str:
    """`flurrty/twins:<id>` from a training run to its end now."""
    training = start_training(client, upload_zip(client))
    done = emu.settle(training.id)
    assert done["status"] == "succeeded"
    return str(done["output"]["version"])
