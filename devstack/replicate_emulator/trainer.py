"""What `ostris/flux-dev-lora-trainer` does with its input, and the logs it prints.

Facts from reference/replicate.md section 6 (the trainer's `train.py` and ai-toolkit) and
section 2.1 (how Cog reports invalid input).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import random
import zipfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

TRAINER_OWNER = "ostris"
TRAINER_NAME = "flux-dev-lora-trainer"
TRAINER_MODEL = f"{TRAINER_OWNER}/{TRAINER_NAME}"
# Version ids seen in public code (replicate.md 6); the first is what `latest_version` reports.
TRAINER_VERSION = "4ffd32160efd92e956d39c5338a9b8fbafca58e03f791f6d8011f3e20e8ea6fa"
OLDER_TRAINER_VERSIONS = (
    "e440909d3512c31646ee2e0c7d6f6f4923224863a6a10c494606e79fb5844497",
    "b6af14222e6bd9be257cbc1ea4afda3cd0503e1133083b9d1de0364d8568e6ef",
)
COG_VERSION = "0.9.20"
JOB_NAME = "flux_train_replicate"

# ai-toolkit's loader matches suffixes case-sensitively, so `.JPG` and `.heic` are skipped.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# Steps/s of a typical H100 run, only used to make the tqdm timings look real.
ITERATIONS_PER_SECOND = 1.44
# Share of the processing phase spent before the first training step (download, captions).
SETUP_SHARE = 0.1
# Images assumed inside a zip we may not fetch (a non-loopback URL: no outside network).
ASSUMED_REMOTE_IMAGES = 10

ZIP_ERROR = "input_images must be a zip file"
NO_IMAGES_ERROR = (
    "input_images must be a zip file with at least one .jpg, .jpeg, .png or .webp image"
)
MISSING_IMAGES_ERROR = "input_images must be provided"

# name: (kind, default, minimum, maximum); bounds from the trainer's `Input(ge=, le=)`.
INPUTS: dict[str, tuple[str, Any, float | None, float | None]] = {
    "input_images": ("uri", None, None, None),
    "trigger_word": ("str", "TOK", None, None),
    "autocaption": ("bool", True, None, None),
    "autocaption_prefix": ("str", None, None, None),
    "autocaption_suffix": ("str", None, None, None),
    "steps": ("int", 1000, 3, 6000),
    "learning_rate": ("float", 4e-4, None, None),
    "batch_size": ("int", 1, None, None),
    "resolution": ("str", "512,768,1024", None, None),
    "lora_rank": ("int", 16, 1, 128),
    "caption_dropout_rate": ("float", 0.05, 0, 1),
    "optimizer": ("str", "adamw8bit", None, None),
    "cache_latents_to_disk": ("bool", False, None, None),
    "layers_to_optimize_regex": ("str", None, None, None),
    "gradient_checkpointing": ("bool", False, None, None),
    "hf_repo_id": ("str", None, None, None),
    "hf_token": ("secret", None, None, None),
    "wandb_api_key": ("secret", None, None, None),
    "wandb_project": ("str", JOB_NAME, None, None),
    "wandb_run": ("str", None, None, None),
    "wandb_entity": ("str", None, None, None),
    "wandb_sample_prompts": ("str", None, None, None),
    "wandb_sample_interval": ("int", 100, 1, None),
    "wandb_save_interval": ("int", 100, 1, None),
    "skip_training_and_use_pretrained_hf_lora_url": ("str", None, None, None),
}


def trainer_openapi_schema() -> dict[str, Any]:
    """A Cog-style schema with the training inputs under `components.schemas.TrainingInput`."""
    kinds: dict[str, dict[str, Any]] = {
        "uri": {"type": "string", "format": "uri"},
        "str": {"type": "string"},
        "bool": {"type": "boolean"},
        "int": {"type": "integer"},
        "float": {"type": "number"},
        "secret": {"type": "string", "format": "password", "x-cog-secret": True},
    }
    props: dict[str, Any] = {}
    for order, (name, (kind, default, lo, hi)) in enumerate(INPUTS.items()):
        prop: dict[str, Any] = {**kinds[kind], "title": name.replace("_", " ").title()}
        prop["x-order"] = order
        if default is not None:
            prop["default"] = default
        if lo is not None:
            prop["minimum"] = lo
        if hi is not None:
            prop["maximum"] = hi
        props[name] = prop
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "components": {
            "schemas": {
                "TrainingInput": {"type": "object", "title": "TrainingInput", "properties": props},
                "TrainingOutput": {
                    "type": "object",
                    "title": "TrainingOutput",
                    "required": ["weights"],
                    "properties": {"weights": {"type": "string", "format": "uri"}},
                },
            }
        },
    }


# --- validation (Cog / pydantic v1 error shapes) ------------------------------------------


def _err(name: str, msg: str, kind: str, **ctx: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"loc": ["body", "input", name], "msg": msg, "type": kind}
    if ctx:
        item["ctx"] = ctx
    return item


def _coerce(kind: str, value: Any) -> tuple[Any, tuple[str, str] | None]:
    """pydantic v1 coercion: returns (value, (msg, type)) on failure."""
    if kind == "int":
        if isinstance(value, bool):
            return int(value), None
        if isinstance(value, int):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value), None
        return value, ("value is not a valid integer", "type_error.integer")
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), None
        try:
            return float(str(value)), None
        except ValueError:
            return value, ("value is not a valid float", "type_error.float")
    if kind == "bool":
        truthy = {True, "1", "true", "yes", "on", "y", "t"}
        falsy = {False, "0", "false", "no", "off", "n", "f"}
        probe = value.lower() if isinstance(value, str) else value
        if probe in truthy:
            return True, None
        if probe in falsy:
            return False, None
        return value, ("value could not be parsed to a boolean", "type_error.bool")
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value), None
    return value, ("str type expected", "type_error.str")


def validation_error(input_: dict[str, Any]) -> str | None:
    """The `Prediction input failed validation: ...` text Cog gives, or None if valid."""
    errors: list[dict[str, Any]] = []
    for name, (kind, _default, lo, hi) in INPUTS.items():
        if name not in input_ or input_[name] is None:
            continue
        value = input_[name]
        if kind == "uri":
            scheme = urlsplit(value).scheme if isinstance(value, str) else ""
            if scheme not in ("data", "http", "https"):
                msg = (
                    f"'{scheme}' is not a valid URL scheme. "
                    "'data', 'http', or 'https' is supported."
                )
                errors.append(_err(name, msg, "value_error"))
            continue
        coerced, problem_ = _coerce("str" if kind == "secret" else kind, value)
        if problem_ is not None:
            errors.append(_err(name, problem_[0], problem_[1]))
            continue
        if lo is not None and coerced < lo:
            errors.append(
                _err(
                    name,
                    f"ensure this value is greater than or equal to {_num(lo)}",
                    "value_error.number.not_ge",
                    limit_value=_num(lo),
                )
            )
        elif hi is not None and coerced > hi:
            errors.append(
                _err(
                    name,
                    f"ensure this value is less than or equal to {_num(hi)}",
                    "value_error.number.not_le",
                    limit_value=_num(hi),
                )
            )
    if not errors:
        return None
    detail = json.dumps({"detail": errors}, separators=(",", ":"))
    return f"Prediction input failed validation: {detail}"


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def setting(input_: dict[str, Any], name: str) -> Any:
    """An input after coercion, or its default (only call once validation passed)."""
    kind, default, _, _ = INPUTS[name]
    if input_.get(name) is None:
        return default
    value, _problem = _coerce("str" if kind in ("secret", "uri") else kind, input_[name])
    return value


# --- the zip ----------------------------------------------------------------------------


@dataclass
class ZipFacts:
    """What `train()` would find in `input_images` (or the error it raises)."""

    files: int = 0
    images: list[str] = field(default_factory=list)
    captioned: set[str] = field(default_factory=set)
    error: str | None = None


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

_BAR_CHARS = " ▏▎▍▌▋▊▉█"
_BAR_WIDTH = 10


def _bar(n: int, total: int) -> str:
    # tqdm's default 10-cell bar with eighth-block partials.
    frac = n / total if total else 1.0
    full, part = divmod(int(frac * _BAR_WIDTH * 8), 8)
    if full >= _BAR_WIDTH:
        return _BAR_CHARS[-1] * _BAR_WIDTH
    return _BAR_CHARS[-1] * full + _BAR_CHARS[part] + " " * (_BAR_WIDTH - full - 1)


def _interval(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def tqdm_line(desc: str, n: int, total: int, rate: float, postfix: str = "") -> str:
    """One redraw in tqdm's default format, as Cog turns it into a log line."""
    prefix = f"{desc}: " if desc else ""
    if n == 0:
        return f"{prefix}  0%|{' ' * _BAR_WIDTH}| 0/{total} [00:00<?, ?it/s]"
    elapsed = n / rate
    remaining = (total - n) / rate
    tail = f", {postfix}" if postfix else ""
    return (
        f"{prefix}{100 * n / total:3.0f}%|{_bar(n, total)}| {n}/{total} "
        f"[{_interval(elapsed)}<{_interval(remaining)}, {rate:5.2f}it/s{tail}]"
    )


