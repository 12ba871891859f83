"""What a trained version (cog-flux's `HotswapPredictor`) does with its input, prints, returns.

Facts from the team reference (next capabilities, section 4.1: the input set, the safety
checker's messages) and the SPEC (`predictions.create`/`get`: outputs removed after an hour).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageOps

from devstack.replicate_emulator import cog
from devstack.replicate_emulator.cog import Field

ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
# The predict() signature in order; bounds and choices from its `Input(...)`s.
INPUTS: dict[str, Field] = {
    "prompt": Field("str", required=True),
    "image": Field("uri"),
    "mask": Field("uri"),
    "aspect_ratio": Field("str", "1:1", choices=(*ASPECT_RATIOS, "custom")),
    "height": Field("int", ge=256, le=1440),
    "width": Field("int", ge=256, le=1440),
    "prompt_strength": Field("float", 0.8, ge=0.0, le=1.0),
    "model": Field("str", "dev", choices=("dev", "schnell")),
    "num_outputs": Field("int", 1, ge=1, le=4),
    "num_inference_steps": Field("int", 28, ge=1, le=50),
    "guidance_scale": Field("float", 3.0, ge=0, le=10),
    "seed": Field("int"),
    "output_format": Field("str", "webp", choices=("webp", "jpg", "png")),
    "output_quality": Field("int", 80, ge=0, le=100),
    "disable_safety_checker": Field("bool", False),
    "go_fast": Field("bool", False),
    "megapixels": Field("str", "1", choices=("1", "0.25")),
    "replicate_weights": Field("str"),
    "lora_scale": Field("float", 1.0, ge=-1.0, le=3.0),
    "extra_lora": Field("str"),
    "extra_lora_scale": Field("float", 1.0, ge=-1.0, le=3.0),
}
NSFW_ERROR = (
    "All generated images contained NSFW content. Try running it again with a different prompt."
)
OUTPUT_RETENTION_SECONDS = 3600.0  # SPEC: removed after an hour for API predictions
PREDICT_FAIL_SECONDS = 0.05  # an exception raised at the top of predict()
CONTENT_TYPES = {"webp": "image/webp", "jpg": "image/jpeg", "png": "image/png"}
_PIL_FORMATS = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}
# Shares of the predict time: the denoising bar runs between these two points.
_BAR_START, _BAR_END = 0.05, 0.95


def predictor_openapi_schema() -> dict[str, Any]:
    """The trained version's schema: inputs under `components.schemas.Input`."""
    output = {"type": "array", "items": {"type": "string", "format": "uri"}}
    return cog.openapi_schema(INPUTS, input_title="Input", output_title="Output", output=output)


def validation_error(input_: Mapping[str, Any]) -> str | None:
    return cog.validation_error(INPUTS, input_)


def _multiple_of_16(n: int) -> int:
    return ((n + 15) // 16) * 16


@dataclass(frozen=True)
class PredictorRun:
    """One predict() call on valid input: its seed, size, what the safety checker drops."""

    input: Mapping[str, Any]
    seed: int
    flagged: int = 0  # outputs the safety checker drops (from the first)

    def setting(self, name: str) -> Any:
        return cog.setting(INPUTS, self.input, name)

    @property
    def error(self) -> str | None:
        """What predict() raises before it generates (cog-flux rounds a missing size)."""
        if self.setting("aspect_ratio") == "custom" and None in (
            self.setting("width"),
            self.setting("height"),
        ):
            return "unsupported operand type(s) for +: 'NoneType' and 'int'"
        return None

    def size(self) -> tuple[int, int]:
        if self.setting("aspect_ratio") == "custom":
            return _multiple_of_16(self.setting("width")), _multiple_of_16(self.setting("height"))
        width, height = ASPECT_RATIOS[self.setting("aspect_ratio")]
        if self.setting("megapixels") == "0.25":
            return width // 2, height // 2
        return width, height

    def outcome(self) -> tuple[str, str | None]:
        if self.flagged >= int(self.setting("num_outputs")):
            return "failed", NSFW_ERROR
        return "succeeded", None

    def output_names(self) -> list[str]:
        """`out-{i}.{format}` for each image kept: a dropped image leaves a gap in the numbers."""
        fmt = self.setting("output_format")
        return [f"out-{i}.{fmt}" for i in range(self.flagged, int(self.setting("num_outputs")))]

    def lines(self, progress: float, duration: float, *, stalled: bool = False) -> list[str]:
        """Lines printed once `progress` (0..1) of a `duration`-second predict() ran."""
        steps = int(self.setting("num_inference_steps"))
        mode = "[!] img2img mode" if self.input.get("image") else "[!] txt2img mode"
        lines = [f"Using seed: {self.seed}", f"Prompt: {self.setting('prompt')}", mode]
        if progress < _BAR_START and not stalled:
            return lines
        lines.append(cog.tqdm_line("", 0, steps, 0.0))
        if stalled:
            return lines
        seconds = (_BAR_END - _BAR_START) * duration
        rate = steps / seconds if seconds > 0 else 8.0
        done = (
            steps
            if progress >= _BAR_END
            else int((progress - _BAR_START) / (_BAR_END - _BAR_START) * steps)
        )
        lines += [cog.tqdm_line("", k, steps, k / rate) for k in range(1, done + 1)]
        if progress >= 1.0:
            total = int(self.setting("num_outputs"))
            flagged = min(self.flagged, total)
            lines += [f"NSFW content detected in image {i}" for i in range(flagged)]
            if flagged < total:
                lines.append(f"Total safe images: {total - flagged} out of {total}")
        return lines

    def image(self, name: str) -> tuple[bytes, str] | None:
        """The bytes and content type of output `name`, or None if it is not one of ours."""
        if name not in self.output_names():
            return None
        fmt = self.setting("output_format")
        index = int(name.split("-", 1)[1].split(".", 1)[0])
        width, height = self.size()
        data = render_image(
            str(self.setting("prompt")),
            self.seed,
            index,
            (width, height),
            fmt,
            int(self.setting("output_quality")),
        )
        return data, CONTENT_TYPES[fmt]


def render_image(
    prompt: str, seed: int, index: int, size: tuple[int, int], fmt: str, quality: int
) -> bytes:
    """A real image whose colours and shapes follow a hash of prompt, seed and output index:
    the same request always gives the same pixels, another prompt or seed other ones."""
    digest = hashlib.sha256(f"{prompt}\0{seed}\0{index}".encode()).digest()
    width, height = size
    # A two-colour gradient at some angle, then a few shapes on top (cheap at 1 MP).
    gradient = Image.linear_gradient("L").rotate(digest[0] * 360 / 256, expand=False)
    background = ImageOps.colorize(gradient.resize(size), tuple(digest[1:4]), tuple(digest[4:7]))
    draw = ImageDraw.Draw(background)
    for i in range(3 + digest[7] % 4):
        b = digest[8 + 3 * i : 11 + 3 * i]
        x, y = b[0] * width // 256, b[1] * height // 256
        r = (16 + b[2] % 96) * min(width, height) // 256
        colour = (digest[(20 + i) % 32], digest[(24 + i) % 32], digest[(28 + i) % 32])
        box = (x - r, y - r, x + r, y + r)
        if b[2] % 2:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    buffer = io.BytesIO()
    if fmt == "png":
        background.save(buffer, "PNG", compress_level=1)
    elif fmt == "webp":
        background.save(buffer, "WEBP", quality=quality, method=0)  # method 0: fast encode
    else:
        background.save(buffer, _PIL_FORMATS[fmt], quality=quality)
    return buffer.getvalue()
