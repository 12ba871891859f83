"""Decode cost on the upload path (issue 14): the worst photo still accepted, and a 48 MP HEIC.

Each candidate is the costliest photo of its format that the checks let through: as many pixels
as its format may have (`PHOTO_MAX_PIXELS`, half of it for PNG and WebP), under the 15 MB cap, and
for JPEG progressive with as many scans as allowed (libjpeg's 10 plus empty ones up to 32). Each
is normalised alone in a fresh interpreter with the upload handler imported, as the upload function
does with every photo (bench.photos_memory's child); median of three runs, peak of the three.
- `worst_accepted_seconds`: the slowest candidate's wall-clock time; goal at most 2 s
  (`cpu_seconds` per candidate: CPU time of all its threads, steadier on a busy machine);
- `heic_48mp_peak_mb`: peak RSS of the process decoding an 8064x6048 HEIC stored as a grid of
  512 px tiles like an iPhone's, against the upload function's 1024 MB (`*_over_imports_mb`: the
  part the photo adds to the imported handler);
- `worst_peak_mb`: the highest peak of any candidate, which decides what `PHOTO_MAX_PIXELS` fits;
- `scan_bomb_*`: a progressive JPEG with 10,000 empty scans, refused before decoding.
The machine is shared: `load_average` is the 1-minute load when the run began.
Run: `python -m bench.decode`.
"""

from __future__ import annotations

import io
import os
import statistics
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from bench.common import record, table
from bench.photos_memory import run_child
from devstack.sample_photos import add_empty_scans, make_photo
from shared.photos.normalise import normalise_photo
from shared.photos.rules import PhotoLimits, PhotoRejected
from shared.plumbing.settings import Settings

MB = 1024 * 1024
UPLOAD_MEMORY_MB = 1024  # UploadTrainingPhotosFunction's MemorySize in template.yaml
RUNS = 3
JPEG_SCANS = 32  # shared.photos' cap
FULL = (8160, 6120)  # 49.9 MP: a 50 MP phone sensor
HALF = (5760, 4340)  # 25.0 MP: the PNG and WebP cap
IPHONE_48MP = (8064, 6048)


