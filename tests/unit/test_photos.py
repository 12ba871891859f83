"""shared.photos.normalise: what a photo must be, what we make of it, and how we say no.

Inputs are built here (sample_photos, Pillow, or hand-made bytes); nothing is timed.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms, ImageOps, JpegImagePlugin, PngImagePlugin

from devstack.sample_photos import make_photo
from shared.photos import normalise as photos
from shared.photos.normalise import NormalisedPhoto, normalise_photo
from shared.photos.rules import (
    PHOTO_CONTENT_TYPE,
    PhotoLimits,
    PhotoRejected,
    photo_label,
    photo_object_name,
)
from tests.corpus.inputs import (
    jpeg_with_empty_scans,
    jpeg_with_empty_segments,
    jpeg_with_header_padding,
    png_in_chunks_of,
    png_with_colour_profiles,
)

REPO = Path(__file__).resolve().parents[2]
LIMITS = PhotoLimits()
LABEL = 'Photo 2 ("beach.jpg")'


def normalise(data: bytes, limits: PhotoLimits = LIMITS) -> NormalisedPhoto:
    return normalise_photo(data, limits, label=LABEL)


def rejected(data: bytes, limits: PhotoLimits = LIMITS) -> PhotoRejected:
    with pytest.raises(PhotoRejected) as caught:
        normalise(data, limits)
    assert caught.value.label == LABEL
    assert caught.value.message.startswith(LABEL)
    assert str(caught.value) == caught.value.message
    return caught.value


def decoded(photo: NormalisedPhoto) -> Image.Image:
    img = Image.open(io.BytesIO(photo.jpeg))
    img.load()
    return img


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_header(
    width: int, height: int, bit_depth: int, colour_type: int, rows: bytes
) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def jpeg_markers(data: bytes) -> list[int]:
    """Marker bytes of a JPEG's header segments, up to and including SOS."""
    assert data[:2] == b"\xff\xd8"
    markers, pos = [], 2
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            return markers
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")


