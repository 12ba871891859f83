"""Imports done ahead of the first request when the init phase runs before anyone is waiting.

Handlers import only what every request needs; each path imports its SDKs (httpx, postgrest,
storage3, PyJWT, replicate, Pillow) at first use, so an on-demand cold start pays only for the
path it serves (bench cold_start). With SnapStart or provisioned concurrency, Lambda runs init
ahead of time (SnapStart snapshots it), so there every path's modules are imported during init,
and our pydantic models, otherwise built at first use, are built there too. Only code: no
clients, connections or secrets end up in a snapshot.
"""

from __future__ import annotations

import importlib
import os

# AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand", "provisioned-concurrency" or "snap-start".
AHEAD_OF_TIME = frozenset({"provisioned-concurrency", "snap-start"})

# What every function's requests load: token checks (PyJWT) and Supabase's clients.
REQUEST_PATH = ("jwt", "httpx", "postgrest", "storage3")


def preload(*modules: str) -> bool:
    """Import `modules` now if this init runs ahead of time; True when it did."""
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") not in AHEAD_OF_TIME:
        return False
    for name in modules:
        importlib.import_module(name)
    _build_models()
    return True


def _build_models() -> None:
    """Build every deferred model of ours now (each takes a few ms when first used)."""
    from pydantic import BaseModel

    pending = list(BaseModel.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model.__module__.startswith("shared.") and not model.__pydantic_complete__:
            model.model_rebuild(force=True)