def encode(img: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def flat_png_16bit_rgba(size: tuple[int, int]) -> bytes:
    """16-bit RGBA with every row Paeth-filtered: the costliest PNG per pixel; only flat content
    that large fits in 15 MB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    width, height = size
    deflate = zlib.compressobj(9)
    row = b"\x04" + b"\x80\x00\x60\x00\x40\x00\xff\xff" * width
    idat = b"".join([deflate.compress(row) for _ in range(height)] + [deflate.flush()])
    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def candidates() -> dict[str, Callable[[], bytes]]:
    picture = Image.open(io.BytesIO(make_photo(*FULL, seed=14, quality=95)))
    picture.load()
    half = picture.resize(HALF)

    def heic() -> bytes:
        import pillow_heif

        pillow_heif.register_heif_opener()
        iphone = picture.crop((0, 0, *IPHONE_48MP))
        return encode(iphone, "HEIF", quality=40, tile_size=512, enc_params={"preset": "ultrafast"})

    return {
        "jpeg_progressive_32_scans": lambda: add_empty_scans(
            encode(picture, "JPEG", quality=90, progressive=True), JPEG_SCANS - 10
        ),
        "jpeg_baseline": lambda: encode(picture, "JPEG", quality=90),
        "png_16bit_rgba": lambda: flat_png_16bit_rgba(HALF),
        "webp_lossy": lambda: encode(half, "WEBP", quality=75),
        # 64 flat colours: what lets 25 MP of lossless WebP fit in 15 MB.
        "webp_lossless": lambda: encode(
            half.quantize(64, dither=Image.Dither.NONE).convert("RGB"), "WEBP", lossless=True
        ),
        "heic_48mp_grid": heic,
    }


def measure(path: Path) -> dict[str, float]:
    runs = [run_child({"step": "one", "file": str(path)}) for _ in range(RUNS)]
    imported = statistics.median(r["imported_mb"] for r in runs)
    over = max(r["over_imports_mb"] for r in runs)
    return {
        "seconds": round(statistics.median(r["seconds"] for r in runs), 2),
        "cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in runs), 2),
        "over_imports_mb": round(over, 1),
        "peak_mb": round(imported + over, 1),
    }


def scan_bomb() -> tuple[int, float]:
    """A flat 48 MP progressive JPEG with 10,000 empty scans (412 kB; accepted after about 40 s
    of decoding before the scan cap): its size and how long the refusal takes."""
    flat = encode(Image.new("RGB", (8000, 6000), (120, 130, 140)), "JPEG", progressive=True)
    bomb = add_empty_scans(flat, 10_000)
    began = time.perf_counter()
    try:
        normalise_photo(bomb, PhotoLimits(), label="Photo 1")
    except PhotoRejected as exc:
        assert exc.code == "photo_too_complex", exc.code
    else:
        raise AssertionError("the scan bomb was accepted")
    return len(bomb), time.perf_counter() - began


def main() -> None:
    limits = PhotoLimits()
    assert limits.max_pixels == Settings.model_fields["photo_max_pixels"].default
    assert FULL[0] * FULL[1] <= limits.max_pixels and HALF[0] * HALF[1] <= limits.max_pixels // 2
    load_average = os.getloadavg()[0]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="flurrty-decode-") as tmp:
        for name, make in candidates().items():
            data = make()
            assert len(data) <= limits.max_bytes, (name, len(data))
            path = Path(tmp) / name
            path.write_bytes(data)
            results[name] = {"file_mb": round(len(data) / MB, 1), **measure(path)}
            print(f"  {name}: {results[name]}", flush=True)
    bomb_bytes, bomb_seconds = scan_bomb()
    slowest = max(results, key=lambda n: results[n]["seconds"])
    hungriest = max(results, key=lambda n: results[n]["peak_mb"])
    heic = results["heic_48mp_grid"]
    figures = {
        "worst_accepted_seconds": results[slowest]["seconds"],
        "worst_accepted": slowest,
        "heic_48mp_peak_mb": heic["peak_mb"],
        "heic_48mp_over_imports_mb": heic["over_imports_mb"],
        "worst_peak_mb": results[hungriest]["peak_mb"],
        "worst_peak": hungriest,
        "upload_memory_mb": UPLOAD_MEMORY_MB,
        "max_pixels": limits.max_pixels,
        "candidates": results,
        "scan_bomb_kb": round(bomb_bytes / 1024),
        "scan_bomb_refused_ms": round(bomb_seconds * 1000, 1),
        "load_average": round(load_average, 2),
    }
    record("decode", figures)
    table(
        f"decode: the costliest accepted photo of each format (median of {RUNS}, load "
        f"{load_average:.1f})",
        [
            *[
                (
                    name,
                    f"{r['seconds']:.2f} s ({r['cpu_seconds']:.2f} s CPU), "
                    f"peak {r['peak_mb']:.0f} MB "
                    f"({r['over_imports_mb']:.0f} MB over imports), file {r['file_mb']} MB",
                )
                for name, r in results.items()
            ],
            ("worst accepted (goal <= 2 s)", f"{results[slowest]['seconds']:.2f} s: {slowest}"),
            (
                f"48 MP HEIC against {UPLOAD_MEMORY_MB} MB",
                f"{heic['peak_mb']:.0f} MB ({heic['peak_mb'] / UPLOAD_MEMORY_MB:.0%})",
            ),
            ("highest peak", f"{results[hungriest]['peak_mb']:.0f} MB: {hungriest}"),
            (
                "scan bomb (10,000 empty scans)",
                f"{bomb_bytes / 1024:.0f} kB refused in {bomb_seconds * 1000:.1f} ms",
            ),
        ],
    )


if __name__ == "__main__":
    main()
