"""Signed webhook delivery (Standard Webhooks; the team reference, Replicate section 5).

One daemon thread collects due events (trainings and predictions alike) from the state, POSTs
them in order, and retries only the `completed` event. Switches can lose, duplicate or reorder
deliveries.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import http.client
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from devstack.replicate_emulator import common
from devstack.replicate_emulator.store import LOOPBACK_HOSTS, State, WebhookEvent

WEBHOOK_FAULT_KINDS = ("lose", "duplicate", "reorder")


def sign_webhook(secret: str, msg_id: str, timestamp: int | str, body: bytes | str) -> str:
    """`webhook-signature` value: v1,base64(HMAC-SHA256(key, "{id}.{ts}.{body}")).

    The key is the base64-decoded part of the `whsec_...` secret after the underscore.
    """
    key = base64.b64decode(secret.split("_", 1)[1])
    raw = body.encode() if isinstance(body, str) else body
    signed = f"{msg_id}.{timestamp}.".encode() + raw
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass
class _WebhookFault:
    kind: str
    remaining: int | None
    event: str | None


class WebhookFaults:
    """Delivery switches: `lose` (never sent), `duplicate` (sent twice, same webhook-id),
    `reorder` (a run's intermediate events held back until after its final one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[_WebhookFault] = []

    def add(self, kind: str, times: int | None = 1, event: str | None = None) -> None:
        if kind not in WEBHOOK_FAULT_KINDS:
            raise ValueError(f"webhook fault kind must be one of {WEBHOOK_FAULT_KINDS}")
        with self._lock:
            self._items.append(_WebhookFault(kind, times, event))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def take(self, kind: str, event: str) -> bool:
        with self._lock:
            for item in self._items:
                if item.kind == kind and item.event in (None, event):
                    if item.remaining is not None:
                        item.remaining -= 1
                        if item.remaining <= 0:
                            self._items.remove(item)
                    return True
            return False


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    msg_id: str = field(compare=False)
    event: WebhookEvent = field(compare=False)
    attempt: int = field(compare=False, default=1)


class WebhookDispatcher:
    """The background sender. Intermediate events are sent once; `completed` is retried."""

    def __init__(
        self,
        state: State,
        secret: Callable[[], str],
        *,
        retry_delays: Sequence[float],
        timeout: float,
        allow_remote: bool,
        poll_interval: float = 0.05,
    ) -> None:
        self.state = state
        self.secret = secret
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.allow_remote = allow_remote
        self.poll_interval = poll_interval
        self.faults = WebhookFaults()
        self.enabled = True  # False: due events are dropped, as if the receiver were unreachable
        self._lock = threading.Lock()
        self._queue: list[_Delivery] = []
        self._held: dict[str, list[_Delivery]] = {}
        self._reordering: set[str] = set()
        self._seq = itertools.count()
        self._busy = False
        self._log: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="replicate-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self._log]

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._held.clear()
            self._reordering.clear()
            self._log.clear()
        self.faults.clear()

    def idle(self) -> bool:
        with self._lock:
            busy = self._busy or bool(self._queue) or any(self._held.values())
        return not busy and not self.state.has_pending_webhooks()

    def wait_idle(self, timeout: float) -> bool:
        """True once every due event has been sent (or given up on) and none are pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._wake.set()
            if self.idle():
                return True
            time.sleep(0.02)
        return self.idle()

    # --- the loop -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self._tick()
            except Exception:
                wait = self.poll_interval
            if wait is None or wait > 0:
                self._wake.wait(wait)
                self._wake.clear()

    def _tick(self) -> float | None:
        with self._lock:
            # Busy from before the state hands events over, so idle() never sees a gap.
            self._busy = True
        try:
            return self._tick_busy()
        finally:
            with self._lock:
                self._busy = False

    def _tick_busy(self) -> float | None:
        events = self.state.collect_webhook_events()
        with self._lock:
            for ev in events:
                self._enqueue(ev)
            for run_id in [r for r, held in self._held.items() if held]:
                # lock order: dispatcher, then state (never reversed)
                if self.state.webhook_finished(run_id):
                    self._flush_held(run_id)
            now = time.monotonic()
            due: list[_Delivery] = []
            while self._queue and self._queue[0].due <= now:
                due.append(heapq.heappop(self._queue))
        for delivery in due:
            if self._stop.is_set():
                break
            self._send(delivery)
        with self._lock:
            if due:
                return 0.0
            wait = self._queue[0].due - time.monotonic() if self._queue else None
        if self.state.has_pending_webhooks():
            wait = self.poll_interval if wait is None else min(wait, self.poll_interval)
        return None if wait is None else max(wait, 0.001)

    def _push(self, delivery: _Delivery) -> None:
        heapq.heappush(self._queue, delivery)

    def _enqueue(self, ev: WebhookEvent) -> None:
        msg_id = common.new_message_id()  # one id for every retry and duplicate of this event
        if not self.enabled:
            self._log.append(self._entry(msg_id, ev, 1, None, "webhooks disabled", lost=True))
            return
        if self.faults.take("lose", ev.event):
            self._log.append(self._entry(msg_id, ev, 1, None, "lost by fault switch", lost=True))
            return
        copies = 2 if self.faults.take("duplicate", ev.event) else 1
        now = time.monotonic()
        if ev.event != "completed" and (
            ev.run_id in self._reordering or self.faults.take("reorder", ev.event)
        ):
            self._reordering.add(ev.run_id)
            for _ in range(copies):
                held = _Delivery(now, next(self._seq), msg_id, ev)
                self._held.setdefault(ev.run_id, []).append(held)
            return
        for _ in range(copies):
            self._push(_Delivery(now, next(self._seq), msg_id, ev))

    def _flush_held(self, run_id: str) -> None:
        now = time.monotonic()
        for held in self._held.pop(run_id, []):
            # Fresh sequence numbers put them behind the final event already queued.
            self._push(_Delivery(now, next(self._seq), held.msg_id, held.event))
        self._reordering.discard(run_id)

    def _entry(
        self,
        msg_id: str,
        ev: WebhookEvent,
        attempt: int,
        status: int | None,
        error: str | None,
        *,
        lost: bool = False,
    ) -> dict[str, Any]:
        return {
            "webhook_id": msg_id,
            "training_id": ev.run_id if ev.kind == "training" else None,
            "prediction_id": ev.run_id if ev.kind == "prediction" else None,
            "event": ev.event,
            "url": ev.url,
            "attempt": attempt,
            "status_code": status,
            "error": error,
            "lost": lost,
            "at": time.time(),
        }

    def _send(self, delivery: _Delivery) -> None:
        ev = delivery.event
        status, error = self._post(delivery.msg_id, ev)
        ok = status is not None and 200 <= status < 300
        with self._lock:
            self._log.append(self._entry(delivery.msg_id, ev, delivery.attempt, status, error))
            # Only the final webhook is retried, on any failure or non-2xx (section 5).
            if not ok and ev.event == "completed" and delivery.attempt <= len(self.retry_delays):
                delay = self.retry_delays[delivery.attempt - 1]
                retry = _Delivery(
                    time.monotonic() + delay,
                    next(self._seq),
                    delivery.msg_id,
                    ev,
                    delivery.attempt + 1,
                )
                self._push(retry)

    def _post(self, msg_id: str, ev: WebhookEvent) -> tuple[int | None, str | None]:
        parts = urlsplit(ev.url)
        host = parts.hostname or ""
        if host not in LOOPBACK_HOSTS and not self.allow_remote:
            return None, "refused: the emulator only delivers to loopback hosts"
        timestamp = str(int(time.time()))  # wall time: receivers check it against their clock
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "replicate-emulator-webhook/1.0",
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": sign_webhook(self.secret(), msg_id, timestamp, ev.body),
        }
        conn_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = conn_type(host, parts.port, timeout=self.timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            # Redirects are not followed, like the real sender.
            conn.request("POST", target, body=ev.body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status, None
        except OSError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