def with_jpeg_dimensions(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the size in a baseline JPEG's SOF0 header, leaving the (too small) scan as is."""
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def insert_app1(jpeg: bytes, exif: Image.Exif) -> bytes:
    """The same JPEG with an EXIF segment spliced in: other metadata, identical pixels."""
    payload = exif.tobytes()
    assert payload.startswith(b"Exif\x00\x00")
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "S"
    gps[ExifTags.GPS.GPSLatitude] = (33.0, 51.0, 54.0)
    return exif


# --------------------------------------------------------------------------------------------
# Accepted formats and the shape of the output


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_accepts_each_supported_format_and_outputs_plain_rgb_jpeg(fmt: str) -> None:
    photo = normalise(make_photo(1200, 800, seed=1, fmt=fmt))

    img = decoded(photo)
    assert photo.source_format == fmt
    assert img.format == "JPEG" and img.mode == "RGB"
    assert (photo.width, photo.height) == img.size == (1200, 800)
    assert PHOTO_CONTENT_TYPE == "image/jpeg"
    assert len(photo.fingerprint) == 64


def test_format_is_detected_from_content_not_label() -> None:
    photo = normalise_photo(make_photo(600, 600, fmt="PNG"), LIMITS, label='Photo 1 ("a.heic")')
    assert photo.source_format == "PNG"


def test_output_is_baseline_quality_90_with_no_metadata_segments() -> None:
    source = make_photo(1200, 800, seed=2, exif_orientation=1, gps=True)
    photo = normalise(source)

    markers = jpeg_markers(photo.jpeg)
    assert 0xC0 in markers, "baseline SOF0"
    assert 0xC2 not in markers, "not progressive"
    assert [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE] == [], "no APPn/COM but JFIF"
    reference = Image.open(io.BytesIO(encode(Image.new("RGB", (64, 64)), "JPEG", quality=90)))
    assert isinstance(reference, JpegImagePlugin.JpegImageFile)
    img = decoded(photo)
    assert isinstance(img, JpegImagePlugin.JpegImageFile)
    assert img.quantization == reference.quantization
    assert "progressive" not in img.info and "progression" not in img.info


def test_gps_exif_comment_xmp_and_icc_are_all_gone() -> None:
    base = Image.open(io.BytesIO(make_photo(1000, 700, seed=3)))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret-place/></x:xmpmeta>'
    exif = gps_exif()
    source = encode(
        base, "JPEG", exif=exif, comment=b"secret note", icc_profile=srgb, xmp=xmp, quality=95
    )
    assert Image.open(io.BytesIO(source)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    photo = normalise(source)

    img = decoded(photo)
    assert len(img.getexif()) == 0
    for key in ("exif", "icc_profile", "xmp", "comment"):
        assert key not in img.info
    for needle in (b"Exif", b"secret", b"GPS", b"Phone", b"xmpmeta"):
        assert needle not in photo.jpeg


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_metadata_is_stripped_from_every_source_format(fmt: str) -> None:
    photo = normalise(make_photo(800, 600, seed=4, fmt=fmt, gps=True))
    img = decoded(photo)
    assert len(img.getexif()) == 0 and "exif" not in img.info


def test_broken_icc_profile_is_ignored_not_fatal() -> None:
    source = encode(Image.open(io.BytesIO(make_photo(600, 600))), "JPEG", icc_profile=b"junk" * 40)
    photo = normalise(source)
    assert "icc_profile" not in decoded(photo).info


# --------------------------------------------------------------------------------------------
# Orientation, size cap and pixel modes


def test_orientation_6_turns_a_1200x800_photo_into_800x1200() -> None:
    photo = normalise(make_photo(1200, 800, seed=5, exif_orientation=6))
    assert (photo.width, photo.height) == (800, 1200)
    assert decoded(photo).size == (800, 1200)


def test_orientation_is_applied_after_capping_the_long_side() -> None:
    photo = normalise(make_photo(3000, 2000, seed=5, exif_orientation=6))
    assert (photo.width, photo.height) == (1365, 2048)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    tagged = make_photo(900, 600, seed=6, fmt="PNG", exif_orientation=orientation)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(tagged)))
    upright.info.pop("exif", None)
    reference = normalise(encode(upright, "PNG"))

    photo = normalise(tagged)

    assert (photo.width, photo.height) == (reference.width, reference.height)
    assert photo.fingerprint == reference.fingerprint


def test_heic_orientation_is_applied_once() -> None:
    # pillow_heif applies the HEIF rotation and resets the EXIF tag: no double rotation.
    photo = normalise(make_photo(1200, 800, seed=7, fmt="HEIF", exif_orientation=6))
    assert (photo.width, photo.height) == (800, 1200)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((4096, 3072), (2048, 1536)), ((3000, 1000), (2048, 683)), ((2048, 600), (2048, 600))],
)
def test_long_side_is_capped_to_2048(size: tuple[int, int], expected: tuple[int, int]) -> None:
    photo = normalise(make_photo(*size, seed=8, fmt="PNG" if size[0] == 3000 else "JPEG"))
    assert (photo.width, photo.height) == expected == decoded(photo).size


def test_large_jpeg_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    drafts: list[object] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: object) -> object:
        result = original(self, mode, size)  # type: ignore[arg-type]
        drafts.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    photo = normalise(make_photo(5000, 3750, seed=9))

    assert drafts == [(2500, 1875)], "libjpeg scaled the decode by 1/2 before LANCZOS"
    assert (photo.width, photo.height) == (2048, 1536)


def test_cmyk_jpeg_becomes_rgb_with_similar_colours() -> None:
    rgb = normalise(make_photo(800, 600, seed=10))
    photo = normalise(make_photo(800, 600, seed=10, mode="CMYK"))
    img = decoded(photo)
    assert img.mode == "RGB"
    a, b = img.getpixel((400, 300)), decoded(rgb).getpixel((400, 300))
    assert isinstance(a, tuple) and isinstance(b, tuple)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 24


