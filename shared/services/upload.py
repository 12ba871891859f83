"""upload_training_photos, multipart: check and store the photos, then create the job (pending)."""

from __future__ import annotations

import uuid

from shared.domain.caller import Caller
from shared.domain.job import PROGRESS_UPLOADED, Job, JobStatus
from shared.plumbing.multipart import Form
from shared.services.common import remove_quietly
from shared.services.deps import Deps
from shared.services.intake import (
    check_photo_count,
    new_job_row,
    normalise_all,
    photo_checksums,
    store_photos,
)
from shared.services.versions import VersionPlan, drop_twin_if_unused, open_twin, plan_version


def upload_multipart(caller: Caller, form: Form, deps: Deps) -> Job:
    """A new twin's first version, or with `twinId` the twin's next one. Every photo is checked
    and normalised before anything is stored: a refused upload leaves no row and no object."""
    plan = plan_version(caller, form.field, deps)
    files = form.files("photos", "photos[]")
    check_photo_count(len(files), deps.settings)
    jpegs = normalise_all([(f.filename or "", bytes(f.data)) for f in files], deps.settings)
    return create_job_with_photos(caller, plan, jpegs, deps)


def create_job_with_photos(
    caller: Caller, plan: VersionPlan, jpegs: list[bytes], deps: Deps
) -> Job:
    """Store checked photos at `{user}/{job}/NN.jpg`, then the job (pending, 20 %) as the next
    version of the plan's twin (made now if new); a failure on the way removes what was made,
    the row too: an insert whose answer was lost may have landed, and a row left pending
    without its photos would hold the twin's one place on the way (409 `twin_busy`)."""
    twin, made = open_twin(caller, plan, deps)
    job_id = uuid.uuid4()
    paths: list[str] = []
    try:
        paths = store_photos(deps.photos, caller.user_id, job_id, jpegs)
        row = new_job_row(job_id, twin, JobStatus.PENDING, paths)
        return deps.jobs.insert(
            {**row, "progress": PROGRESS_UPLOADED, "photo_checksums": photo_checksums(jpegs)}
        )
    except Exception as failure:
        # The id is ours alone until we answer: nobody else can have started this job.
        try:
            deps.jobs.delete(job_id)
        except Exception:
            # The row may stand, and we cannot tell: keep its photos, so that it is a whole
            # version the owner sees on the twin and can start (a retry answers twin_busy), never
            # a row whose start fails for photos removed under it. Unstarted, it expires.
            raise failure from None
        remove_quietly(deps.photos, paths)
        if made:
            drop_twin_if_unused(twin.id, deps)
        raise
