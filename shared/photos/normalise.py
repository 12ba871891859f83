"""Validate and normalise one uploaded photo into a metadata-free RGB JPEG.

Pure logic over bytes or a binary file object: no storage, no network. The type is detected from
the content (never the file name or the declared Content-Type). JPEG, PNG, WebP and HEIC/HEIF are
accepted; everything else is refused with a `PhotoRejected` that carries an HTTP status, a
snake_case code and a sentence the person can act on.

Memory: one photo at a time; at most the source bytes, one decoded image (plus the transient copy
an operation makes) and the output JPEG are alive together. Pixel counts are checked from the
header, before any pixel is decoded, so a small file cannot make us allocate a huge canvas.

Time: a small file must not cost a long decode either (issue 14). Before decoding, the structure
whose cost grows without the pixels growing is counted from the bytes: a JPEG's scans (each one a
pass over every block), its marker segments and header padding (Pillow parses those in Python),
a PNG's chunks and colour profiles. While decoding, every read the decoder makes checks the
`max_decode_seconds` budget; JPEG and PNG decode as they read, so a slow one stops there. WebP and
HEIC decode in one native call that cannot be stopped: their cost follows the header's pixel count,
which is capped first (bench/decode.py measures the worst accepted photo of each format).
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from time import monotonic
from typing import IO, TYPE_CHECKING, BinaryIO, Final

from PIL import (
    ExifTags,
    Image,
    ImageFile,
    JpegImagePlugin,  # noqa: F401
    PngImagePlugin,  # noqa: F401
    WebPImagePlugin,  # noqa: F401
)

from shared.photos.rules import PhotoLimits, PhotoRejected, check_photo_size

if TYPE_CHECKING:
    from PIL import ImageCms

JPEG_QUALITY: Final = 90
_FORMATS_HUMAN: Final = "JPEG, PNG, WebP or HEIC"
_ACCEPTED_HUMAN: Final = f"a {_FORMATS_HUMAN} photo"
_SNIFF_BYTES: Final = 1024
_FINGERPRINT_SIDE: Final = 32
_WHITE: Final = (255, 255, 255)
_REDUCING_GAP: Final = 1.5  # Pillow's two-step resize: box-reduce while 1.5x the target remains

# HEIF brands pillow_heif's opener accepts (ISO/IEC 23008-12 still images and sequences).
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_BMP_DIB_SIZES: Final = frozenset({12, 40, 52, 56, 64, 108, 124})

# Decode-cost caps, far above what cameras and editors write. libjpeg's progressive script has 10
# scans for colour (6 grey, 18 CMYK), baseline has 1-4; each scan is a pass over every block of the
# image. Real photos have tens of segments (64 kB APP chunks of a 15 MB file stay under 250).
# libpng writes 8 kB IDAT chunks: 1,920 for 15 MB. The PNG spec allows one iCCP, and Pillow
# inflates every one it finds (up to 1 MB each).
_JPEG_MAX_SCANS: Final = 32
_JPEG_MAX_SEGMENTS: Final = 1000
_JPEG_MAX_HEADER_PADDING: Final = 1024  # fill or junk bytes, which Pillow reads one at a time
_PNG_MAX_CHUNKS: Final = 10_000
# The next JPEG marker: 0xFF then a code that is not a stuffed 0x00, a restart (D0-D7) or fill.
_JPEG_MARKER: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Markers without a length field: TEM, SOI, EOI (restarts never match _JPEG_MARKER).
_JPEG_STANDALONE: Final = frozenset({0x01, 0xD8, 0xD9})
# PNG and WebP decode every pixel at full size (JPEG decodes at the scale it is shown; HEIC's
# decoder is lean), so at the same pixel count they take about twice the time and, for WebP, four
# times the memory (bench/decode.py): they get half of `max_pixels`. Phones write JPEG or HEIC at
# 48-50 MP; PNG or WebP photos that large are exports, which can be made as JPEG.
_FULL_SIZE_DECODES: Final = frozenset({"PNG", "WEBP"})
_EXPORT_AGAIN: Final = "save or export it again as a standard JPEG and upload the new copy."

# EXIF orientation -> the transpose that makes the pixels upright (EXIF 2.3 tag 0x0112; the same
# table ImageOps.exif_transpose uses). Applied by us after downscaling, so the transpose copies
# the small image instead of the full decode.
_ORIENTATION_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class NormalisedPhoto:
    """The photo as we store and train on it: upright RGB JPEG, no metadata, long side capped.

    `fingerprint` is the SHA-256 (hex) of a 32x32 greyscale BOX thumbnail of the normalised
    pixels, taken before JPEG encoding. Equal pixels give an equal fingerprint whatever the
    container or metadata: the same file twice, the same picture with other EXIF/GPS/ICC/comments,
    an orientation tag versus physically rotated pixels, PNG versus lossless WebP. It is an
    exact-duplicate check, not a near-duplicate one: a lossy re-compression changes pixels and
    usually the fingerprint.
    """

    jpeg: bytes
    width: int
    height: int
    source_format: str
    fingerprint: str


def normalise_photo(
    data: bytes | BinaryIO | IO[bytes], limits: PhotoLimits, *, label: str
) -> NormalisedPhoto:
    """Check one photo and return it as an upright, metadata-free RGB JPEG.

    Raises `PhotoRejected` for anything a person sent wrong (see the module docstring); any
    other exception is our bug, not their photo.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A process-wide Pillow switch; if someone turned it on, cut-off uploads would pass.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")

    raw, exact_size = _read_limited(data, limits.max_bytes)
    check_photo_size(len(raw), limits, label=label, exact=exact_size)

    fmt = _sniff(raw[:_SNIFF_BYTES], label)
    if fmt == "HEIF":
        _register_heif_opener()
    header_size = _header_size(fmt, raw)
    if header_size is not None:
        # PNG/WebP dimensions are at fixed offsets: refuse before Pillow allocates anything
        # (its WebP decoder allocates the canvas while opening).
        _check_pixels(header_size, fmt, limits, label)
    if fmt == "JPEG":
        _check_jpeg_structure(raw, label)
    elif fmt == "PNG":
        _check_png_structure(raw, label)

    img = _open(raw, fmt, limits, label)
    try:
        return _normalise_open_image(img, fmt, limits, label)
    finally:
        img.close()