def test_16_bit_greyscale_png_is_scaled_not_clipped() -> None:
    source = encode(Image.new("I;16", (600, 600), 30000), "PNG")
    assert Image.open(io.BytesIO(source)).mode == "I;16"
    value = decoded(normalise(source)).getpixel((300, 300))
    assert isinstance(value, tuple)
    assert all(abs(channel - 30000 // 256) <= 2 for channel in value)


def test_16_bit_rgb_png_becomes_8_bit_rgb() -> None:
    pixel = struct.pack(">HHH", 0xFF00, 0x8000, 0x0000)
    rows = (b"\x00" + pixel * 600) * 600
    photo = normalise(png_with_header(600, 600, 16, 2, rows))
    value = decoded(photo).getpixel((300, 300))
    assert isinstance(value, tuple)
    assert all(abs(x - y) <= 3 for x, y in zip(value, (255, 128, 0), strict=True))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_flattened_onto_white(mode: str) -> None:
    photo = normalise(make_photo(800, 600, seed=11, fmt="PNG", mode=mode))
    img = decoded(photo)
    corner = img.getpixel((2, 2))
    assert img.mode == "RGB" and isinstance(corner, tuple)
    assert min(corner) >= 245


def test_palette_png_with_transparent_index_is_flattened_onto_white() -> None:
    img = Image.new("P", (600, 600), 0)
    img.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
    img.paste(1, (100, 100, 500, 500))
    photo = normalise(encode(img, "PNG", transparency=0))
    out = decoded(photo)
    corner, middle = out.getpixel((5, 5)), out.getpixel((300, 300))
    assert isinstance(corner, tuple) and isinstance(middle, tuple)
    assert min(corner) >= 245 and middle[0] > 150 and middle[1] < 80


@pytest.mark.parametrize("mode", ["L", "P", "1", "I;16"])
def test_other_pixel_modes_become_rgb(mode: str) -> None:
    assert decoded(normalise(make_photo(640, 640, seed=12, fmt="PNG", mode=mode))).mode == "RGB"


def test_jpeg_with_extra_mpf_frame_is_a_still_photo() -> None:
    # Phones write gain/depth maps as a second MPF frame; Pillow opens those JPEGs as MPO.
    first = Image.open(io.BytesIO(make_photo(800, 600, seed=13)))
    second = Image.open(io.BytesIO(make_photo(400, 300, seed=14)))
    source = encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(source)).format == "MPO"

    photo = normalise(source)

    assert photo.source_format == "JPEG" and (photo.width, photo.height) == (800, 600)


# --------------------------------------------------------------------------------------------
# Fingerprints


def test_fingerprint_is_stable_for_the_same_bytes() -> None:
    data = make_photo(700, 700, seed=15)
    assert normalise(data).fingerprint == normalise(data).fingerprint


def test_fingerprint_ignores_metadata_in_a_jpeg() -> None:
    plain = make_photo(900, 700, seed=16)
    tagged = insert_app1(plain, gps_exif())
    assert tagged != plain and Image.open(io.BytesIO(tagged)).getexif()

    same, other = normalise(plain), normalise(tagged)

    assert same.fingerprint == other.fingerprint
    assert b"GPS" not in other.jpeg


def test_fingerprint_ignores_metadata_and_container_for_lossless_sources() -> None:
    img = Image.open(io.BytesIO(make_photo(900, 700, seed=17, fmt="PNG")))
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "holiday, do not share")
    variants = [
        encode(img, "PNG"),
        encode(img, "PNG", pnginfo=text, exif=gps_exif(), compress_level=1),
        encode(img, "WEBP", lossless=True, exif=gps_exif()),
    ]
    fingerprints = {normalise(data).fingerprint for data in variants}
    assert len(fingerprints) == 1


def test_fingerprint_differs_between_photos() -> None:
    fingerprints = {normalise(make_photo(800, 800, seed=seed)).fingerprint for seed in range(6)}
    assert len(fingerprints) == 6


# --------------------------------------------------------------------------------------------
# Rejections: code, status and a message naming the photo and the limit


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return out.getvalue()


