"""Deterministic sample photos for demos and tests (never shipped in the Lambda bundle).

Each picture is a seed-coloured gradient sky with a sun, a head-and-shoulders figure, a few
seed-placed shapes and an "UP" marker, under light pixel noise so it compresses like a photo
rather than to nothing. The same arguments always give the same bytes (with the same Pillow and
codec builds); different seeds give visibly different pictures.
"""

from __future__ import annotations

import io
import math
import random
from typing import Final

from PIL import ExifTags, Image, ImageDraw, ImageFont

# Formats make_photo can write; HEIC is an alias of HEIF (pillow_heif writes both as HEIC).
FORMATS: Final = ("JPEG", "PNG", "WEBP", "HEIF", "GIF", "BMP", "TIFF", "AVIF")
_EXTENSIONS: Final = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}
_PHOTO_NOISE: Final = 0.08  # share of noise in the blend: about +-10 levels, like sensor grain
_LARGE_NOISE: Final = 0.45  # high-entropy pixels for photos sized by bytes
# Demo set: (name stem, format, width, height, exif orientation, gps).
_SET: Final = (
    ("selfie", "JPEG", 1024, 1280, None, False),
    ("portrait", "HEIF", 1280, 1024, 6, False),  # an iPhone-style sideways-stored HEIC
    ("beach", "JPEG", 1200, 900, None, True),  # GPS that must never leave the system
    ("park", "WEBP", 1024, 1024, None, False),
    ("garden", "PNG", 768, 1024, None, False),
    ("cafe", "JPEG", 1280, 1024, 8, False),
)


def make_photo(
    width: int = 1024,
    height: int = 1024,
    *,
    seed: int = 0,
    fmt: str = "JPEG",
    exif_orientation: int | None = None,
    gps: bool = False,
    quality: int = 90,
    mode: str = "RGB",
    progressive: bool = False,
) -> bytes:
    """Encode a sample picture of `width`x`height` stored pixels.

    `exif_orientation` (1-8) and `gps` add EXIF tags (JPEG, PNG, WEBP, HEIF, AVIF). `mode` is the
    stored pixel mode: RGB, RGBA (transparent corners), L, LA, P, 1, CMYK (JPEG/TIFF) or I;16
    (16-bit greyscale PNG). `progressive` writes a progressive JPEG (libjpeg's 10-scan script).
    """
    return _encode(
        _picture(width, height, seed, _PHOTO_NOISE),
        fmt,
        mode,
        quality,
        exif_orientation,
        gps,
        progressive=progressive,
    )


def add_empty_scans(jpeg: bytes, count: int) -> bytes:
    """`jpeg` (a colour JPEG as Pillow writes it: components 1-3) with `count` empty scans added
    before its end marker.

    Each is a DC refinement scan of all three components carrying no data: decoders accept it
    (libjpeg warns, reads zero bits and changes nothing), yet it costs a pass over every block of
    the image. Hostile files repeat it by the thousand; decode-cost tests and bench.decode use it.
    """
    if not jpeg.endswith(b"\xff\xd9"):
        raise ValueError("expected a JPEG ending in its EOI marker")
    # SOS, length 12, 3 components (ids 1-3, tables 0/0), Ss=0, Se=0, Ah=1, Al=0.
    scan = b"\xff\xda\x00\x0c\x03\x01\x00\x02\x00\x03\x00\x00\x00\x10"
    return jpeg[:-2] + scan * count + b"\xff\xd9"