def _normalise_open_image(
    img: Image.Image, fmt: str, limits: PhotoLimits, label: str
) -> NormalisedPhoto:
    # PNG and WebP can be animations; a HEIF with several top-level images (bursts) is shown by
    # its primary image, and a JPEG with extra MPF frames (gain/depth maps) by its first frame.
    frames = int(getattr(img, "n_frames", 1))
    if fmt in ("PNG", "WEBP") and frames > 1:
        raise PhotoRejected(
            "animated_image",
            422,
            f"{label} is an animated image with {frames} frames; upload a still photo "
            f"({_FORMATS_HUMAN}).",
            label=label,
        )

    stored_w, stored_h = img.size
    _check_pixels((stored_w, stored_h), fmt, limits, label)
    # The short side does not change with rotation, so this check is exact before decoding;
    # the orientation only makes the message show the photo as the person sees it.
    shown_w, shown_h = _oriented((stored_w, stored_h), _orientation_before_load(img))
    short, long = min(stored_w, stored_h), max(stored_w, stored_h)
    if short < limits.min_short_side:
        raise PhotoRejected(
            "photo_too_small",
            422,
            f"{label} is {shown_w}x{shown_h} px; each photo needs a short side of at least "
            f"{limits.min_short_side} px.",
            label=label,
        )
    target = _capped_size((stored_w, stored_h), limits.max_long_side)
    if min(target) < limits.min_short_side:
        ratio = limits.max_long_side / limits.min_short_side
        raise PhotoRejected(
            "photo_too_narrow",
            422,
            f"{label} is {shown_w}x{shown_h} px; with its long side scaled to "
            f"{limits.max_long_side} px its short side would be only {min(target)} px, below "
            f"{limits.min_short_side} px. Crop it to at most {ratio:g}:1 (closer to square).",
            label=label,
        )

    try:
        if fmt == "JPEG" and long > limits.max_long_side:
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale straight from the DCT, never below
            # `target`: a 48 MP photo costs a 12 MP (or smaller) decode instead.
            img.draft(img.mode, target)
        img.load()
    except (MemoryError, PhotoRejected):  # PhotoRejected: the decode budget ran out
        raise
    except Exception:  # decoders raise many types on hostile input; all mean "damaged" here
        raise _corrupt(label) from None

    orientation = _read_orientation(img)
    icc = img.info.get("icc_profile")
    try:
        out = _to_rgb(img, target, icc if isinstance(icc, bytes) and icc else None)
    except (ValueError, OSError):  # a pixel mode no photo has (e.g. from a hand-made file)
        raise _corrupt(label) from None
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        out = _replaced(out, out.transpose(method))

    fingerprint = _fingerprint(out)
    # Nothing from the source may leak into the output: Pillow's JPEG writer copies a source
    # `comment`, so drop the whole info dict; exif, icc_profile and xmp are simply not passed.
    out.info = {}
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=False)
    width, height = out.size
    return NormalisedPhoto(
        jpeg=buffer.getvalue(),
        width=width,
        height=height,
        source_format=fmt,
        fingerprint=fingerprint,
    )