def animated(fmt: str) -> bytes:
    frames = [Image.open(io.BytesIO(make_photo(600, 600, seed=s, fmt="PNG"))) for s in (1, 2)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


NOT_IMAGES: dict[str, Callable[[], bytes]] = {
    "svg": lambda: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>',
    "html": lambda: b"<!DOCTYPE html><html><body>hi</body></html>",
    "pdf": lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    "zip": zip_bytes,
    "text": lambda: b"just some notes about my photos\n",
    "binary": lambda: bytes((i * 37 + 11) % 256 for i in range(4096)),
    "mp4": lambda: b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64,
}


@pytest.mark.parametrize("kind", sorted(NOT_IMAGES))
def test_non_images_are_415_not_an_image(kind: str) -> None:
    error = rejected(NOT_IMAGES[kind]())
    assert (error.code, error.status) == ("not_an_image", 415)
    assert "JPEG, PNG, WebP or HEIC" in error.message


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "AVIF"])
def test_other_image_types_are_415_unsupported(fmt: str) -> None:
    error = rejected(make_photo(600, 600, seed=1, fmt=fmt))
    assert (error.code, error.status) == ("unsupported_image_type", 415)
    assert fmt in error.message


def test_zero_bytes_is_empty_file() -> None:
    error = rejected(b"")
    assert (error.code, error.status) == ("empty_file", 422)


def test_bytes_over_the_limit_are_413() -> None:
    data = make_photo(800, 800, seed=1)
    limits = PhotoLimits(max_bytes=len(data) - 1)
    error = rejected(data, limits)
    assert (error.code, error.status) == ("photo_too_large", 413)
    assert "at most" in error.message and "MB" in error.message


def test_default_byte_limit_is_15_mb() -> None:
    error = rejected(b"\xff\xd8\xff" + b"\x00" * (15 * 1024 * 1024))
    assert (error.code, error.status) == ("photo_too_large", 413)
    assert "at most 15 MB" in error.message


