"""shared.photos.training_zip: STORED `NN.jpg` entries, readable, deterministic, strict about names."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from devstack.sample_photos import sample_photo_set
from shared.photos.normalise import normalise_photo
from shared.photos.rules import PhotoLimits, photo_object_name
from shared.photos.training_zip import write_training_zip, zip_entry_names


def fake_jpeg(tag: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes([tag]) * 1000


ENTRIES = [(photo_object_name(i), fake_jpeg(i)) for i in range(1, 5)]


def test_entries_are_stored_uncompressed_and_read_back() -> None:
    out = io.BytesIO()
    written = write_training_zip(iter(ENTRIES), out)

    assert written == len(out.getvalue())
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["01.jpg", "02.jpg", "03.jpg", "04.jpg"]
        assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
        assert all(i.compress_size == i.file_size for i in infos)
        for name, data in ENTRIES:
            assert archive.read(name) == data


def test_real_normalised_photos_round_trip() -> None:
    jpegs = [
        normalise_photo(data, PhotoLimits(), label=name).jpeg for name, data in sample_photo_set(4)
    ]
    out = io.BytesIO()
    write_training_zip(((photo_object_name(i), j) for i, j in enumerate(jpegs, 1)), out)
    with zipfile.ZipFile(out) as archive:
        for info in archive.infolist():
            img = Image.open(io.BytesIO(archive.read(info)))
            assert img.format == "JPEG" and img.mode == "RGB"


@pytest.mark.parametrize("max_size", [10**9, 512], ids=["in-memory", "rolled-to-disk"])
def test_works_with_a_spooled_temporary_file(max_size: int) -> None:
    with tempfile.SpooledTemporaryFile(max_size=max_size) as spool:
        written = write_training_zip(ENTRIES, spool)
        assert spool.tell() == written
        spool.seek(0)
        assert zip_entry_names(spool) == [name for name, _ in ENTRIES]
        spool.seek(0)
        with zipfile.ZipFile(spool) as archive:
            assert archive.read("03.jpg") == fake_jpeg(3)


def test_counts_only_what_it_wrote_after_existing_content() -> None:
    out = io.BytesIO()
    out.write(b"preamble")
    written = write_training_zip(ENTRIES, out)
    assert written == len(out.getvalue()) - len(b"preamble")


def test_same_photos_give_byte_identical_zips() -> None:
    first, second = io.BytesIO(), io.BytesIO()
    write_training_zip(ENTRIES, first)
    write_training_zip(list(ENTRIES), second)
    assert first.getvalue() == second.getvalue()


def test_zip_entry_names_reads_paths(tmp_path: Path) -> None:
    path = tmp_path / "training.zip"
    with path.open("wb") as out:
        write_training_zip(ENTRIES[:2], out)
    assert zip_entry_names(path) == ["01.jpg", "02.jpg"]
    assert zip_entry_names(str(path)) == ["01.jpg", "02.jpg"]


@pytest.mark.parametrize(
    "name",
    [
        "1.jpg",
        "001.jpg",
        "01.JPG",
        "01.jpeg",
        "01.heic",
        "01.jpg ",
        "01.jpg\n",
        "../01.jpg",
        "a/01.jpg",
        "a\\01.jpg",
        "/01.jpg",
        "..",
        "",
        "ab.jpg",
        "\uff10\uff11.jpg",  # full-width digits
    ],
)
def test_bad_entry_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must look like"):
        write_training_zip([(name, fake_jpeg(1))], io.BytesIO())


def test_repeated_names_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        write_training_zip([ENTRIES[0], ENTRIES[1], ENTRIES[0]], io.BytesIO())


def test_non_jpeg_data_is_refused() -> None:
    with pytest.raises(ValueError, match="not JPEG"):
        write_training_zip([("01.jpg", b"\x89PNG\r\n\x1a\n")], io.BytesIO())


def test_an_empty_zip_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        write_training_zip([], io.BytesIO())
