"""The completion notice: SES (through botocore's Stubber, no network), the e-mail look-up in
Supabase Auth, and the exactly-once claim on `notified_at`."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from shared.adapters.notifiers import (
    LogNotifier,
    SesEmailNotifier,
    SupabaseUserDirectory,
    build_notifier,
)
from shared.domain.job import Job, JobStatus
from shared.domain.notice import CompletionNotice
from shared.errors import UpstreamError
from shared.ports import NoticeUndeliverable, Notifier
from shared.services.deps import Deps
from shared.services.notices import NoticeReport, notify_once, send_pending_notices
from tests.fakes import (
    FakePredictor,
    FakeTrainer,
    InMemoryJobStore,
    InMemoryPhotoStore,
    InMemoryPreviewStore,
    InMemoryTrainingQueue,
    InMemoryTwinStore,
)
from tests.unit.helpers import make_settings

SENDER = "Flurrty <twins@flurrty.test>"
VERSION = "flurrty/flurrty-twins:" + "d" * 64


class Directory:
    def __init__(self, emails: dict[UUID, str]):
        self.emails = emails

    def email_of(self, user_id: UUID) -> str | None:
        return self.emails.get(user_id)


class Recorder:
    """A notifier that records what it sends, optionally slowly or failing first."""

    def __init__(self, *, delay: float = 0.0, fail_first: Exception | None = None):
        self.sent: list[CompletionNotice] = []
        self.delay = delay
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def send(self, notice: CompletionNotice) -> None:
        time.sleep(self.delay)
        if self.fail_first is not None:
            failure, self.fail_first = self.fail_first, None
            raise failure
        with self.lock:
            self.sent.append(notice)


def ses_client():
    # Explicit keys: no credential look-up, and the Stubber answers before anything is sent.
    return boto3.client(
        "ses",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def finished_job(
    store: InMemoryJobStore, status: JobStatus = JobStatus.COMPLETED, **row: object
) -> Job:
    job = store.insert(
        {
            "id": uuid.uuid4(),
            "user_id": uuid.uuid4(),
            "furrsona_name": "Ember",
            "status": "pending",
            "progress": 20,
        }
    )
    store.update(job.id, {"status": JobStatus.QUEUED, "queued_at": datetime.now(UTC)})
    store.update(job.id, {"status": JobStatus.TRAINING, "replicate_training_id": "t-" + job.id.hex})
    final: dict = {"status": status}
    if status is JobStatus.COMPLETED:
        final.update(progress=100, replicate_model_version=VERSION)
    else:
        final.update(error_message="The training failed on Replicate: CUDA out of memory")
    final.update(row)
    done = store.update(job.id, final)
    assert done is not None
    return done


def current(store: InMemoryJobStore, job: Job) -> Job:
    found = store.get(job.id)
    assert found is not None
    return found


def notice(status: JobStatus = JobStatus.COMPLETED, **fields: object) -> CompletionNotice:
    values: dict = dict(
        job_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        furrsona_name="Ember",
        status=status,
        model_version=VERSION if status is JobStatus.COMPLETED else None,
        error_message=None if status is JobStatus.COMPLETED else "The training was canceled.",
    )
    values.update(fields)
    return CompletionNotice(**values)


# --- SES -----------------------------------------------------------------------------------------


def test_ses_sends_one_plain_text_mail_to_the_owner():
    ready = notice()
    ses = ses_client()
    with Stubber(ses) as stub:
        stub.add_response(
            "send_email",
            {"MessageId": "m-1"},
            expected_params={
                "Source": SENDER,
                "Destination": {"ToAddresses": ["fox@flurrty.test"]},
                "Message": {
                    "Subject": {"Data": "Your Flurrty Twin Ember is ready", "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": ready.text, "Charset": "UTF-8"}},
                },
            },
        )
        SesEmailNotifier(ses, SENDER, Directory({ready.user_id: "fox@flurrty.test"})).send(ready)
        stub.assert_no_pending_responses()


def test_a_failure_notice_carries_the_readable_reason():
    failed = notice(JobStatus.FAILED, error_message="The training was canceled on Replicate.")
    assert failed.subject == "Your Flurrty Twin Ember could not be trained"
    assert "The training was canceled on Replicate." in failed.text


def test_no_address_or_a_rejected_mail_is_undeliverable_and_a_throttle_is_not():
    ready = notice()
    ses = ses_client()
    with Stubber(ses) as stub:
        with pytest.raises(NoticeUndeliverable):  # nobody to write to: SES is not called
            SesEmailNotifier(ses, SENDER, Directory({})).send(ready)
        notifier = SesEmailNotifier(ses, SENDER, Directory({ready.user_id: "fox@flurrty.test"}))
        stub.add_client_error(
            "send_email", "MessageRejected", "Email address is not verified.", 400
        )
        with pytest.raises(NoticeUndeliverable, match="MessageRejected"):
            notifier.send(ready)
        stub.add_client_error("send_email", "Throttling", "Maximum sending rate exceeded.", 400)
        with pytest.raises(ClientError):
            notifier.send(ready)
        stub.assert_no_pending_responses()


def test_the_notifier_is_log_only_unless_a_sender_is_configured(monkeypatch):
    assert isinstance(build_notifier(make_settings(), httpx.Client), LogNotifier)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    ses = build_notifier(make_settings(notification_sender=SENDER), httpx.Client)
    assert isinstance(ses, SesEmailNotifier)


# --- the address, from Supabase Auth's admin API -------------------------------------------------


def test_the_address_comes_from_the_auth_admin_api_with_the_service_key():
    user_id, missing = uuid.uuid4(), uuid.uuid4()
    seen: list[httpx.Request] = []
    answers = iter([httpx.Response(503), httpx.Response(200, json={"email": "fox@flurrty.test"})])

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith(str(missing)):
            return httpx.Response(404, json={"code": 404, "error_code": "user_not_found"})
        return next(answers)

    http = httpx.Client(
        transport=httpx.MockTransport(handle),
        headers={"apikey": "service", "Authorization": "Bearer service"},
    )
    users = SupabaseUserDirectory(http, "http://supabase.test")
    assert users.email_of(user_id) == "fox@flurrty.test"  # after one retried 503
    assert users.email_of(missing) is None
    assert seen[0].url == f"http://supabase.test/auth/v1/admin/users/{user_id}"
    assert seen[0].headers["authorization"] == "Bearer service"


def test_an_auth_error_is_an_upstream_error_not_a_crash():
    http = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(401)))
    with pytest.raises(UpstreamError):
        SupabaseUserDirectory(http, "http://supabase.test").email_of(uuid.uuid4())


def deps_of(store: InMemoryJobStore, notifier: Notifier) -> Deps:
    twins = store.twins or InMemoryTwinStore(store)
    return Deps(
        make_settings(preview_count=0),  # the notice with previews: tests/unit/test_previews.py
        store,
        twins,
        InMemoryPhotoStore(),
        FakeTrainer(),
        notifier,
        InMemoryTrainingQueue(store),
        InMemoryPreviewStore(store),
        FakePredictor(),
    )


# --- exactly once --------------------------------------------------------------------------------


def test_concurrent_observers_send_one_notice():
    store = InMemoryJobStore()
    job = finished_job(store)
    notifier = Recorder(delay=0.02)
    barrier = threading.Barrier(10)

    def observe() -> None:
        barrier.wait()
        notify_once(
            job, deps_of(store, notifier)
        )  # each holds the row as read: notified_at still null

    threads = [threading.Thread(target=observe) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [n.job_id for n in notifier.sent] == [job.id]
    assert current(store, job).notified_at is not None
    assert notify_once(current(store, job), deps_of(store, notifier)) is False


def test_a_transient_failure_is_given_back_and_the_sweep_sends_it():
    store = InMemoryJobStore()
    job = finished_job(store, JobStatus.FAILED)
    notifier = Recorder(fail_first=RuntimeError("SES unreachable"))
    assert notify_once(job, deps_of(store, notifier)) is False
    assert current(store, job).notified_at is None
    assert send_pending_notices(deps_of(store, notifier)) == NoticeReport(pending=1, sent=1)
    assert [n.status for n in notifier.sent] == [JobStatus.FAILED]
    assert send_pending_notices(deps_of(store, notifier)) == NoticeReport(pending=0, sent=0)


def test_an_undeliverable_notice_is_not_retried():
    store = InMemoryJobStore()
    job = finished_job(store)
    notifier = Recorder(fail_first=NoticeUndeliverable("no address"))
    assert notify_once(job, deps_of(store, notifier)) is False
    assert current(store, job).notified_at is not None
    assert send_pending_notices(deps_of(store, notifier)) == NoticeReport(pending=0, sent=0)


def test_only_finished_trainings_get_a_notice_and_old_ones_are_not_retried():
    store = InMemoryJobStore()
    notifier = Recorder()
    running = store.insert(
        {
            "id": uuid.uuid4(),
            "user_id": uuid.uuid4(),
            "furrsona_name": "E",
            "status": "pending",
            "progress": 20,
        }
    )
    assert notify_once(running, deps_of(store, notifier)) is False
    finished_job(store, completed_at=datetime.now(UTC) - timedelta(days=2))
    assert send_pending_notices(deps_of(store, notifier)) == NoticeReport(pending=0, sent=0)
    assert notifier.sent == []
