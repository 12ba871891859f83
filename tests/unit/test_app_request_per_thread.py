"""The Function URL app keeps the request it resolves per thread: the local stack runs handlers in
threads, and Powertools alone keeps it on a class shared by every request in the process."""

from __future__ import annotations

import json
import threading
from typing import Any

from devstack.function_urls import build_event
from shared.api.app import make_app
from tests.unit.helpers import make_settings


def test_concurrent_requests_each_read_their_own_event() -> None:
    app = make_app(make_settings)
    both_inside = threading.Barrier(2, timeout=10)

    @app.route(rule="/echo", method="POST")
    def echo() -> dict[str, Any]:
        mine = app.current_event.json_body["n"]
        both_inside.wait()  # the other request has been resolved meanwhile
        return {"n": app.current_event.json_body["n"], "before": mine}

    answers: dict[int, Any] = {}

    def call(n: int) -> None:
        body = json.dumps({"n": n}).encode()
        event = build_event("POST", "/echo", [("content-type", "application/json")], body, "x")
        answers[n] = json.loads(app.resolve(event, None)["body"])

    threads = [threading.Thread(target=call, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {1: {"n": 1, "before": 1}, 2: {"n": 2, "before": 2}}
