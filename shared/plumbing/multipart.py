"""multipart/form-data bodies as the frontend sends them, parsed with python-multipart."""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from shared.errors import AppError, ErrorCode

MAX_PARTS = 32


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Form:
    parts: list[Part]

    def field(self, name: str) -> str | None:
        for part in self.parts:
            if part.name == name and part.filename is None:
                return part.data.decode("utf-8", errors="replace")
        return None

    def files(self, *names: str) -> list[Part]:
        return [p for p in self.parts if p.name in names and p.filename is not None]


def parse_form(content_type: str | None, body: bytes) -> Form:
    mime, options = parse_options_header(content_type or "")
    if mime != b"multipart/form-data":
        raise AppError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "Send the photos as multipart/form-data (or use POST /uploads for direct uploads).",
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise AppError(
            ErrorCode.BAD_MULTIPART, "The multipart body has no boundary in its Content-Type."
        )

    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    header_name = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        if len(parts) >= MAX_PARTS:
            raise AppError(ErrorCode.BAD_MULTIPART, f"The form has more than {MAX_PARTS} parts.")
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name")
        if name is None:
            raise AppError(ErrorCode.BAD_MULTIPART, "A form part has no name.")
        filename = disposition.get(b"filename")
        content_type = headers.get(b"content-type")
        parts.append(
            Part(
                name=name.decode("utf-8", errors="replace"),
                filename=None if filename is None else filename.decode("utf-8", errors="replace"),
                content_type=None if content_type is None else content_type.decode("latin-1"),
            )
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        raise AppError(
            ErrorCode.BAD_MULTIPART,
            "The multipart body is malformed; send it as a browser FormData would.",
        ) from None
    if not parts:
        raise AppError(ErrorCode.BAD_MULTIPART, "The multipart body has no parts.")
    return Form(parts)