def make_large_photo(target_bytes: int, *, seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A 4:3 photo whose encoding is within 3% of `target_bytes` (e.g. 8 or 12 MB).

    High-entropy noise at high quality, with the side length searched from the measured
    bytes-per-pixel (bytes grow with the pixel count, so a few rounds converge).
    """
    if target_bytes < 50_000:
        raise ValueError("target_bytes must be at least 50 kB")
    quality = 100 if fmt.upper() == "JPEG" else 95
    height = 720
    data = b""
    for _ in range(8):
        width = height * 4 // 3
        data = _encode(
            _picture(width, height, seed, _LARGE_NOISE), fmt, "RGB", quality, None, False, fast=True
        )
        if abs(len(data) - target_bytes) <= 0.03 * target_bytes:
            break
        height = max(64, round(height * math.sqrt(target_bytes / len(data))))
    return data


def sample_photo_set(n: int = 4) -> list[tuple[str, bytes]]:
    """`n` distinct photos as (file name, bytes), mixing JPEG, HEIC, WebP and PNG as phones do.

    The first four together stay well under the 4.4 MB multipart cap of a Function URL.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    photos: list[tuple[str, bytes]] = []
    for index in range(1, n + 1):
        stem, fmt, width, height, orientation, gps = _SET[(index - 1) % len(_SET)]
        data = make_photo(width, height, seed=index, fmt=fmt, exif_orientation=orientation, gps=gps)
        photos.append((f"{stem}-{index}.{_EXTENSIONS[fmt]}", data))
    return photos


def _picture(width: int, height: int, seed: int, noise: float) -> Image.Image:
    if width < 1 or height < 1:
        raise ValueError("width and height must be at least 1")
    rng = random.Random(seed)

    def colour(low: int = 0, high: int = 255) -> tuple[int, int, int]:
        return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))

    sky = Image.linear_gradient("L").resize((width, height))
    img = Image.composite(
        Image.new("RGB", (width, height), colour(0, 160)),
        Image.new("RGB", (width, height), colour(120, 255)),
        sky,
    )
    draw = ImageDraw.Draw(img)
    side = min(width, height)
    for _ in range(6):  # seed-placed background shapes: what makes two seeds differ everywhere
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randint(side // 20 + 1, side // 5 + 2)
        box = (x - r, y - r, x + r, y + r)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour())
        else:
            draw.rectangle(box, fill=colour(), outline=colour(), width=max(1, side // 200))
    sun = side // 10 + 1
    draw.ellipse((width - 3 * sun, sun, width - sun, 3 * sun), fill=(255, 220, 90))
    # A head-and-shoulders figure, so a person sees "a portrait", and orientation errors show.
    cx, head = width // 2, side // 6 + 1
    skin = (rng.randint(120, 240), rng.randint(90, 200), rng.randint(70, 170))
    draw.ellipse(
        (cx - 3 * head, height - head * 2, cx + 3 * head, height + head * 4), fill=colour(0, 200)
    )
    top = height // 2 - head * 2
    draw.ellipse((cx - head, top, cx + head, top + int(head * 2.4)), fill=skin)
    eye_y, eye = top + head, max(1, head // 6)
    for ex in (cx - head // 2, cx + head // 2):
        draw.ellipse((ex - eye, eye_y - eye, ex + eye, eye_y + eye), fill=(30, 30, 40))
    draw.arc(
        (cx - head // 2, top + head, cx + head // 2, top + head * 2),
        20,
        160,
        fill=(90, 30, 30),
        width=max(1, head // 12),
    )
    font = ImageFont.load_default(size=max(8, side // 16))
    draw.text((side // 40 + 1, side // 40 + 1), f"UP #{seed}", fill=(255, 255, 255), font=font)

    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    if noise >= _LARGE_NOISE:  # colour noise: each channel independent, far less compressible
        channels = [grain] + [
            Image.frombytes("L", (width, height), rng.randbytes(width * height)) for _ in range(2)
        ]
        return Image.blend(img, Image.merge("RGB", channels), noise)
    return Image.blend(img, Image.merge("RGB", [grain, grain, grain]), noise)


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA"):
        # Transparent corners outside a big ellipse: flattening must show white there.
        alpha = Image.new("L", img.size, 0)
        ImageDraw.Draw(alpha).ellipse((0, 0, img.width - 1, img.height - 1), fill=255)
        base = img if mode == "RGBA" else img.convert("L")
        base.putalpha(alpha)
        return base
    if mode == "P":
        return img.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    if mode == "I;16":  # 16-bit greyscale: spread 0-255 over 0-65535
        return img.convert("L").convert("I").point(lambda v: v * 257).convert("I;16")
    if mode in ("L", "1", "CMYK"):
        return img.convert(mode)
    raise ValueError(f"unsupported sample mode {mode!r}")


def _exif(orientation: int | None, gps: bool) -> Image.Exif | None:
    if orientation is None and not gps:
        return None
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Flurrty"
    exif[ExifTags.Base.Model] = "Sample Camera"
    if orientation is not None:
        if not 1 <= orientation <= 8:
            raise ValueError("exif_orientation must be between 1 and 8")
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps_ifd[ExifTags.GPS.GPSLatitudeRef] = "N"
        gps_ifd[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.5)
        gps_ifd[ExifTags.GPS.GPSLongitudeRef] = "E"
        gps_ifd[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    return exif


def _encode(
    img: Image.Image,
    fmt: str,
    mode: str,
    quality: int,
    orientation: int | None,
    gps: bool,
    *,
    fast: bool = False,
    progressive: bool = False,
) -> bytes:
    fmt = fmt.upper()
    fmt = "HEIF" if fmt == "HEIC" else "JPEG" if fmt == "JPG" else fmt
    if fmt not in FORMATS:
        raise ValueError(f"unsupported sample format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "HEIF":
        import pillow_heif  # only HEIC samples pay for it

        pillow_heif.register_heif_opener()
    img = _to_mode(img, mode)
    options: dict[str, object] = {}
    exif = _exif(orientation, gps)
    if exif is not None:
        if fmt not in ("JPEG", "PNG", "WEBP", "HEIF", "AVIF"):
            raise ValueError(f"{fmt} samples cannot carry EXIF here")
        options["exif"] = exif.tobytes()
    if fmt in ("JPEG", "WEBP", "HEIF", "AVIF"):
        options["quality"] = quality
    if progressive:
        if fmt != "JPEG":
            raise ValueError("only JPEG samples can be progressive")
        options["progressive"] = True
    if fast and fmt == "HEIF":
        # x265's default preset needs over a minute for an 8 MB noise picture; ultrafast, seconds.
        options["enc_params"] = {"preset": "ultrafast"}
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()