def test_a_stream_is_read_only_up_to_the_limit() -> None:
    class Endless(io.RawIOBase):
        served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            buffer[:] = b"\xff" * len(buffer)
            self.served += len(buffer)
            return len(buffer)

    stream = Endless()
    with pytest.raises(PhotoRejected) as caught:
        normalise_photo(stream, PhotoLimits(max_bytes=100_000), label=LABEL)  # type: ignore[arg-type]
    assert caught.value.code == "photo_too_large"
    assert stream.served <= 100_001


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_truncated_files_are_corrupt(fmt: str) -> None:
    data = make_photo(800, 800, seed=1, fmt=fmt)
    error = rejected(data[: len(data) * 2 // 3])
    assert (error.code, error.status) == ("corrupt_image", 422)


def test_garbage_after_a_jpeg_signature_is_corrupt() -> None:
    error = rejected(b"\xff\xd8\xff\xe0" + b"\x00" * 500)
    assert (error.code, error.status) == ("corrupt_image", 422)


def test_a_1x1_png_is_too_small() -> None:
    error = rejected(encode(Image.new("RGB", (1, 1)), "PNG"))
    assert (error.code, error.status) == ("photo_too_small", 422)


def test_too_small_message_names_size_and_limit() -> None:
    error = rejected(make_photo(400, 300, seed=1))
    assert error.message == (
        'Photo 2 ("beach.jpg") is 400x300 px; each photo needs a short side of at least 512 px.'
    )


def test_too_small_message_shows_the_photo_as_seen() -> None:
    error = rejected(make_photo(400, 300, seed=1, exif_orientation=6))
    assert "is 300x400 px" in error.message


def test_an_extreme_panorama_is_too_narrow_once_capped() -> None:
    error = rejected(make_photo(8000, 600, seed=1))
    assert (error.code, error.status) == ("photo_too_narrow", 422)
    assert "8000x600" in error.message and "4:1" in error.message


def test_png_header_claiming_60000x60000_is_refused_before_decoding() -> None:
    error = rejected(png_with_header(60000, 60000, 8, 2, b"\x00\x00\x00\x00"))
    assert (error.code, error.status) == ("photo_too_many_pixels", 422)
    assert "60000x60000" in error.message and "50,000,000" in error.message


def test_webp_header_claiming_a_huge_canvas_is_refused_before_decoding() -> None:
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    chunk += (16383).to_bytes(3, "little") * 2
    data = b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk
    error = rejected(data)
    assert (error.code, error.status) == ("photo_too_many_pixels", 422)
    assert "16384x16384" in error.message


@pytest.mark.parametrize(
    "size",
    [
        (8000, 7000),  # over our 50 MP cap, under Pillow's bomb warning
        (10000, 10000),  # Pillow warns: the warning becomes our error
        (65000, 65000),  # Pillow raises DecompressionBombError: also our error
    ],
)
def test_jpeg_header_with_too_many_pixels_is_refused(size: tuple[int, int]) -> None:
    data = with_jpeg_dimensions(make_photo(600, 600, seed=1), *size)
    error = rejected(data)
    assert (error.code, error.status) == ("photo_too_many_pixels", 422)
    assert "50,000,000" in error.message


def test_pixel_cap_follows_the_limits() -> None:
    error = rejected(make_photo(1200, 1000, seed=1), PhotoLimits(max_pixels=1_000_000))
    assert error.code == "photo_too_many_pixels"
    assert "1200x1000" in error.message and "1,000,000" in error.message


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_get_half_the_pixels(fmt: str) -> None:
    # They decode every pixel at full size; a JPEG or HEIC of the same size is fine.
    limits = PhotoLimits(max_pixels=400_000)
    error = rejected(make_photo(600, 520, seed=1, fmt=fmt), limits)
    assert (error.code, error.status) == ("photo_too_many_pixels", 422)
    assert "PNG or WebP" in error.message and "200,000" in error.message
    assert "400,000" in error.message
    for other in ("JPEG", "HEIF"):
        assert normalise(make_photo(600, 520, seed=1, fmt=other), limits).width == 600


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animations_are_refused(fmt: str) -> None:
    error = rejected(animated(fmt))
    assert (error.code, error.status) == ("animated_image", 422)
    assert "2 frames" in error.message


# --------------------------------------------------------------------------------------------
# Decode cost: structure counted before decoding, a time budget while decoding (issue 14)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda: jpeg_with_empty_scans(5000), id="5000_empty_scans"),
        pytest.param(lambda: jpeg_with_empty_scans(23), id="one_scan_over_the_cap"),
        pytest.param(lambda: jpeg_with_empty_segments(100_000), id="100000_segments"),
        pytest.param(lambda: jpeg_with_header_padding(100_000), id="fill_bytes"),
        pytest.param(lambda: jpeg_with_header_padding(2000, b"\x00"), id="junk_bytes"),
        pytest.param(lambda: png_in_chunks_of(10), id="png_10_byte_chunks"),
        pytest.param(lambda: png_with_colour_profiles(2), id="png_two_profiles"),
    ],
)
def test_costly_structure_is_refused_before_decoding(
    data: Callable[[], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*args: object) -> None:
        raise AssertionError("the photo was opened for decoding")

    photo = data()
    monkeypatch.setattr(photos, "_open", no_decoding)
    error = rejected(photo)
    assert (error.code, error.status) == ("photo_too_complex", 422)
    assert "standard JPEG" in error.message


def test_scan_cap_message_names_the_cap() -> None:
    error = rejected(jpeg_with_empty_scans(5000))
    assert "more than 32 scans" in error.message


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda: jpeg_with_empty_scans(22), id="32_scans"),
        pytest.param(lambda: jpeg_with_empty_segments(900), id="900_segments"),
        pytest.param(lambda: jpeg_with_header_padding(1000), id="1000_fill_bytes"),
        pytest.param(
            lambda: make_photo(600, 600, seed=3, mode="CMYK", progressive=True), id="cmyk"
        ),
        pytest.param(lambda: make_photo(600, 600, seed=4, mode="L", progressive=True), id="grey"),
        pytest.param(lambda: png_in_chunks_of(100), id="png_100_byte_chunks"),
        pytest.param(lambda: png_with_colour_profiles(1), id="png_one_profile"),
    ],
)
def test_structure_at_or_under_the_caps_is_accepted(data: Callable[[], bytes]) -> None:
    assert normalise(data()).width == 600


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_decode_past_its_budget_stops_at_its_next_read(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in clock: one "second" per 100 kB read, so the budget runs out part-way through.
    data = make_photo(1600, 1200, seed=90, fmt=fmt)
    position = [0]
    read = photos._BudgetedSource.read

    def counting_read(source: photos._BudgetedSource, size: int | None = -1, /) -> bytes:
        position[0] = source.tell()
        return read(source, size)

    monkeypatch.setattr(photos._BudgetedSource, "read", counting_read)
    monkeypatch.setattr(photos, "monotonic", lambda: position[0] / 100_000)
    error = rejected(data, PhotoLimits(max_decode_seconds=3))
    assert (error.code, error.status) == ("photo_too_slow", 422)
    assert "3 s" in error.message
    assert 300_000 < position[0] < len(data) - 65_536  # stopped in the middle of the pixels

    position[0] = 0
    assert normalise(data, PhotoLimits(max_decode_seconds=60)).width == 1600


# --------------------------------------------------------------------------------------------
# Inputs, names, limits


def test_accepts_file_objects() -> None:
    data = make_photo(700, 700, seed=18)
    expected = normalise(data).fingerprint
    with tempfile.SpooledTemporaryFile(max_size=1024) as spool:
        spool.write(data)
        spool.seek(0)
        assert normalise_photo(spool, LIMITS, label=LABEL).fingerprint == expected
    assert normalise_photo(io.BytesIO(data), LIMITS, label=LABEL).fingerprint == expected


def test_photo_object_names() -> None:
    assert [photo_object_name(i) for i in range(1, 7)] == [f"0{i}.jpg" for i in range(1, 7)]
    for bad in (0, -1, 100):
        with pytest.raises(ValueError):
            photo_object_name(bad)


def test_photo_label_tidies_untrusted_names() -> None:
    assert photo_label(2, "beach.jpg") == 'Photo 2 ("beach.jpg")'
    assert photo_label(3, None) == "Photo 3"
    assert photo_label(1, "C:\\Users\\me\\sel\nfie\x00.JPG") == 'Photo 1 ("selfie.JPG")'
    assert photo_label(1, 'a"b.png') == 'Photo 1 ("a\'b.png")'
    assert len(photo_label(1, "x" * 500)) < 80


@pytest.mark.parametrize(
    "bad",
    [{"min_short_side": 0}, {"max_bytes": -1}, {"min_short_side": 4000, "max_long_side": 2048}],
)
def test_nonsense_limits_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PhotoLimits(**bad)


def test_heif_support_is_loaded_only_when_a_heif_arrives(tmp_path: Path) -> None:
    # Import cost is checked by behaviour, not by a clock: JPEG work must not import pillow_heif.
    heic = tmp_path / "photo.heic"
    heic.write_bytes(make_photo(600, 600, seed=19, fmt="HEIF"))
    script = f"""
import io, sys
from PIL import Image
from shared.photos.rules import PhotoLimits
from shared.photos.normalise import normalise_photo
assert "pillow_heif" not in sys.modules, "imported eagerly"
jpeg = io.BytesIO()
Image.new("RGB", (600, 600), (10, 20, 30)).save(jpeg, "JPEG")
normalise_photo(jpeg.getvalue(), PhotoLimits(), label="Photo 1")
assert "pillow_heif" not in sys.modules, "imported for a JPEG"
photo = normalise_photo(open({str(heic)!r}, "rb"), PhotoLimits(), label="Photo 2")
assert "pillow_heif" in sys.modules and photo.source_format == "HEIF"
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
