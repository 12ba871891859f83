import time

from shared.plumbing import webhooks
from tests.unit.helpers import raises_status

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = "1614265330"
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_recorded_test_vector():
    # reference/replicate.md §5 (from replicate-python's own tests)
    assert webhooks.sign(SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": VECTOR_TS,
        "webhook-signature": VECTOR_SIG,
    }
    assert webhooks.verify(SECRET, headers, VECTOR_BODY, now=float(VECTOR_TS)) == VECTOR_ID


def _headers(body: bytes, ts: int | None = None, sig: str | None = None) -> dict[str, str]:
    ts = ts or int(time.time())
    return {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(ts),
        "Webhook-Signature": sig or webhooks.sign(SECRET, "msg_1", str(ts), body),
    }


def test_one_of_several_signatures_may_match():
    body = b'{"id": "t"}'
    good = _headers(body)["Webhook-Signature"]
    headers = _headers(body, sig=f"v1,AAAA {good}")
    assert webhooks.verify(SECRET, headers, body) == "msg_1"


def test_tampered_body_is_refused():
    body = b'{"id": "t"}'
    with raises_status(401):
        webhooks.verify(SECRET, _headers(body), b'{"id": "u"}')


def test_old_timestamp_is_refused():
    body = b"{}"
    with raises_status(401):
        webhooks.verify(SECRET, _headers(body, ts=int(time.time()) - 301), body)


def test_missing_headers_are_a_bad_request():
    with raises_status(400):
        webhooks.verify(SECRET, {}, b"{}")
