"""Request plumbing: body reading (length or chunked), multipart/form-data parsing, the
prediction headers, and the trained-model tar."""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

_CHUNK = 1 << 20


def read_body(rfile: BinaryIO, length: int | None, chunked: bool, keep: int) -> tuple[bytes, int]:
    """Read the whole request body, keeping at most `keep` bytes (the rest is drained so the
    client still gets our answer). Returns (kept bytes, total size)."""
    kept = bytearray()
    total = 0

    def take(data: bytes) -> None:
        nonlocal total
        total += len(data)
        room = keep - len(kept)
        if room > 0:
            kept.extend(data[:room])

    if chunked:
        while True:
            line = rfile.readline(1024)
            if not line:
                break
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            remaining = size
            while remaining:
                data = rfile.read(min(remaining, _CHUNK))
                if not data:
                    return bytes(kept), total
                take(data)
                remaining -= len(data)
            rfile.readline(1024)
    else:
        remaining = length or 0
        while remaining > 0:
            data = rfile.read(min(remaining, _CHUNK))
            if not data:
                break
            take(data)
            remaining -= len(data)
    return bytes(kept), total


@dataclass
class Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    data: bytearray = field(default_factory=bytearray)


class FormError(ValueError):
    pass


def parse_multipart(body: bytes, content_type: str) -> dict[str, Part]:
    """Parts by field name (the last one wins), streaming through python-multipart."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise FormError("multipart/form-data needs a boundary")
    parts: dict[str, Part] = {}
    current = Part()
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        nonlocal current
        current = Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        name = header_field.decode("latin-1").strip().lower()
        value = header_value.decode("utf-8", "replace").strip()
        if name == "content-disposition":
            _, disp = parse_options_header(value)
            current.name = disp.get(b"name", b"").decode("utf-8", "replace")
            if b"filename" in disp:
                current.filename = disp[b"filename"].decode("utf-8", "replace")
        elif name == "content-type":
            current.content_type = value
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current.data.extend(data[start:end])

    def on_part_end() -> None:
        parts[current.name] = current

    callbacks: MultipartCallbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise FormError(f"malformed multipart body: {exc}") from exc
    return parts


def trained_model_tar(training_id: str, captions: list[str], trigger_word: str) -> bytes:
    """A small stand-in for `trained_model.tar` with the layout train.py produces; `captions`
    are the caption file names under captions/."""
    header = b'{"__metadata__":{"format":"pt"}}'
    header += b" " * (-len(header) % 8)
    files = {
        # An empty but well-formed safetensors file: 8-byte header length + JSON header.
        "output/flux_train_replicate/lora.safetensors": len(header).to_bytes(8, "little") + header,
        "output/flux_train_replicate/config.yaml": (
            f"job: extension\nconfig:\n  name: flux_train_replicate\n"
            f"  trigger_word: {trigger_word}\n  emulator_training: {training_id}\n"
        ).encode(),
    }
    for name in captions:
        files[f"output/flux_train_replicate/captions/{name}"] = (
            f"a photo of {trigger_word}".encode()
        )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- prediction headers (SPEC `parameters_prefer_header`, `parameters_cancel_after_header`) -----

MAX_WAIT_SECONDS = 60
MIN_CANCEL_AFTER_SECONDS = 5.0
_PREFER_WAIT = re.compile(r"wait(?:=(\d+))?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)?")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, None: 1.0}


class HeaderError(ValueError):
    """A header the emulator refuses (the real answer to a bad value is unconfirmed)."""


def prefer_wait(value: str | None) -> int | None:
    """Seconds to hold a create open for `Prefer: wait[=n]` (bare `wait` is the 60 s maximum)."""
    if value is None:
        return None
    match = _PREFER_WAIT.fullmatch(value.strip().lower())
    seconds = None if match is None else int(match.group(1) or MAX_WAIT_SECONDS)
    if seconds is None or not 1 <= seconds <= MAX_WAIT_SECONDS:
        raise HeaderError(f"Prefer must be `wait` or `wait=n` with n from 1 to 60, got {value!r}")
    return seconds


def cancel_after(value: str | None) -> float | None:
    """Seconds in a `Cancel-After` duration such as `30`, `30s`, `5m` or `1h30m45s`."""
    if value is None:
        return None
    text, seconds, pos = value.strip().lower(), 0.0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or (match.group(2) is None and match.end() != len(text)):
            raise HeaderError(
                f"Cancel-After must be a duration such as 30s, 5m or 1h30m, got {value!r}"
            )
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text:
        raise HeaderError("Cancel-After must not be empty")
    if seconds < MIN_CANCEL_AFTER_SECONDS:
        raise HeaderError(f"Cancel-After must be at least 5s, got {value!r}")
    return seconds
