"""The phase of a job: what is happening to it now, in the words a person reads, never going back.

The row keeps it (`phase`, with a trigger that follows the status and refuses to go back, as it
does for progress); within a training the trainer's logs decide it (`shared.domain.trainer_logs`).
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    UPLOADING = "uploading"  # photos on their way, or uploaded and about to start
    WAITING = "waiting"  # in our own queue (the `queued` status batch admission adds)
    PREPARING_GPU = "preparing_gpu"  # Replicate boots a worker and loads the base model
    READING_PHOTOS = "reading_photos"  # unzip, captions, latent caching
    TRAINING = "training"  # the trainer's steps
    SAVING = "saving"  # after the last step: weights written, the new version built
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (Phase.DONE, Phase.FAILED, Phase.CANCELED)


# Phases a training job moves through, in order (the trigger allows only forward moves).
TRAINING_PHASES = (Phase.PREPARING_GPU, Phase.READING_PHOTOS, Phase.TRAINING, Phase.SAVING)


def later(current: Phase, observed: Phase) -> Phase:
    """The further of a training's two phases; anything else counts as not begun."""
    if current not in TRAINING_PHASES:
        return observed
    if observed not in TRAINING_PHASES:
        return current
    return max(current, observed, key=TRAINING_PHASES.index)


_TEXTS = {
    Phase.UPLOADING: "Uploading your photos",
    Phase.WAITING: "Waiting in line",
    Phase.PREPARING_GPU: "Preparing the GPU",
    Phase.READING_PHOTOS: "Reading your photos",
    Phase.TRAINING: "Training",
    Phase.SAVING: "Saving your model",
    Phase.DONE: "Done",
    Phase.FAILED: "Failed",
    Phase.CANCELED: "Canceled",
}


def phase_text(phase: Phase, *, uploaded: bool, step: int | None, total: int | None) -> str:
    """The phase as a short sentence: `Training, step 450 of 1000`."""
    if phase is Phase.UPLOADING and uploaded:
        return "Photos uploaded, starting soon"
    if phase is Phase.TRAINING and step is not None and total:
        return f"Training, step {step} of {total}"
    return _TEXTS[phase]
