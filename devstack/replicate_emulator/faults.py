"""Fault injection for the API routes, plus the per-route request counters."""

from __future__ import annotations

import itertools
import random
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack.replicate_emulator import common
from devstack.replicate_emulator.common import JSON

FAULT_KINDS = ("status", "timeout", "slow", "drop")
RANDOM_FAULT_KINDS = ("429", "500", "502", "503", "504", "drop", "slow", "timeout")
DEFAULT_SLOW_SECONDS = 2.0
# Past the Python client's default 30 s read timeout.
DEFAULT_TIMEOUT_SECONDS = 35.0
DEFAULT_RETRY_AFTER = 1


@dataclass
class FaultAction:
    """What to do to one request instead of (or before) answering it normally."""

    kind: str  # "status" answers now; "slow" sleeps then answers normally; "drop" hangs up
    status: int = 0
    body: JSON | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Fault:
    id: int
    method: str | None
    path_regex: str
    kind: str
    remaining: int | None
    params: dict[str, Any]
    pattern: re.Pattern[str] = field(repr=False, default=re.compile(""))

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path_regex": self.path_regex,
            "kind": self.kind,
            "remaining": self.remaining,
            "params": self.params,
        }


def status_action(status: int, params: dict[str, Any]) -> FaultAction:
    headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
    retry_after = params.get("retry_after", DEFAULT_RETRY_AFTER if status == 429 else None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = params.get("body")
    if body is None:
        if status == 429:
            wait = float(retry_after) if retry_after is not None else 30.0
            body = common.throttled_body(wait)
        else:
            body = common.problem(status, params.get("detail") or "Injected fault")
    return FaultAction("status", status=status, body=body, headers=headers)


def _action(kind: str, params: dict[str, Any]) -> FaultAction:
    if kind == "status":
        return status_action(int(params.get("status", 503)), params)
    if kind == "slow":
        return FaultAction("slow", seconds=float(params.get("seconds", DEFAULT_SLOW_SECONDS)))
    if kind == "timeout":
        return FaultAction("slow", seconds=float(params.get("seconds", DEFAULT_TIMEOUT_SECONDS)))
    return FaultAction("drop")


class Faults:
    """Rules matched in the order added; the first live match fires and uses up one time.

    `path_regex` is searched (`re.search`) in the request path without the query string.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Fault] = []
        self._ids = itertools.count(1)
        # (p, kinds, rng, method, pattern); p == 0 means off
        self._random: tuple[float, tuple[str, ...], random.Random, str | None, re.Pattern[str]] = (
            0.0,
            (),
            random.Random(0),
            None,
            re.compile(""),
        )
        self._random_params: dict[str, Any] = {}
        self.fired: Counter[str] = Counter()

    def add(
        self,
        method: str | None,
        path_regex: str,
        kind: str,
        times: int | None = 1,
        **params: Any,
    ) -> int:
        """Inject `kind` on the next `times` matching requests (None = until cleared).

        kinds: `status` (params: status=503, retry_after, body, detail, headers),
        `timeout`/`slow` (seconds; sleep, then answer normally), `drop` (no response).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}")
        if kind == "status":
            status = int(params.get("status", 503))
            if not 400 <= status <= 599:
                raise ValueError("status faults need a 4xx or 5xx status")
        fault = Fault(
            id=next(self._ids),
            method=method.upper() if method else None,
            path_regex=path_regex,
            kind=kind,
            remaining=times,
            params=dict(params),
            pattern=re.compile(path_regex),
        )
        with self._lock:
            self._items.append(fault)
        return fault.id

    def remove(self, fault_id: int) -> None:
        with self._lock:
            self._items = [f for f in self._items if f.id != fault_id]

    def clear(self) -> None:
        """Remove every rule and switch random faults off."""
        with self._lock:
            self._items.clear()
            self._random = (0.0, (), random.Random(0), None, re.compile(""))
            self._random_params = {}

    def probability(
        self,
        p: float,
        kinds: Sequence[str | int] = ("429", "503", "drop"),
        seed: int | None = None,
        *,
        method: str | None = None,
        path_regex: str = "",
        **params: Any,
    ) -> None:
        """Fault a share `p` of matching calls, picking from `kinds` (a status such as "429",
        or "drop"/"slow"/"timeout"); `seed` makes the sequence repeatable; p=0 switches off."""
        names = tuple(str(k) for k in kinds)
        for name in names:
            if name not in RANDOM_FAULT_KINDS and not (name.isdigit() and len(name) == 3):
                raise ValueError(f"random fault kinds come from {RANDOM_FAULT_KINDS}")
        if not 0.0 <= p <= 1.0:
            raise ValueError("p must be between 0 and 1")
        with self._lock:
            self._random = (
                p,
                names,
                random.Random(seed),
                method.upper() if method else None,
                re.compile(path_regex),
            )
            self._random_params = dict(params)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            rules = [f.describe() for f in self._items]
            p, kinds, _, method, pattern = self._random
        return rules + (
            [
                {
                    "random": True,
                    "p": p,
                    "kinds": list(kinds),
                    "method": method,
                    "path_regex": pattern.pattern,
                }
            ]
            if p
            else []
        )

    def take(self, method: str, path: str) -> FaultAction | None:
        with self._lock:
            for fault in self._items:
                if fault.method not in (None, method) or not fault.pattern.search(path):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._items.remove(fault)
                self.fired[fault.kind] += 1
                return _action(fault.kind, fault.params)
            p, kinds, rng, r_method, r_pattern = self._random
            matches = p and kinds and r_method in (None, method) and r_pattern.search(path)
            if matches and rng.random() < p:
                name = rng.choice(kinds)
                self.fired[name] += 1
                if name.isdigit():
                    return status_action(int(name), self._random_params)
                return _action(name, self._random_params)
        return None
