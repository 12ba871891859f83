"""Notifiers (the `Notifier` port): a log line by default; with a sender configured, an e-mail
through Amazon SES to the address Supabase Auth holds for the person."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from aws_lambda_powertools import Logger

from shared.domain.notice import CompletionNotice
from shared.errors import UpstreamError
from shared.plumbing.retry import call_with_retry, httpx_errors
from shared.plumbing.settings import Settings
from shared.ports import NoticeUndeliverable, Notifier

if TYPE_CHECKING:
    import httpx

logger = Logger(child=True)


# SES answers after which another try cannot succeed.
SES_PERMANENT_ERRORS = frozenset(
    {"MessageRejected", "MailFromDomainNotVerifiedException", "InvalidParameterValue"}
)


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
