import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from faceaudit import (
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageFormatError,
)
from faceaudit.engine import load_image
from tests.conftest import blank_image, portrait_2018


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_jpeg_from_path_and_bytes_agree():
    path = portrait_2018("B000944")
    a = load_image(path)
    b = load_image(path.read_bytes())
    assert a.format == "JPEG" and (a.width, a.height) == (180, 225)
    assert a.sha256 == b.sha256 and np.array_equal(a.pixels, b.pixels)


def test_png_accepted():
    img = load_image(blank_image(120, 90, "PNG"))
    assert img.format == "PNG" and (img.width, img.height) == (120, 90)


def test_exif_orientation_applied():
    pil = Image.open(portrait_2018("B000944"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    buf = io.BytesIO()
    pil.save(buf, "JPEG", exif=exif.tobytes())
    img = load_image(buf.getvalue())
    assert (img.width, img.height) == (225, 180)


@pytest.mark.parametrize(
    "data, error",
    [
        (b"", InvalidImageFormatError),
        (b"hello, this is not an image at all", InvalidImageFormatError),
        (b"GIF89a" + b"\x00" * 100, InvalidImageFormatError),
        (b"x" * (5 * 1024 * 1024 + 1), ImageTooLargeError),
    ],
    ids=["empty", "text", "gif", "over-5MB"],
)
def test_bad_bytes(data, error):
    with pytest.raises(error):
        load_image(data)


def test_truncated_jpeg():
    data = portrait_2018("B000944").read_bytes()
    with pytest.raises(InvalidImageFormatError):
        load_image(data[: len(data) // 2])


def test_unsupported_format_bmp():
    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, "BMP")
    with pytest.raises(InvalidImageFormatError, match="JPEG and PNG"):
        load_image(buf.getvalue())


def test_decompression_bomb_refused_before_decoding():
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(_png_declaring(50000, 50000))


def test_too_small():
    with pytest.raises(ImageTooSmallError):
        load_image(blank_image(79, 200))


def test_missing_file(tmp_path):
    with pytest.raises(InvalidImageFormatError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_huge_file_refused_without_reading(tmp_path):
    p = tmp_path / "big.jpg"
    with open(p, "wb") as fh:
        fh.truncate(6 * 1024 * 1024)
    with pytest.raises(ImageTooLargeError):
        load_image(p)


def test_errors_carry_aws_names():
    assert ImageTooLargeError.aws_code == "ImageTooLargeException"
    assert InvalidImageFormatError.aws_code == "InvalidImageFormatException"