def _read_limited(data: bytes | BinaryIO | IO[bytes], max_bytes: int) -> tuple[bytes, bool]:
    """The source bytes, reading at most one byte past the limit; and whether the size is exact."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), True
    chunks: list[bytes] = []
    remaining = max_bytes + 1
    while remaining > 0:
        chunk = data.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    raw = b"".join(chunks)
    return raw, len(raw) <= max_bytes


def _sniff(head: bytes, label: str) -> str:
    """The format by magic number; unsupported or non-image content is refused here."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brands = _ftyp_brands(head)
        major = head[8:12]
        if major in _HEIF_BRANDS and not (major in (b"mif1", b"msf1") and brands & _AVIF_BRANDS):
            return "HEIF"
        if major in _AVIF_BRANDS or brands & _AVIF_BRANDS:
            raise _unsupported("an AVIF image", label)
        raise _not_an_image(label, "a video")

    kind = _unsupported_kind(head)
    if kind is not None:
        raise _unsupported(kind, label)
    raise _not_an_image(label, _non_image_kind(head))


def _ftyp_brands(head: bytes) -> set[bytes]:
    """Major and compatible brands of an ISO-BMFF `ftyp` box (size, 'ftyp', major, minor, ...)."""
    size = int.from_bytes(head[:4], "big")
    end = min(max(size, 16), len(head))
    return {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}


def _unsupported_kind(head: bytes) -> str | None:
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "a GIF image"
    # 'BM' alone is too weak (text can start with it): also require a known DIB header size.
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return "a BMP image"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "a TIFF or camera RAW file"
    if head[:4] == b"8BPS":
        return "a Photoshop (PSD) file"
    if head[:4] == b"\x00\x00\x01\x00":
        return "an icon (ICO) file"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "a JPEG XL image"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "a JPEG 2000 image"
    return None


def _non_image_kind(head: bytes) -> str | None:
    """A hint naming what the file looks like, so the message is actionable."""
    if head.startswith(b"%PDF-"):
        return "a PDF document"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "a ZIP archive or office document"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut by the sniff window is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if "<svg" in lowered:
        return "an SVG drawing"
    if lowered.startswith(("<!doctype html", "<html")) or "<html" in lowered:
        return "an HTML web page"
    if all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return "a text file"
    return None


