"""What `ostris/flux-dev-lora-trainer` does with its input, and the logs it prints.

Facts from the team reference: Replicate section 6 (the trainer's `train.py`, `caption.py` and
ai-toolkit), section 2.1 (how Cog reports invalid input) and next capabilities 3.1 (the
progress bar and its postfix).
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from devstack.replicate_emulator import cog
from devstack.replicate_emulator.cog import Field

TRAINER_OWNER = "ostris"
TRAINER_NAME = "flux-dev-lora-trainer"
TRAINER_MODEL = f"{TRAINER_OWNER}/{TRAINER_NAME}"
# Version ids seen in public code (team reference, Replicate 6); the first is what
# `latest_version` reports.
TRAINER_VERSION = "4ffd32160efd92e956d39c5338a9b8fbafca58e03f791f6d8011f3e20e8ea6fa"
OLDER_TRAINER_VERSIONS = (
    "e440909d3512c31646ee2e0c7d6f6f4923224863a6a10c494606e79fb5844497",
    "b6af14222e6bd9be257cbc1ea4afda3cd0503e1133083b9d1de0364d8568e6ef",
)
COG_VERSION = "0.9.20"
JOB_NAME = "flux_train_replicate"
JOB_DIR = f"output/{JOB_NAME}"

# ai-toolkit's loader matches suffixes case-sensitively, so `.JPG` and `.heic` are skipped.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# Steps/s shown when a bar has no time to run in (a training settled at once).
ITERATIONS_PER_SECOND = 1.44
# Images assumed inside a zip we may not fetch (a non-loopback URL: no outside network).
ASSUMED_REMOTE_IMAGES = 10

ZIP_ERROR = "input_images must be a zip file"
NO_IMAGES_ERROR = (
    "input_images must be a zip file with at least one .jpg, .jpeg, .png or .webp image"
)
MISSING_IMAGES_ERROR = "input_images must be provided"

# Bounds from the trainer's `Input(ge=, le=)`.
INPUTS: dict[str, Field] = {
    "input_images": Field("uri"),
    "trigger_word": Field("str", "TOK"),
    "autocaption": Field("bool", True),
    "autocaption_prefix": Field("str"),
    "autocaption_suffix": Field("str"),
    "steps": Field("int", 1000, ge=3, le=6000),
    "learning_rate": Field("float", 4e-4),
    "batch_size": Field("int", 1),
    "resolution": Field("str", "512,768,1024"),
    "lora_rank": Field("int", 16, ge=1, le=128),
    "caption_dropout_rate": Field("float", 0.05, ge=0, le=1),
    "optimizer": Field("str", "adamw8bit"),
    "cache_latents_to_disk": Field("bool", False),
    "layers_to_optimize_regex": Field("str"),
    "gradient_checkpointing": Field("bool", False),
    "hf_repo_id": Field("str"),
    "hf_token": Field("secret"),
    "wandb_api_key": Field("secret"),
    "wandb_project": Field("str", JOB_NAME),
    "wandb_run": Field("str"),
    "wandb_entity": Field("str"),
    "wandb_sample_prompts": Field("str"),
    "wandb_sample_interval": Field("int", 100, ge=1),
    "wandb_save_interval": Field("int", 100, ge=1),
    "skip_training_and_use_pretrained_hf_lora_url": Field("str"),
}


def trainer_openapi_schema() -> dict[str, Any]:
    """A Cog-style schema with the training inputs under `components.schemas.TrainingInput`."""
    weights: dict[str, Any] = {
        "type": "object",
        "required": ["weights"],
        "properties": {"weights": {"type": "string", "format": "uri"}},
    }
    return cog.openapi_schema(
        INPUTS, input_title="TrainingInput", output_title="TrainingOutput", output=weights
    )


def validation_error(input_: Mapping[str, Any]) -> str | None:
    """The `Prediction input failed validation: ...` text Cog gives, or None if valid."""
    return cog.validation_error(INPUTS, input_)


def setting(input_: Mapping[str, Any], name: str) -> Any:
    """An input after coercion, or its default (only call once validation passed)."""
    return cog.setting(INPUTS, input_, name)


def early_trainer_error(input_: Mapping[str, Any]) -> str | None:
    """What `train()` raises before it downloads anything (validation passed)."""
    if input_.get("input_images") is None:
        return MISSING_IMAGES_ERROR
    for res in str(setting(input_, "resolution")).split(","):
        try:
            int(res)
        except ValueError:
            # train.py builds its config with `int(res)` before it starts.
            return f"invalid literal for int() with base 10: '{res}'"
    return None


# --- the zip ----------------------------------------------------------------------------


@dataclass
class ZipFacts:
    """What `train()` would find in `input_images` (or the error it raises)."""

    files: int = 0
    images: list[str] = field(default_factory=list)
    captioned: set[str] = field(default_factory=set)
    error: str | None = None

    @classmethod
    def assumed(cls, images: int) -> ZipFacts:
        """A typical zip of `images` photos, one we do not read."""
        names = [f"image_{i:02d}.jpg" for i in range(1, images + 1)]
        return cls(files=len(names), images=names)


def decode_data_uri(uri: str) -> bytes | None:
    head, sep, payload = uri.partition(",")
    if not sep or not head.startswith("data:"):
        return None
    try:
        if head.endswith(";base64"):
            return base64.b64decode(payload, validate=False)
        return unquote_to_bytes(payload)
    except (ValueError, binascii.Error):
        return None


def inspect_zip(data: bytes | None) -> ZipFacts:
    if data is None:
        return ZipFacts(error=ZIP_ERROR)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return ZipFacts(error=ZIP_ERROR)
    # train.py skips macOS metadata, then counts every other entry it extracts.
    kept = [n for n in names if not n.startswith("__MACOSX/") and not n.startswith("._")]
    files = [n for n in kept if not n.endswith("/")]
    images = sorted(n for n in files if n.rsplit("/", 1)[-1].endswith(IMAGE_SUFFIXES))
    stems = {n.rsplit(".", 1)[0] for n in files if n.endswith(".txt")}
    captioned = {n for n in images if n.rsplit(".", 1)[0] in stems}
    facts = ZipFacts(files=len(kept), images=images, captioned=captioned)
    if not images:
        facts.error = NO_IMAGES_ERROR
    return facts


# --- logs -------------------------------------------------------------------------------

# train.py's order: weights download, zip extraction, captioning, then ai-toolkit prepares the
# datasets (bare file bars, latent caching) and trains; after 100 % it saves and tars.
PHASES = ("download", "extract", "caption", "prepare", "train", "save")
# Shares of the processing time; a benchmark can set a real run's timeline instead.
DEFAULT_PHASE_SHARES: dict[str, float] = {
    "download": 0.04,
    "extract": 0.01,
    "caption": 0.05,
    "prepare": 0.05,
    "train": 0.8,
    "save": 0.05,
}
_CAPTION_MODELS = ("liuhaotian/llava-v1.5-13b", "openai/clip-vit-large-patch14-336")
_CAPTION_WORDS = (
    ("close-up", "portrait", "half-length", "candid"),
    ("smiling", "serious", "laughing", "calm"),
    ("short brown", "long dark", "curly blond", "straight black"),
    ("soft window light", "bright daylight", "warm indoor light", "overcast light"),
)


def phase_shares(overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The defaults with `overrides` applied, scaled to sum to 1."""
    shares = dict(DEFAULT_PHASE_SHARES)
    for name, value in (overrides or {}).items():
        if name not in PHASES:
            raise ValueError(f"unknown log phase {name!r}: use one of {', '.join(PHASES)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"log phase {name!r} needs a share >= 0, got {value!r}")
        shares[name] = float(value)
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("at least one log phase needs a share above 0")
    return {name: shares[name] / total for name in PHASES}


def caption_files(facts: ZipFacts, autocaption: bool) -> list[str]:
    """Caption files in input_images after captioning: given ones, plus one per image if the
    captioner ran (train.py copies `input_images/*.txt` into the output)."""
    captioned = facts.images if autocaption else sorted(facts.captioned)
    return [image.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".txt" for image in captioned]


def output_listing(facts: ZipFacts, autocaption: bool) -> list[str]:
    """What `tar -cvf trained_model.tar output/flux_train_replicate` prints, in order."""
    captions = [f"{JOB_DIR}/captions/{name}" for name in caption_files(facts, autocaption)]
    return [
        f"{JOB_DIR}/",
        f"{JOB_DIR}/config.yaml",
        f"{JOB_DIR}/lora.safetensors",
        f"{JOB_DIR}/captions/",
        *captions,
    ]


@functools.lru_cache(maxsize=16)
def _bar_heads(steps: int, rate: float, lr: float) -> tuple[str, ...]:
    """Each step's bar line up to its loss value. They are the same for every training of that
    length and pace, so a sweep over thousands of trainings builds them once."""
    heads = []
    for k in range(1, steps + 1):
        shown = rate * (1 + 0.03 * cog.noise(0, k))  # tqdm's smoothed rate wobbles a little
        line = cog.tqdm_line(JOB_NAME, k, steps, k / rate, shown, f"lr: {lr:.1e} loss: ")
        heads.append(line[:-1])  # without the closing "]"
    return tuple(heads)


def _spread(lines: list[str], rel: float) -> list[str]:
    """Lines spread evenly over a phase, the first at its start and the last at its end."""
    if rel >= 1.0 or not lines:
        return lines
    if len(lines) == 1:
        return []
    return lines[: int(rel * (len(lines) - 1) + 1e-9) + 1]


@dataclass(frozen=True)
class TrainerLogs:
    """Deterministic logs for one training, rebuilt on every read (nothing per line is kept,
    so thousands of trainings cost little memory)."""

    seed: int
    facts: ZipFacts
    input: Mapping[str, Any]
    shares: Mapping[str, float] = field(default_factory=phase_shares)

    def setting(self, name: str) -> Any:
        return setting(self.input, name)

    def _windows(self) -> dict[str, tuple[float, float]]:
        out, start = {}, 0.0
        for name in PHASES:
            out[name] = (start, start + self.shares[name])
            start += self.shares[name]
        return out

    def _download(self, duration: float) -> list[str]:
        lines = []
        if not self.setting("gradient_checkpointing"):
            if int(self.setting("batch_size")) > 1:
                lines.append("Turning gradient checkpointing on automatically for batch size > 1")
            else:
                lines.append(
                    "Turning gradient checkpointing on and quantizing base model, "
                    "GPU has less than 100 GB of memory"
                )
        # train.py prints the raw float of the elapsed time.
        lines.append(f"Downloaded base weights in {self.shares['download'] * duration!r} seconds")
        return lines

    def _caption(self, duration: float) -> list[str]:
        images = self.facts.images
        if not self.setting("autocaption") or all(i in self.facts.captioned for i in images):
            return []  # the captioner is not even loaded
        lines = []
        for i, model in enumerate(_CAPTION_MODELS):
            lines.append(f"downloading to:  {model}")
            took = self.shares["caption"] * duration * (0.3 + 0.1 * cog.noise(self.seed, i))
            lines.append(f"downloading took:  {took!r}")
        for k, image in enumerate(images):
            name = image.rsplit("/", 1)[-1]
            if image in self.facts.captioned:
                lines.append(f"{name} is already captioned")
                continue
            words = [
                w[int((cog.noise(self.seed, 100 + 4 * k + j) + 1) * 2)]
                for j, w in enumerate(_CAPTION_WORDS)
            ]
            lines.append(
                f"Caption for input_images/{name}: A {words[0]} photo of a {words[1]} person "
                f"with {words[2]} hair, {words[3]}, plain background."
            )
        return lines

    def _prepare(self) -> list[str]:
        n = len(self.facts.images)
        lines = ["Starting train job", "Running  1 process"]
        cache_desc = (
            "Caching latents to disk"
            if self.setting("cache_latents_to_disk")
            else "Caching latents"
        )
        for d, res in enumerate(str(self.setting("resolution")).split(",")):
            r = int(res)
            file_rate = 1500 + 1000 * cog.noise(self.seed, 200 + d)
            latent_rate = 6 + 2 * cog.noise(self.seed, 300 + d)
            lines += [
                "Dataset: input_images",
                "  -  Preprocessing image dimensions",
                # Bare `tqdm(file_list)` bars: parsers must not take them for training.
                cog.tqdm_line("", 0, n, 0.0),
                cog.tqdm_line("", n, n, n / file_rate),
                f"  -  Found {n} images",
                "Bucket sizes for input_images:",
                f"{r}x{r}: {n} files",
                "1 buckets made",
                "Caching latents for input_images",
                " - Saving latents to disk"
                if self.setting("cache_latents_to_disk")
                else " - Keeping latents in memory",
                cog.tqdm_line(cache_desc, 0, n, 0.0),
            ]
            lines += [cog.tqdm_line(cache_desc, i, n, i / latent_rate) for i in range(1, n + 1)]
        lines.append("Generating baseline samples before training")
        lines.append(cog.tqdm_line(JOB_NAME, 0, int(self.setting("steps")), 0.0))
        return lines

    def _train(self, rel: float, duration: float) -> list[str]:
        steps = int(self.setting("steps"))
        done = steps if rel >= 1.0 else int(rel * steps + 1e-9)
        seconds = self.shares["train"] * duration
        rate = steps / seconds if seconds > 0 else ITERATIONS_PER_SECOND
        lr = float(self.setting("learning_rate"))
        # save_every is wandb_save_interval with W&B on, else steps + 1 (never) (train.py).
        save_every = (
            int(self.setting("wandb_save_interval")) if self.input.get("wandb_api_key") else 0
        )
        bars = _bar_heads(steps, rate, lr)
        lines = []
        for k in range(1, done + 1):
            # ai-toolkit's postfix is the raw per-step loss: noisy around a falling curve.
            loss = 0.26 + 0.14 * math.exp(-3 * k / steps) + 0.05 * cog.noise(self.seed, k)
            lines.append(f"{bars[k - 1]}{loss:.3e}]")
            if save_every and k % save_every == 0 and k < steps:
                lines.append(f"Saving at step {k}")
                lines.append(f"Saved to {JOB_DIR}/{JOB_NAME}_{k:09d}.safetensors")
        return lines

    def lines(self, progress: float, duration: float) -> list[str]:
        """Lines printed once `progress` (0..1) of a `duration`-second processing phase ran."""
        out: list[str] = []
        for name, (start, end) in self._windows().items():
            if progress < start or (progress == start and end > start and name != "download"):
                break
            rel = 1.0 if progress >= end else (progress - start) / (end - start)
            if name == "download":
                out += _spread(self._download(duration), rel)
            elif name == "extract":
                out += _spread(
                    [f"Extracted {self.facts.files} files from zip to input_images"], rel
                )
            elif name == "caption":
                out += _spread(self._caption(duration), rel)
            elif name == "prepare":
                out += _spread(self._prepare(), rel)
            elif name == "train":
                out += self._train(rel, duration)
            else:
                autocaption = bool(self.setting("autocaption"))
                saved = [f"Saved to {JOB_DIR}/{JOB_NAME}.safetensors"]
                out += _spread(saved + output_listing(self.facts, autocaption), rel)
            if progress < end:
                break
        return out
