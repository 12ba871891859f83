"""The completion notice: "your twin is ready" (or "could not be trained"), sent once per job.

Whoever sees a training end first (the webhook, a status call, the sweep) tries to send it; a
compare-and-set on `notified_at is null` decides who does, so two observers never both send. A
send that fails for a reason that may pass is given back (`notified_at` reset) and the sweep's
`notices` task tries again; one that can never succeed (no address, a rejected message) is not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.errors import UpstreamError
from shared.jobs import JobStore
from shared.models import Job, JobStatus
from shared.retry import NO_DEADLINE, Deadline, call_with_retry, httpx_errors
from shared.settings import Settings

if TYPE_CHECKING:
    import httpx

logger = Logger(child=True)

# How far back the sweep looks for notices still to send; older ones are no longer news.
NOTICE_RETRY_WINDOW = timedelta(hours=24)
NOTICE_BATCH = 200
# SES answers after which another try cannot succeed.
SES_PERMANENT_ERRORS = frozenset(
    {"MessageRejected", "MailFromDomainNotVerifiedException", "InvalidParameterValue"}
)


class NoticeUndeliverable(Exception):
    """The notice can never be delivered (no address, rejected): do not try again."""


@dataclass(frozen=True)
class CompletionNotice:
    job_id: UUID
    user_id: UUID
    furrsona_name: str
    status: JobStatus
    model_version: str | None
    error_message: str | None

    @classmethod
    def of(cls, job: Job) -> CompletionNotice:
        return cls(
            job_id=job.id,
            user_id=job.user_id,
            furrsona_name=job.furrsona_name,
            status=job.status,
            model_version=job.replicate_model_version,
            error_message=job.error_message,
        )

    @property
    def subject(self) -> str:
        if self.status is JobStatus.COMPLETED:
            return f"Your Flurrty Twin {self.furrsona_name} is ready"
        return f"Your Flurrty Twin {self.furrsona_name} could not be trained"

    @property
    def text(self) -> str:
        if self.status is JobStatus.COMPLETED:
            return (
                f"Good news: your Flurrty Twin {self.furrsona_name} has finished training and is "
                "ready. Open flurrty.me to create pictures of your twin.\n"
            )
        reason = self.error_message or "The training failed."
        return (
            f"We could not train your Flurrty Twin {self.furrsona_name}.\n\n{reason}\n\n"
            "You can start a new training at flurrty.me.\n"
        )


class Notifier(Protocol):
    def send(self, notice: CompletionNotice) -> None:
        """Deliver the notice; NoticeUndeliverable when retrying cannot help."""
        ...


class LogNotifier:
    """The default: the notice is only a log line (no e-mail address is read or logged)."""

    def send(self, notice: CompletionNotice) -> None:
        logger.info(
            "completion notice",
            extra={
                "job_id": str(notice.job_id),
                "user_id": str(notice.user_id),
                "status": notice.status.value,
            },
        )


class UserDirectory(Protocol):
    def email_of(self, user_id: UUID) -> str | None: ...


class SupabaseUserDirectory:
    """E-mail addresses from Supabase Auth's admin API (`auth.users` is not exposed to PostgREST)."""

    def __init__(self, http: httpx.Client, supabase_url: str):
        self._http = http  # carries the service role key as apikey and bearer
        self._url = f"{supabase_url}/auth/v1/admin/users"

    def email_of(self, user_id: UUID) -> str | None:
        def get() -> httpx.Response:
            response = self._http.get(f"{self._url}/{user_id}")
            if response.status_code != 404:
                response.raise_for_status()
            return response

        try:
            response = call_with_retry(get)
        except (*httpx_errors("HTTPError"), OSError) as exc:
            raise UpstreamError("Supabase Auth is not available right now.") from exc
        if response.status_code == 404:
            return None
        email = response.json().get("email")
        return str(email) if email else None


class SesEmailNotifier:
    """The notice as a plain-text e-mail through Amazon SES (`SendEmail`)."""

    def __init__(self, ses: Any, sender: str, users: UserDirectory):
        self._ses = ses  # a boto3 SES client
        self._sender = sender
        self._users = users

    def send(self, notice: CompletionNotice) -> None:
        from botocore.exceptions import ClientError

        recipient = self._users.email_of(notice.user_id)
        if recipient is None:
            raise NoticeUndeliverable("the user has no e-mail address")
        try:
            self._ses.send_email(
                Source=self._sender,
                Destination={"ToAddresses": [recipient]},
                Message={
                    "Subject": {"Data": notice.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": notice.text, "Charset": "UTF-8"}},
                },
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in SES_PERMANENT_ERRORS:
                raise NoticeUndeliverable(f"SES refused the message: {code}") from exc
            raise


def build_notifier(settings: Settings, auth_http: Callable[[], httpx.Client]) -> Notifier:
    """SES when a sender is configured, else the log-only notifier (which needs no clients)."""
    if not settings.notification_sender:
        return LogNotifier()
    import boto3  # provided by the Lambda runtime; only loaded when e-mail is on

    users = SupabaseUserDirectory(auth_http(), settings.supabase_url)
    return SesEmailNotifier(boto3.client("ses"), settings.notification_sender, users)


def notify_once(job: Job, jobs: JobStore, notifier: Notifier) -> bool:
    """Send the notice of a finished training unless it was sent (or is being sent) already.

    Never raises: a notice must not fail the status answer or the webhook that triggered it.
    """
    if (
        not job.status.is_final
        or job.notified_at is not None
        or not job.replicate_training_id
        or job.deletion_requested_at is not None  # never mail about a job being deleted
    ):
        return False
    log = {"job_id": str(job.id)}
    claimed_at = datetime.now(UTC)
    try:
        if not jobs.compare_and_set(job.id, "notified_at", None, claimed_at):
            return False  # another observer sends it
        notifier.send(CompletionNotice.of(job))
    except NoticeUndeliverable as exc:
        logger.warning("completion notice undeliverable", extra={**log, "reason": str(exc)})
        return False
    except Exception:
        logger.warning(
            "completion notice failed; the sweep will try again", extra=log, exc_info=True
        )
        try:
            jobs.compare_and_set(job.id, "notified_at", claimed_at, None)
        except Exception:
            logger.exception("could not give the notice back for a retry", extra=log)
        return False
    return True


def send_pending_notices(
    jobs: JobStore, notifier: Notifier, deadline: Deadline = NO_DEADLINE
) -> dict[str, int]:
    """The sweep's retry for notices whose sending failed and was given back."""
    pending = jobs.list_unnotified(datetime.now(UTC) - NOTICE_RETRY_WINDOW, NOTICE_BATCH)
    sent = 0
    for job in pending:
        if deadline.expired():
            break  # the rest wait for the next sweep
        sent += notify_once(job, jobs, notifier)
    return {"pending": len(pending), "sent": sent}
