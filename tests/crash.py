"""Crash injection: a function dying between two steps (killed, out of memory, timed out).

`Boundaries` wraps the components of one invocation (the job and twin stores, the training
queue, the photo store, the trainer, the preview store and the predictor); every call through them is a step boundary before it (the call never happens) and
after it (it happened, but nobody learnt the answer). At boundary number `target` it raises
`Crash`, which no `except Exception` in the code under test can swallow.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from shared.services.deps import Deps


class Crash(BaseException):
    """The function died here: nothing after this runs."""


class Boundaries:
    def __init__(self, target: int | None, on_death: Callable[[str], None] | None = None):
        self.target = target  # None: count the boundaries, never die
        self.on_death = on_death
        self.passed = 0
        self._lock = threading.Lock()  # the photos are fetched from several threads

    def cross(self, point: str) -> None:
        with self._lock:
            here = self.passed
            self.passed += 1
        if here == self.target:
            if self.on_death is not None:
                self.on_death(point)
            raise Crash(f"died at boundary {here}: {point}")

    def wrap(self, component: Any) -> Any:
        boundaries = self

        class Proxy:
            def __getattr__(self, name: str) -> Any:
                attr = getattr(component, name)
                if not callable(attr):
                    return attr

                def call(*args: Any, **kwargs: Any) -> Any:
                    boundaries.cross(f"before {name}")
                    result = attr(*args, **kwargs)
                    boundaries.cross(f"after {name}")
                    return result

                return call

        return Proxy()

    def deps(self, deps: Deps) -> Deps:
        """`deps` whose stores and trainer all cross these boundaries."""
        return dataclasses.replace(
            deps,
            jobs=self.wrap(deps.jobs),
            twins=self.wrap(deps.twins),
            queue=self.wrap(deps.queue),
            photos=self.wrap(deps.photos),
            trainer=self.wrap(deps.trainer),
            previews=self.wrap(deps.previews),
            predictor=self.wrap(deps.predictor),
        )
