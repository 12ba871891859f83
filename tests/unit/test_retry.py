import httpx
import pytest

from shared.retry import Deadline, RetryPolicy, call_with_retry


class HttpFailure(Exception):
    def __init__(self, status: int, retry_after: str | None = None):
        self.status = status
        headers = {"retry-after": retry_after} if retry_after else {}
        self.response = httpx.Response(status, headers=headers)


def test_transient_errors_are_retried_until_success():
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise HttpFailure(503)
        return "ok"

    assert call_with_retry(flaky, sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and len(sleeps) == 2


def test_attempts_are_bounded():
    calls = []

    def down():
        calls.append(1)
        raise httpx.ConnectError("down")

    with pytest.raises(httpx.ConnectError):
        call_with_retry(down, policy=RetryPolicy(attempts=3), sleep=lambda _: None)
    assert len(calls) == 3


def test_client_errors_are_not_retried():
    calls = []

    def bad():
        calls.append(1)
        raise HttpFailure(422)

    with pytest.raises(HttpFailure):
        call_with_retry(bad, sleep=lambda _: None)
    assert len(calls) == 1


def test_retry_after_is_honoured_but_capped():
    sleeps: list[float] = []
    attempts = iter([HttpFailure(429, "3"), HttpFailure(429, "600")])

    def throttled():
        exc = next(attempts, None)
        if exc:
            raise exc
        return 1

    call_with_retry(throttled, policy=RetryPolicy(max_retry_after=10), sleep=sleeps.append)
    assert sleeps[0] >= 3 and sleeps[1] == 10


def test_no_sleep_past_the_deadline():
    def throttled():
        raise HttpFailure(429, "5")

    sleeps: list[float] = []
    with pytest.raises(HttpFailure):
        call_with_retry(throttled, deadline=Deadline(1.0), sleep=sleeps.append)
    assert sleeps == []