@dataclass
class TrainerLogs:
    """Deterministic logs for one training; the step lines are built on demand and cached."""

    seed: str
    facts: ZipFacts
    steps: int
    learning_rate: float
    trigger_word: str
    autocaption: bool
    _setup: list[str] = field(default_factory=list)
    _steps: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        n = max(len(self.facts.images), 1)
        lines = [
            f"Extracted {self.facts.files} files from zip to input_images",
            f"Downloaded base weights in {rng.uniform(6, 14):.2f} seconds",
            "Turning gradient checkpointing on and quantizing base model, "
            "GPU has less than 100 GB of memory",
        ]
        for image in self.facts.images:
            base = image.rsplit("/", 1)[-1]
            if image in self.facts.captioned or not self.autocaption:
                lines.append(f"{base} is already captioned")
            else:
                lines.append(f"Caption for input_images/{base}: a photo of {self.trigger_word}")
        lines.append("Starting train job")
        # Bare `tqdm(file_list)` bars come first; parsers must not take them for training.
        for _ in range(2):
            lines.append(tqdm_line("", 0, n, 1.0))
            lines.append(tqdm_line("", n, n, rng.uniform(800, 3000)))
        lines.append(tqdm_line("Caching latents", 0, n, 1.0))
        latent_rate = rng.uniform(4, 8)
        lines.extend(tqdm_line("Caching latents", i, n, latent_rate) for i in range(1, n + 1))
        lines.append(tqdm_line(JOB_NAME, 0, self.steps, 1.0))
        self._setup = lines

    def _step_line(self, k: int) -> str:
        rng = random.Random(f"{self.seed}:{k}")
        loss = 0.28 + 0.2 * math.exp(-3 * k / self.steps) + rng.uniform(-0.06, 0.06)
        postfix = f"lr: {self.learning_rate:.1e} loss: {loss:.3e}"
        rate = ITERATIONS_PER_SECOND
        return tqdm_line(JOB_NAME, k, self.steps, rate, postfix)

    def current_step(self, progress: float) -> int:
        if progress <= SETUP_SHARE:
            return 0
        share = (progress - SETUP_SHARE) / (1 - SETUP_SHARE)
        return min(self.steps, int(share * self.steps + 1e-9))

    def lines(self, progress: float) -> list[str]:
        """Lines printed by the time `progress` (0..1 of the processing phase) is reached."""
        progress = min(max(progress, 0.0), 1.0)
        if progress < SETUP_SHARE:
            shown = int(progress / SETUP_SHARE * len(self._setup))
            return self._setup[:shown]
        k = self.current_step(progress)
        while len(self._steps) < k:
            self._steps.append(self._step_line(len(self._steps) + 1))
        return self._setup + self._steps[:k]
