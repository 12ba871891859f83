"""The zip of normalised photos that goes to the FLUX LoRA trainer.

Entries are STORED, not deflated: JPEG data does not compress, so deflate would only cost CPU.
Names must be plain `NN.jpg` (lower-case: the trainer skips `.JPG`), and every entry carries the
same fixed timestamp and permissions, so the same photos always give byte-identical zips.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable
from typing import IO, BinaryIO, Final

ENTRY_NAME: Final = re.compile(r"[0-9]{2}\.jpg")
_FIXED_TIME: Final = (1980, 1, 1, 0, 0, 0)  # the earliest zip date; keeps output deterministic
_JPEG_SOI: Final = b"\xff\xd8\xff"


def write_training_zip(entries: Iterable[tuple[str, bytes]], out: BinaryIO | IO[bytes]) -> int:
    """Write `(name, jpeg)` entries as a zip into `out`; return the number of bytes written.

    `out` must be seekable (a file, BytesIO or tempfile.SpooledTemporaryFile); writing starts at
    its current position and leaves it at the end of the zip. Entries are consumed one at a time,
    so a generator of fetched photos never has to be held in memory at once. Raises ValueError for
    a name that is not `NN.jpg`, a repeated name, data that is not a JPEG, or no entries at all;
    `out` then holds a partial zip and must be discarded.
    """
    start = out.tell()
    seen: set[str] = set()
    with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            _check_entry(name, data, seen)
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # Unix, so the permission bits below mean what they say
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
        if not seen:
            raise ValueError("a training zip needs at least one photo")
    return out.tell() - start


def zip_entry_names(path_or_file: str | os.PathLike[str] | BinaryIO | IO[bytes]) -> list[str]:
    """Entry names of a zip, in archive order (for tests and checks)."""
    with zipfile.ZipFile(path_or_file) as archive:
        return archive.namelist()


def _check_entry(name: str, data: bytes, seen: set[str]) -> None:
    # fullmatch on an ASCII-only class: no separators, no `..`, no upper-case or other extensions.
    if not isinstance(name, str) or ENTRY_NAME.fullmatch(name) is None:
        raise ValueError(f"training zip entry names must look like 01.jpg, got {name!r}")
    if name in seen:
        raise ValueError(f"training zip entry {name!r} appears twice")
    if not data.startswith(_JPEG_SOI):
        raise ValueError(f"training zip entry {name!r} is not JPEG data")
    seen.add(name)