def _header_size(fmt: str, raw: bytes) -> tuple[int, int] | None:
    """Canvas size read straight from a PNG IHDR or a WebP VP8/VP8L/VP8X header, if present."""
    if fmt == "PNG" and raw[12:16] == b"IHDR" and len(raw) >= 24:
        return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    if fmt == "WEBP" and len(raw) >= 30:
        chunk = raw[12:16]
        if chunk == b"VP8X":  # 24-bit canvas width-1 and height-1, little endian
            width = int.from_bytes(raw[24:27], "little") + 1
            return width, int.from_bytes(raw[27:30], "little") + 1
        if chunk == b"VP8L" and raw[20] == 0x2F:  # 14-bit width-1 and height-1 after the signature
            bits = int.from_bytes(raw[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 " and raw[23:26] == b"\x9d\x01\x2a":  # key frame start code
            return (
                int.from_bytes(raw[26:28], "little") & 0x3FFF,
                int.from_bytes(raw[28:30], "little") & 0x3FFF,
            )
    return None


def _check_jpeg_structure(raw: bytes, label: str) -> None:
    """Count the primary image's scans, segments and header padding, stopping at a cap.

    Segments are skipped by their length and entropy-coded data by a regex search, so this costs
    at most a few thousand steps whatever the file holds. A structure that does not parse is left
    to the decoder, which refuses it as damaged.
    """
    pos, scans, segments, padding = 2, 0, 0, 0  # after SOI
    while (found := _JPEG_MARKER.search(raw, pos)) is not None:
        if scans == 0:  # before the first scan, Pillow walks the gap byte by byte
            padding += found.start() - pos
            if padding > _JPEG_MAX_HEADER_PADDING:
                raise _too_complex(
                    label,
                    f"a JPEG with more than {_JPEG_MAX_HEADER_PADDING:,} bytes of padding "
                    "between its header segments",
                )
        marker, pos = raw[found.start() + 1], found.start() + 2
        if marker == 0xD9:  # EOI: the end of the primary image (MPF frames may follow)
            return
        segments += 1
        if segments > _JPEG_MAX_SEGMENTS:
            raise _too_complex(label, f"a JPEG with more than {_JPEG_MAX_SEGMENTS:,} segments")
        if marker == 0xDA:
            scans += 1
            if scans > _JPEG_MAX_SCANS:
                raise _too_complex(
                    label,
                    f"a JPEG with more than {_JPEG_MAX_SCANS} scans (photos from cameras and "
                    "apps have at most about 10)",
                )
        if marker not in _JPEG_STANDALONE:
            length = int.from_bytes(raw[pos : pos + 2], "big")
            if length < 2:
                return
            pos += length


def _check_png_structure(raw: bytes, label: str) -> None:
    """Count the chunks (Pillow handles each in Python) and the colour profiles, up to IEND."""
    pos, chunks, profiles = 8, 0, 0  # after the signature
    while pos + 8 <= len(raw):
        kind = raw[pos + 4 : pos + 8]
        chunks += 1
        if chunks > _PNG_MAX_CHUNKS:
            raise _too_complex(label, f"a PNG made of more than {_PNG_MAX_CHUNKS:,} chunks")
        if kind == b"iCCP":
            profiles += 1
            if profiles > 1:
                raise _too_complex(label, "a PNG with more than one colour profile (iCCP chunk)")
        if kind == b"IEND":
            return
        pos += 12 + int.from_bytes(raw[pos : pos + 4], "big")  # length, type, data, CRC


def _check_pixels(size: tuple[int, int], fmt: str, limits: PhotoLimits, label: str) -> None:
    width, height = size
    cap = limits.max_pixels
    allowed = f"each photo can have at most {cap:,} pixels"
    if fmt in _FULL_SIZE_DECODES:
        cap //= 2
        allowed = (
            f"each PNG or WebP photo can have at most {cap:,} pixels "
            f"(a JPEG or HEIC {limits.max_pixels:,})"
        )
    if width * height > cap:
        raise PhotoRejected(
            "photo_too_many_pixels",
            422,
            f"{label} is {width}x{height} px ({width * height:,} pixels); {allowed}. "
            "Resize it and upload it again.",
            label=label,
        )


class _BudgetedSource(io.BytesIO):
    """The photo's bytes as Pillow reads them, refusing any read past the decode budget.

    Pillow's JPEG and PNG decoders are fed by these reads (64 kB at a time), so a decode that
    runs long stops at its next read instead of running into the function's timeout.
    """

    def __init__(self, raw: bytes, seconds: float, label: str) -> None:
        super().__init__(raw)
        self._deadline = monotonic() + seconds
        self._seconds = seconds
        self._label = label

    def read(self, size: int | None = -1, /) -> bytes:
        if monotonic() > self._deadline:
            raise PhotoRejected(
                "photo_too_slow",
                422,
                f"{self._label} takes too long to decode (we stop after {self._seconds:g} s); "
                + _EXPORT_AGAIN,
                label=self._label,
            )
        return super().read(size)


def _open(raw: bytes, fmt: str, limits: PhotoLimits, label: str) -> ImageFile.ImageFile:
    """Parse the header only (no pixels), with exactly the plugin the magic number named."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors at twice the ceiling) about decompression bombs; both
            # become our own rejection instead of a log line or a 500.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            source = _BudgetedSource(raw, limits.max_decode_seconds, label)
            return Image.open(source, formats=[fmt])
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(
            "photo_too_many_pixels",
            422,
            f"{label} has more than {limits.max_pixels:,} pixels, the most a photo can have; "
            "resize it and upload it again.",
            label=label,
        ) from None
    except MemoryError:
        raise
    except Exception:  # a header Pillow cannot parse is a damaged file from the user's view
        raise _corrupt(label) from None


@functools.cache
def _register_heif_opener() -> None:
    """Import pillow_heif only when a HEIF arrives: it roughly doubles Pillow's import time."""
    import pillow_heif

    # We decode the primary image only: skip parsing thumbnails, depth and auxiliary images.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def _orientation_before_load(img: Image.Image) -> int:
    # PNG's getexif() decodes the whole image when the eXIf chunk follows the pixels; only the
    # message depends on this, so skip it then.
    return _read_orientation(img) if "exif" in img.info else 1


def _read_orientation(img: Image.Image) -> int:
    """EXIF (or XMP) orientation 1-8; damaged metadata counts as upright, not as a bad photo."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _oriented(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _capped_size(size: tuple[int, int], max_long_side: int) -> tuple[int, int]:
    width, height = size
    long = max(width, height)
    if long <= max_long_side:
        return size
    scale = max_long_side / long
    if width >= height:
        return max_long_side, max(1, round(height * scale))
    return max(1, round(width * scale)), max_long_side


def _to_rgb(img: Image.Image, target: tuple[int, int], icc: bytes | None) -> Image.Image:
    """Resize to `target` and end in 8-bit RGB with alpha flattened onto white.

    Modes LANCZOS cannot filter (palette, bilevel, 16/32-bit integer) are converted first; the
    others are shrunk first, so later copies are of the small image. Each step closes the image
    it replaced, so at most one full-size decode plus the image being made is alive.
    """
    if img.mode in ("P", "PA"):
        has_alpha = img.mode == "PA" or "transparency" in img.info
        img = _replaced(img, img.convert("RGBA" if has_alpha else "RGB"))
    elif img.mode == "1":
        img = _replaced(img, img.convert("L"))
    elif img.mode.startswith(("I", "F")):
        # 16-bit greyscale PNG: Pillow's plain convert clips everything above 255 to white.
        wide = _replaced(img, img.convert("I"))
        img = _replaced(wide, wide.point(lambda v: v * (1 / 256)).convert("L"))

    if img.size != target:
        # At 3x the target or more, box-reduce by an integer factor first (as JPEG's draft decode
        # does): a third of the time for a 48 MP HEIC, under 0.4 levels of difference on average.
        resized = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
        img = _replaced(img, resized)

    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = _replaced(img, img.convert("RGBA"))
        img = Image.new("RGB", rgba.size, _WHITE)
        img.paste(rgba, mask=rgba)
        rgba.close()
    elif icc is not None and img.mode in ("RGB", "CMYK"):
        converted = _icc_to_srgb(img, icc)
        if converted is not None:
            return _replaced(img, converted)
    if img.mode != "RGB":
        img = _replaced(img, img.convert("RGB"))
    return img


def _replaced(old: Image.Image, new: Image.Image) -> Image.Image:
    """Free `old`'s pixels now rather than whenever the last reference goes."""
    if new is not old:
        old.close()
    return new


def _icc_to_srgb(img: Image.Image, icc: bytes) -> Image.Image | None:
    """Apply the embedded profile (Display P3 on iPhones, CMYK press profiles) before we drop it.

    Stripping a profile without converting shifts the colours (skin tones) of the training
    photos. A broken or mismatched profile gives None: the photo is used without it, not refused.
    """
    from PIL import ImageCms  # only photos that carry a profile pay for LittleCMS

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(img, source, _srgb_profile(), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _fingerprint(img: Image.Image) -> str:
    thumb = img.resize((_FINGERPRINT_SIDE, _FINGERPRINT_SIDE), Image.Resampling.BOX).convert("L")
    return hashlib.sha256(thumb.tobytes()).hexdigest()


def _too_complex(label: str, description: str) -> PhotoRejected:
    return PhotoRejected(
        "photo_too_complex",
        422,
        f"{label} is {description}, which would take too long to decode; {_EXPORT_AGAIN}",
        label=label,
    )


def _corrupt(label: str) -> PhotoRejected:
    return PhotoRejected(
        "corrupt_image",
        422,
        f"{label} could not be read completely: the file is damaged or was cut off during "
        "upload. Upload it again, or export a fresh copy of the photo.",
        label=label,
    )


def _unsupported(kind: str, label: str) -> PhotoRejected:
    return PhotoRejected(
        "unsupported_image_type",
        415,
        f"{label} is {kind}, which we do not accept; upload {_ACCEPTED_HUMAN} instead.",
        label=label,
    )


def _not_an_image(label: str, kind: str | None) -> PhotoRejected:
    looks = f" (it looks like {kind})" if kind else ""
    return PhotoRejected(
        "not_an_image",
        415,
        f"{label} is not an image{looks}; upload {_ACCEPTED_HUMAN}.",
        label=label,
    )
