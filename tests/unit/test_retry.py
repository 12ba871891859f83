import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from shared.errors import UpstreamError
from shared.plumbing.deadline import Deadline
from shared.plumbing.retry import RetryPolicy, call_with_retry, was_refused


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


def test_retry_after_as_an_http_date_is_honoured_but_capped():
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    late = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    sleeps: list[float] = []
    attempts = iter([HttpFailure(503, soon), HttpFailure(429, late)])

    def throttled():
        exc = next(attempts, None)
        if exc:
            raise exc
        return 1

    call_with_retry(throttled, policy=RetryPolicy(max_retry_after=10), sleep=sleeps.append)
    assert 2 <= sleeps[0] <= 4 and sleeps[1] == 10


def test_backoff_is_exponential_with_full_jitter_and_capped():
    random.seed(5)
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=8, base_delay=0.5, max_delay=3.0)
    with pytest.raises(HttpFailure):
        call_with_retry(
            lambda: (_ for _ in ()).throw(HttpFailure(502)), policy=policy, sleep=sleeps.append
        )
    assert len(sleeps) == 7
    for n, slept in enumerate(sleeps):
        assert 0 <= slept <= min(3.0, 0.5 * 2**n)
    assert len(set(sleeps)) == 7  # jittered, not a fixed schedule


def test_retries_never_sleep_past_the_deadline_in_total():
    clock = [0.0]

    class FakeDeadline(Deadline):
        def remaining(self) -> float:
            return 3.0 - clock[0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    with pytest.raises(HttpFailure):
        call_with_retry(
            lambda: (_ for _ in ()).throw(HttpFailure(429, "1")),
            deadline=FakeDeadline(None),
            policy=RetryPolicy(attempts=100),
            sleep=sleep,
        )
    assert 2.0 <= clock[0] < 3.0


@pytest.mark.parametrize(
    ("failure", "refused"),
    [
        (HttpFailure(429), True),
        (HttpFailure(503), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ConnectTimeout("no route"), True),
        (HttpFailure(500), False),
        (HttpFailure(502), False),
        (HttpFailure(504), False),
        (httpx.ReadTimeout("no answer"), False),
        (httpx.RemoteProtocolError("hung up"), False),
        (UpstreamError("a nested call gave up"), False),
    ],
)
def test_only_a_refusal_proves_a_post_did_not_happen(failure, refused):
    assert was_refused(failure) is refused


def test_our_own_errors_are_not_retried_as_if_upstream_sent_them():
    calls = []

    def nested():
        calls.append(1)
        raise UpstreamError("Replicate did not answer while looking for the training.")

    with pytest.raises(UpstreamError):
        call_with_retry(nested, sleep=lambda _: None)
    assert len(calls) == 1
