"""upload_training_photos, multipart: check and store the photos, then create the job (pending)."""

from __future__ import annotations

import uuid
from typing import Any

from shared.domain.caller import Caller
from shared.domain.job import PROGRESS_UPLOADED, Job, JobStatus, validate_furrsona_name
from shared.plumbing.multipart import Form
from shared.services.common import remove_quietly
from shared.services.deps import Deps
from shared.services.intake import (
    check_photo_count,
    new_job_row,
    normalise_all,
    parse_customization,
    store_photos,
)


def upload_multipart(caller: Caller, form: Form, deps: Deps) -> Job:
    """Every photo is checked and normalised before anything is stored: a refused upload
    leaves no row and no object."""
    name = validate_furrsona_name(form.field("fursonaName"))
    customization = parse_customization(form.field("customizationData"))
    files = form.files("photos", "photos[]")
    check_photo_count(len(files), deps.settings)
    jpegs = normalise_all([(f.filename or "", bytes(f.data)) for f in files], deps.settings)
    return create_job_with_photos(caller, name, customization, jpegs, deps)


def create_job_with_photos(
    caller: Caller, name: str, customization: dict[str, Any], jpegs: list[bytes], deps: Deps
) -> Job:
    """Store checked photos at `{user}/{job}/NN.jpg`, then the job (pending, 20 %); a failure on
    the way removes what was stored."""
    job_id = uuid.uuid4()
    paths = store_photos(deps.photos, caller.user_id, job_id, jpegs)
    row = new_job_row(job_id, caller, name, customization, JobStatus.PENDING, paths)
    try:
        return deps.jobs.insert({**row, "progress": PROGRESS_UPLOADED})
    except Exception:
        remove_quietly(deps.photos, paths)
        raise
