"""The hostile-input corpus: photos people (or attackers) really send, each with its documented
answer. Every input is made here from code (no committed binaries), small unless size matters.

`REFUSED`: a bad photo among good ones, or a bad set of photos. Each gets its 4xx and code on
both upload paths, and leaves no row and no object behind. Where the photo is the problem the
message names it ("Photo 3 ...").

`ACCEPTED`: inputs that look hostile but are photos (a wrong extension, traversal or unicode in
the file name, CMYK, 16-bit, HEIC, huge EXIF, a zip glued to a JPEG): stored as plain `NN.jpg`
JPEGs without metadata, whatever the name or declared type said.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from PIL import ExifTags, Image

from devstack.sample_photos import add_empty_scans, make_photo
from tests.corpus.upload_paths import Photo

MiB = 1024 * 1024


@functools.cache
def good(index: int) -> bytes:
    """Distinct small photos that pass every check."""
    return make_photo(600, 600, seed=7000 + index)


def with_good(bad: Photo) -> list[Photo]:
    """Two good photos, then the bad one: the message must name photo 3."""
    return [Photo("first.jpg", good(1)), Photo("second.jpg", good(2)), bad]


def goods(count: int) -> list[Photo]:
    return [Photo(f"photo{i}.jpg", good(i)) for i in range(1, count + 1)]


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data), in file order."""
    pos, chunks = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width`x`height` (a decompression bomb's calling card)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small baseline JPEG with its SOF0 size rewritten."""
    data = good(9)
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def webp_claiming_huge_canvas() -> bytes:
    chunk = (
        b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (16383).to_bytes(3, "little") * 2
    )
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def animated(fmt: str) -> bytes:
    # Small frames: the frame count is checked before the size.
    frames = [Image.open(io.BytesIO(make_photo(64, 64, seed=s, fmt="PNG"))) for s in (1, 2)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.php", "<?php system($_GET['c']); ?>")
    return out.getvalue()


def png_with_a_broken_crc() -> bytes:
    data = bytearray(make_photo(600, 600, seed=11, fmt="PNG"))
    data[data.index(b"IDAT") + 10] ^= 0xFF
    return bytes(data)


def jpeg_with_huge_exif() -> bytes:
    """60 kB of EXIF (near a segment's 64 kB limit) with GPS: accepted, and all of it dropped."""
    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = "A" * 60_000
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.5)
    img = Image.open(io.BytesIO(make_photo(600, 600, seed=12)))
    return encode(img, "JPEG", exif=exif.tobytes(), quality=90)


# Valid images whose decode costs far more than their size (issue 14): each one is accepted by a
# decoder, and refused by us before decoding.


def jpeg_with_empty_scans(count: int) -> bytes:
    """A progressive JPEG with `count` extra scans that carry no data (a pass over every block
    each: seconds of decoding per few hundred kB)."""
    return add_empty_scans(make_photo(600, 600, seed=80, progressive=True), count)


def jpeg_with_empty_segments(count: int) -> bytes:
    """`count` empty comment segments before the header (Pillow parses each in Python)."""
    data = make_photo(600, 600, seed=81)
    return data[:2] + b"\xff\xfe\x00\x02" * count + data[2:]


def jpeg_with_header_padding(count: int, pad: bytes = b"\xff") -> bytes:
    """`count` fill (0xFF) or junk bytes between two header segments (Pillow reads each alone)."""
    data = make_photo(600, 600, seed=82)
    app0_end = 4 + int.from_bytes(data[4:6], "big")
    return data[:app0_end] + pad * count + data[app0_end:]


def png_in_chunks_of(size: int) -> bytes:
    """A PNG whose pixel data is split into `size`-byte IDAT chunks."""
    data = make_photo(600, 600, seed=83, fmt="PNG")
    chunks = png_chunks(data)
    pixels = b"".join(body for kind, body in chunks if kind == b"IDAT")
    return (
        data[:8]
        + b"".join(png_chunk(kind, body) for kind, body in chunks if kind not in (b"IDAT", b"IEND"))
        + b"".join(png_chunk(b"IDAT", pixels[i : i + size]) for i in range(0, len(pixels), size))
        + png_chunk(b"IEND", b"")
    )


def png_with_colour_profiles(count: int) -> bytes:
    """`count` iCCP chunks of 1 kB, each inflating to the 1 MB Pillow allows a profile."""
    data = make_photo(600, 600, seed=84, fmt="PNG")
    (header_kind, header), *rest = png_chunks(data)
    profile = png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(bytes(1024 * 1024 - 1), 9))
    return (
        data[:8]
        + png_chunk(header_kind, header)
        + profile * count
        + b"".join(png_chunk(kind, body) for kind, body in rest)
    )


def ico() -> bytes:
    return encode(Image.new("RGB", (64, 64), (200, 40, 40)), "ICO")


@dataclass(frozen=True)
class Refused:
    photos: Callable[[], list[Photo]]
    status: int
    code: str
    names_photo: int | None = 3  # the photo the message starts with, when one is to blame


def one_bad(
    filename: str, data: Callable[[], bytes], content_type: str = "image/jpeg"
) -> Callable[[], list[Photo]]:
    return lambda: with_good(Photo(filename, data(), content_type))


def _not_image(filename: str, data: Callable[[], bytes]) -> Refused:
    return Refused(one_bad(filename, data), 415, "not_an_image")


def _unsupported(filename: str, data: Callable[[], bytes]) -> Refused:
    return Refused(one_bad(filename, data), 415, "unsupported_image_type")


def _corrupt(filename: str, data: Callable[[], bytes]) -> Refused:
    return Refused(one_bad(filename, data), 422, "corrupt_image")


def _too_complex(filename: str, data: Callable[[], bytes]) -> Refused:
    return Refused(one_bad(filename, data), 422, "photo_too_complex")


REFUSED: dict[str, Refused] = {
    # damaged files
    "truncated_jpeg": _corrupt("cut.jpg", lambda: truncated(make_photo(600, 600, seed=20))),
    "truncated_png": _corrupt(
        "cut.png", lambda: truncated(make_photo(600, 600, seed=21, fmt="PNG"))
    ),
    "truncated_webp": _corrupt(
        "cut.webp", lambda: truncated(make_photo(600, 600, seed=22, fmt="WEBP"))
    ),
    "truncated_heic": _corrupt(
        "cut.heic", lambda: truncated(make_photo(512, 512, seed=23, fmt="HEIF"))
    ),
    "jpeg_without_end_marker": _corrupt("noeoi.jpg", lambda: make_photo(600, 600, seed=24)[:-2]),
    "jpeg_signature_then_zeros": _corrupt("zeros.jpg", lambda: b"\xff\xd8\xff\xe0" + b"\x00" * 500),
    "exif_segment_longer_than_the_file": _corrupt(
        "exif.jpg", lambda: b"\xff\xd8\xff\xe1\xff\xff" + b"Exif\x00\x00" + b"\x00" * 20
    ),
    "png_with_a_broken_crc": _corrupt("crc.png", png_with_a_broken_crc),
    # not images at all, whatever the extension says
    "svg_renamed_jpg": _not_image(
        "drawing.jpg",
        lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    ),
    "html_renamed_jpg": _not_image(
        "page.jpg", lambda: b"<!DOCTYPE html><html><script>alert(1)</script></html>"
    ),
    "pdf_renamed_jpg": _not_image("doc.jpg", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
    "zip_renamed_jpg": _not_image("archive.jpg", zip_archive),
    "text_renamed_heic": _not_image("notes.heic", lambda: b"just some notes about my photos\n"),
    "elf_executable_renamed_png": _not_image(
        "run.png", lambda: b"\x7fELF\x02\x01\x01" + bytes(200)
    ),
    "mp4_video_renamed_jpg": _not_image(
        "clip.jpg", lambda: b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)
    ),
    "html_with_a_jpeg_inside": _not_image("mixed.jpg", lambda: b"<html><body>" + good(8)),
    # images of a kind we do not take
    "gif_javascript_polyglot": _unsupported("poly.jpg", lambda: b"GIF89a/*\x00\x00*/=alert(1);//"),
    "gif": _unsupported("anim.gif", lambda: make_photo(64, 64, seed=30, fmt="GIF")),
    "bmp": _unsupported("paint.bmp", lambda: make_photo(64, 64, seed=31, fmt="BMP")),
    "tiff": _unsupported("scan.tif", lambda: make_photo(64, 64, seed=32, fmt="TIFF")),
    "avif": _unsupported("new.avif", lambda: make_photo(64, 64, seed=33, fmt="AVIF")),
    "photoshop": _unsupported("layers.psd", lambda: b"8BPS\x00\x01" + bytes(100)),
    "icon": _unsupported("favicon.ico", ico),
    # photos we cannot train on
    "zero_bytes": Refused(one_bad("empty.jpg", lambda: b""), 422, "empty_file"),
    "one_by_one_png": Refused(
        one_bad("dot.png", lambda: encode(Image.new("RGB", (1, 1)), "PNG")), 422, "photo_too_small"
    ),
    "too_small_400x300": Refused(
        one_bad("small.jpg", lambda: make_photo(400, 300, seed=40)), 422, "photo_too_small"
    ),
    "panorama_too_narrow": Refused(
        one_bad("pano.jpg", lambda: make_photo(2200, 520, seed=41)), 422, "photo_too_narrow"
    ),
    "png_header_60000x60000": Refused(
        one_bad("bomb.png", lambda: png_claiming(60000, 60000)), 422, "photo_too_many_pixels"
    ),
    "jpeg_header_65000x65000": Refused(
        one_bad("bomb.jpg", lambda: jpeg_claiming(65000, 65000)), 422, "photo_too_many_pixels"
    ),
    "webp_header_16384x16384": Refused(
        one_bad("bomb.webp", webp_claiming_huge_canvas), 422, "photo_too_many_pixels"
    ),
    "animated_webp": Refused(
        one_bad("moving.webp", lambda: animated("WEBP")), 422, "animated_image"
    ),
    "animated_png": Refused(one_bad("moving.png", lambda: animated("PNG")), 422, "animated_image"),
    # cheap to send, costly to decode
    "progressive_jpeg_with_5000_empty_scans": _too_complex(
        "scans.jpg", lambda: jpeg_with_empty_scans(5000)
    ),
    "jpeg_with_100000_empty_segments": _too_complex(
        "segments.jpg", lambda: jpeg_with_empty_segments(100_000)
    ),
    "jpeg_with_100_kb_of_header_padding": _too_complex(
        "padded.jpg", lambda: jpeg_with_header_padding(100_000)
    ),
    "png_in_10_byte_chunks": _too_complex("chunks.png", lambda: png_in_chunks_of(10)),
    "png_with_1000_colour_profiles": _too_complex(
        "profiles.png", lambda: png_with_colour_profiles(1000)
    ),
    # a bad set
    "the_same_photo_twice": Refused(
        lambda: with_good(Photo("again.jpg", good(1))), 422, "duplicate_photo"
    ),
    "the_same_picture_with_other_metadata": Refused(
        lambda: [
            Photo("a.jpg", make_photo(600, 600, seed=50)),
            Photo("b.jpg", make_photo(600, 600, seed=51)),
            Photo("a-gps.jpg", make_photo(600, 600, seed=50, gps=True)),
        ],
        422,
        "duplicate_photo",
    ),
    "seven_photos": Refused(lambda: goods(7), 422, "too_many_photos", names_photo=None),
    "two_photos": Refused(lambda: goods(2), 422, "too_few_photos", names_photo=None),
}


def _cmyk() -> bytes:
    return make_photo(600, 600, seed=60, mode="CMYK")


ACCEPTED: dict[str, Callable[[], list[Photo]]] = {
    "real_heic_stored_sideways": lambda: with_good(
        Photo("IMG_0001.HEIC", make_photo(600, 520, seed=61, fmt="HEIF", exif_orientation=6), "")
    ),
    "cmyk_jpeg": lambda: with_good(Photo("print.jpg", _cmyk())),
    "sixteen_bit_png": lambda: with_good(
        Photo("deep.png", make_photo(600, 600, seed=62, fmt="PNG", mode="I;16"), "image/png")
    ),
    "png_with_a_jpg_extension": lambda: with_good(
        Photo("really-a-png.jpg", make_photo(600, 600, seed=63, fmt="PNG"))
    ),
    "jpeg_declared_as_html": lambda: with_good(
        Photo("photo.html", make_photo(600, 600, seed=64), "text/html")
    ),
    "path_traversal_names": lambda: [
        Photo("../../../../etc/passwd", make_photo(600, 600, seed=65)),
        Photo("..\\..\\windows\\win.ini", make_photo(600, 600, seed=66)),
        Photo("/var/task/shared/settings.py", make_photo(600, 600, seed=67)),
    ],
    "unicode_and_control_names": lambda: [
        Photo("фото 😀 自拍.jpg", make_photo(600, 600, seed=68)),
        Photo("evil\u202egpj.exe", make_photo(600, 600, seed=69)),
        Photo("bell\x07tab\tname" + "x" * 300 + ".jpg", make_photo(600, 600, seed=70)),
    ],
    "huge_exif_with_gps": lambda: with_good(Photo("exif.jpg", jpeg_with_huge_exif())),
    "zip_appended_to_a_jpeg": lambda: with_good(
        Photo("polyglot.jpg", make_photo(600, 600, seed=71) + zip_archive())
    ),
    "transparent_png": lambda: with_good(
        Photo("cutout.png", make_photo(600, 600, seed=72, fmt="PNG", mode="RGBA"), "image/png")
    ),
}
