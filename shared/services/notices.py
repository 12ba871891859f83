"""The completion notice: "your twin is ready" (or "could not be trained"), sent once per job.

Whoever sees a training end first (the webhook, a status call, the sweep) tries to send it; a
compare-and-set on `notified_at is null` decides who does, so two observers never both send. A
send that fails for a reason that may pass is given back (`notified_at` reset) and the sweep's
`notices` task tries again; one that can never succeed (no address, a rejected message) is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger

from shared.domain.job import Job, JobStatus
from shared.domain.notice import CompletionNotice
from shared.domain.previews import PreviewKind, PreviewStatus
from shared.plumbing.deadline import NO_DEADLINE, Deadline
from shared.ports import NoticeUndeliverable
from shared.services.deps import Deps

logger = Logger(child=True)


# How far back the sweep looks for notices still to send; older ones are no longer news.
NOTICE_RETRY_WINDOW = timedelta(hours=24)


NOTICE_BATCH = 200


def notify_once(job: Job, deps: Deps) -> bool:
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
    links = _preview_links(job, deps, claimed_at)
    if links is None:
        return False  # the previews are still coming: the last one (or the sweep) sends it
    try:
        if not deps.jobs.compare_and_set(job.id, "notified_at", None, claimed_at):
            return False  # another observer sends it
        # The notifier is built here, at the first notice (bootstrap builds adapters at first use).
        deps.notifier.send(CompletionNotice.of(job, preview_urls=links))
    except NoticeUndeliverable as exc:
        logger.warning("completion notice undeliverable", extra={**log, "reason": str(exc)})
        return False
    except Exception:
        logger.warning(
            "completion notice failed; the sweep will try again", extra=log, exc_info=True
        )
        try:
            deps.jobs.compare_and_set(job.id, "notified_at", claimed_at, None)
        except Exception:
            logger.exception("could not give the notice back for a retry", extra=log)
        return False
    return True


def _preview_links(job: Job, deps: Deps, now: datetime) -> tuple[str, ...] | None:
    """Signed links to a completed version's previews for its notice; None while they are
    still coming and the notice may still wait for them (`preview_notice_wait_seconds`)."""
    s = deps.settings
    if job.status is not JobStatus.COMPLETED or s.preview_count == 0:
        return ()
    waited = now - (job.completed_at or now)
    may_wait = waited < timedelta(seconds=s.preview_notice_wait_seconds)
    try:
        pictures = [p for p in deps.previews.for_jobs([job.id]) if p.kind is PreviewKind.COMPLETION]
        # A set not made yet (its maker died first) is made by the sweep's previews task.
        coming = job.previews_requested_at is None or any(
            p.status is PreviewStatus.PENDING for p in pictures
        )
        if coming and may_wait:
            return None
        paths = [p.storage_path for p in pictures if p.storage_path]
        if not paths:
            return ()
        urls = deps.photos.signed_urls(paths, s.preview_notice_url_seconds)
        return tuple(urls[path] for path in paths if path in urls)
    except Exception:
        logger.warning(
            "previews left out of the notice", extra={"job_id": str(job.id)}, exc_info=True
        )
        return ()


@dataclass
class NoticeReport:
    pending: int = 0  # finished trainings of the last 24 h whose notice was not sent yet
    sent: int = 0


def send_pending_notices(deps: Deps, deadline: Deadline = NO_DEADLINE) -> NoticeReport:
    """The sweep's retry for notices whose sending failed and was given back."""
    pending = deps.jobs.list_unnotified(datetime.now(UTC) - NOTICE_RETRY_WINDOW, NOTICE_BATCH)
    report = NoticeReport(pending=len(pending))
    for job in pending:
        if deadline.expired():
            break  # the rest wait for the next sweep
        report.sent += notify_once(job, deps)
    return report
