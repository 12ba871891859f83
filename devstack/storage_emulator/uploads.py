"""Receiving an upload body (raw or multipart) into a size-limited temp file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from devstack.storage_emulator.wire import MAX_JSON_BODY, StorageError


@dataclass
class Received:
    tmp_path: Path
    size: int
    mimetype: str
    cache_control: str
    etag: str
    user_metadata: Any


class LimitedFile:
    """Writes the upload to a temp file, hashing it, and stops writing past the size limit."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.exceeded = False
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._fh: BinaryIO | None = path.open("wb")

    def write(self, data: bytes | memoryview) -> None:
        if self.exceeded:
            return  # keep consuming the body, drop the bytes
        self.size += len(data)
        if self.size > self.limit:
            self.exceeded = True
            self.close()
            return
        assert self._fh is not None
        self._fh.write(data)
        self._md5.update(data)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def etag(self) -> str:
        return f'"{self._md5.hexdigest()}"'


class MultipartUpload:
    """Streams a multipart body: the first file part goes to disk, small fields to memory."""

    def __init__(
        self, boundary: bytes, target: LimitedFile, check_mime: Callable[[str], None]
    ) -> None:
        self.target = target
        self.check_mime = check_mime
        self.fields: dict[str, str] = {}
        self.mimetype = "text/plain"
        self.got_file = False
        self.ended = False
        self.error: StorageError | None = None
        self._headers: dict[str, str] = {}
        self._hname = bytearray()
        self._hvalue = bytearray()
        self._kind = "skip"  # "file", "field" or "skip" for the current part
        self._fname = ""
        self._fvalue = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._kind = "skip"

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        name = self._hname.decode("latin-1").strip().lower()
        self._headers[name] = self._hvalue.decode("latin-1").strip()
        self._hname.clear()
        self._hvalue.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        if b"filename" in params:
            if self.got_file:
                return  # like fastify-multipart's request.file(): only the first file counts
            self.got_file = True
            self._kind = "file"
            # busboy reports the part's type without parameters, lower-cased.
            ctype, _ = parse_options_header(self._headers.get("content-type", "text/plain"))
            self.mimetype = ctype.decode("latin-1") or "text/plain"
            try:
                self.check_mime(self.mimetype)
            except StorageError as exc:
                self.error = exc
                self._kind = "skip"
        else:
            self._kind = "field"
            self._fname = params.get(b"name", b"").decode("utf-8", "replace")
            self._fvalue = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file":
            self.target.write(memoryview(data)[start:end])
        elif self._kind == "field" and len(self._fvalue) < MAX_JSON_BODY:
            self._fvalue += data[start:end]

    def _part_end(self) -> None:
        if self._kind == "field":
            self.fields.setdefault(self._fname, self._fvalue.decode("utf-8", "replace"))
        self._kind = "skip"

    def _end(self) -> None:
        self.ended = True


# --------------------------------------------------------------------------- the emulator
