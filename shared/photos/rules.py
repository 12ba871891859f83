"""What a photo must be, without decoding it: limits, names, labels and the refusal type.

Kept apart from `shared.photos.normalise` (the Pillow decoder) so a path that only declares, names or
sizes photos, such as creating a signed upload, never imports Pillow (~27 ms of cold start).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

from shared.errors import AppError, ErrorCode

PHOTO_CONTENT_TYPE: Final = "image/jpeg"
# What a browser may declare for a photo we accept (signed-upload requests, bucket MIME list).
# Only a hint for the client: the content decides, not the declared type.
ACCEPTED_UPLOAD_CONTENT_TYPES: Final = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"}
)

_MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class PhotoLimits:
    """Per-photo limits. `max_pixels` is checked from the header before decoding.

    Pillow's own decompression-bomb ceiling (`Image.MAX_IMAGE_PIXELS`, warning above it, error
    above twice it) still applies on top and is reported as `photo_too_many_pixels` too, so a
    `max_pixels` above Pillow's ceiling has no effect past it.

    `max_decode_seconds` is the wall-clock budget for parsing and decoding one photo, checked at
    every read the decoder makes (JPEG and PNG decode as they read); six photos at the budget
    still fit the upload function's 29 s timeout.
    """

    min_short_side: int = 512
    max_long_side: int = 2048
    max_pixels: int = 50_000_000
    max_bytes: int = 15 * 1024 * 1024
    max_decode_seconds: float = 3.0

    def __post_init__(self) -> None:
        for name in ("min_short_side", "max_long_side", "max_pixels", "max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"PhotoLimits.{name} must be at least 1")
        if not self.max_decode_seconds > 0:
            raise ValueError("PhotoLimits.max_decode_seconds must be above 0")
        if self.min_short_side > self.max_long_side:
            raise ValueError("PhotoLimits.min_short_side cannot exceed max_long_side")


class PhotoRejected(AppError):
    """A photo we will not use; `message` names the photo by `label` and says what to do.

    `status` is the catalogue's for `code`, given again where the rejection is written so each
    rejection reads whole; a mismatch is a bug and fails at once."""

    def __init__(self, code: str, status: int, message: str, *, label: str) -> None:
        super().__init__(ErrorCode.lookup(code), message)
        if self.status != status:
            raise ValueError(f"{code} answers {self.status}, not {status}")
        self.label = label


def photo_object_name(index: int) -> str:
    """Storage / zip entry name of the 1-based `index`-th photo: `01.jpg` .. `99.jpg`.

    Lower-case `.jpg` on purpose: the trainer skips upper-case `.JPG` files.
    """
    if not 1 <= index <= 99:
        raise ValueError(f"photo index must be between 1 and 99, got {index}")
    return f"{index:02d}.jpg"


def photo_label(index: int, filename: str | None = None) -> str:
    """`Photo 2 ("beach.jpg")` for messages; the file name is untrusted, so it is tidied."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = " ".join(name.split()).replace('"', "'")
    if len(name) > 60:
        name = name[:59] + "…"
    return f'Photo {index} ("{name}")' if name else f"Photo {index}"


def check_photo_size(size: int, limits: PhotoLimits, *, label: str, exact: bool = True) -> None:
    """The byte-size rules alone, so a size known before the bytes (declared, or listed by
    Storage) is refused with the same answer. `exact=False`: reading stopped past the limit."""
    if size == 0:
        raise PhotoRejected(
            "empty_file",
            422,
            f"{label} is an empty file (0 bytes); choose the photo again and re-upload it.",
            label=label,
        )
    if size > limits.max_bytes:
        limit = mb(limits.max_bytes)
        shown = f"is {mb(size)} MB" if exact else f"is larger than {limit} MB"
        raise PhotoRejected(
            "photo_too_large",
            413,
            f"{label} {shown}; each photo can be at most {limit} MB. "
            "Export it at a smaller size or lower quality and upload it again.",
            label=label,
        )


def mb(size: int) -> str:
    """Bytes as MB for messages: `12.5`, `15`."""
    return f"{size / _MIB:.1f}".removesuffix(".0")


JPEG_SIGNATURE: Final = b"\xff\xd8\xff"


def photo_checksum(jpeg: bytes) -> str:
    """The SHA-256 (hex) of a stored photo, recorded when the backend stores it and checked when
    start zips it: what reaches the trainer is exactly what was checked."""
    import hashlib

    return hashlib.sha256(jpeg).hexdigest()
