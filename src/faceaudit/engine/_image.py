"""Decoding images safely: JPEG and PNG, EXIF orientation, size limits.

The checks run in an order that never decodes an oversized image: byte size
first, then the header (format and declared dimensions), then the pixels.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as _PILImage
from PIL import ImageOps, UnidentifiedImageError

from faceaudit._errors import (
    ImageFileNotFoundError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageFormatError,
)
from faceaudit.engine._decode_budget import DECODE_BUDGET, check_declared_size

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""Rekognition's limit for image bytes passed inline: 5 MB."""

MAX_STORED_IMAGE_BYTES = 15 * 1024 * 1024
"""Rekognition's limit for an image read from an S3 object (S3Object): 15 MB."""

MIN_IMAGE_SIDE = 80
"""Rekognition's minimum image size: 80 pixels on each side."""

MAX_IMAGE_PIXELS = 40_000_000
"""Declared pixel counts above this are refused before decoding (decompression bombs)."""

MAX_IMAGE_SIDE = 20_000
"""Declared sides above this are refused before decoding."""

_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}

ImageSource = bytes | bytearray | memoryview | str | os.PathLike


@dataclass(frozen=True, eq=False)
class Image:
    """A decoded image: RGB pixels after EXIF orientation, with its source digest.

    ``pixels`` is a ``uint8`` array of shape (height, width, 3) in RGB order.
    ``sha256`` is the hex digest of the original bytes (what the search log records).
    """

    pixels: np.ndarray = field(repr=False)
    format: str
    sha256: str
    byte_size: int

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def bgr(self) -> np.ndarray:
        """The pixels in OpenCV's BGR order: converted on first use, then shared (read-only).

        Detection, quality and alignment all read this one array, so an image is
        converted once however many faces it holds.
        """
        cached = self.__dict__.get("_bgr")
        if cached is None:
            cached = cv2.cvtColor(np.ascontiguousarray(self.pixels), cv2.COLOR_RGB2BGR)
            cached.flags.writeable = False
            object.__setattr__(self, "_bgr", cached)
        return cached


class StoredImage(bytes):
    """Image bytes read from an object store (a Rekognition ``S3Object``).

    Plain ``bytes`` everywhere, except that :func:`load_image` allows them up to
    :data:`MAX_STORED_IMAGE_BYTES` (15 MB), Rekognition's limit for images in S3,
    instead of the 5 MB of inline image bytes.
    """

    __slots__ = ()


def byte_limit(source: object) -> int:
    """The size limit of an image source: 15 MB for a :class:`StoredImage`, else 5 MB."""
    return MAX_STORED_IMAGE_BYTES if isinstance(source, StoredImage) else MAX_IMAGE_BYTES


def read_bytes(source: ImageSource) -> bytes:
    """Read an image source (bytes or a path) into bytes, refusing files over the limit."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(os.fspath(source))
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageFileNotFoundError(f"image file not found: {path}") from None
    except OSError as exc:
        raise InvalidImageFormatError(f"cannot read image file {path}: {exc.strerror}") from None
    if size > MAX_IMAGE_BYTES:
        raise ImageTooLargeError(
            f"image is {size} bytes; the limit is {MAX_IMAGE_BYTES} bytes (5 MB)"
        )
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise InvalidImageFormatError(f"{path} is a directory, not an image") from None
    except OSError as exc:
        raise InvalidImageFormatError(f"cannot read image file {path}: {exc.strerror}") from None


def load_image(source: ImageSource, *, min_side: int = MIN_IMAGE_SIDE) -> Image:
    """Decode JPEG or PNG bytes (or a path) into an :class:`Image`.

    Raises
    ------
    ImageTooLargeError
        over 5 MB of bytes (15 MB for a :class:`StoredImage`), or a declared size over the pixel limit.
    InvalidImageFormatError
        empty, truncated, corrupt, or neither JPEG nor PNG.
    ImageTooSmallError
        either side below ``min_side`` pixels (80 by default).
    """
    limit = byte_limit(source)
    data = read_bytes(source)
    if len(data) == 0:
        raise InvalidImageFormatError("image is empty (0 bytes)")
    if len(data) > limit:
        raise ImageTooLargeError(
            f"image is {len(data)} bytes; the limit is {limit} bytes ({limit // (1024 * 1024)} MB"
            + (" for an image in an object store)" if limit != MAX_IMAGE_BYTES else ")")
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", _PILImage.DecompressionBombWarning)
            pil = _PILImage.open(io.BytesIO(data), formats=tuple(_FORMATS))
    except UnidentifiedImageError:
        raise InvalidImageFormatError(
            "unsupported image format: only JPEG and PNG images are accepted"
        ) from None
    except (_PILImage.DecompressionBombError, _PILImage.DecompressionBombWarning):
        raise ImageTooLargeError("image declares too many pixels (decompression bomb)") from None
    except Exception as exc:  # PIL raises many types on corrupt headers
        raise InvalidImageFormatError(f"corrupt image header: {exc}") from None
    fmt = pil.format or _guess_format(data)
    width, height = pil.size
    if width <= 0 or height <= 0:
        raise InvalidImageFormatError("image declares zero width or height")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"image declares {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS} pixels "
            f"and {MAX_IMAGE_SIDE} per side"
        )
    check_declared_size(width, height, len(data))  # the decode budget (_decode_budget)
    with DECODE_BUDGET.hold(width * height):
        try:
            pil.load()
            ImageOps.exif_transpose(pil, in_place=True)  # no copy when there is nothing to turn
            rgb = pil if pil.mode == "RGB" else pil.convert("RGB")
        except (_PILImage.DecompressionBombError, _PILImage.DecompressionBombWarning):
            raise ImageTooLargeError("image declares too many pixels (decompression bomb)") from None
        except Exception as exc:
            raise InvalidImageFormatError(f"corrupt or truncated image: {exc}") from None
        pixels = np.asarray(rgb, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InvalidImageFormatError("image could not be converted to RGB")
    if pixels.shape[0] < min_side or pixels.shape[1] < min_side:
        raise ImageTooSmallError(
            f"image is {pixels.shape[1]}x{pixels.shape[0]} pixels; "
            f"at least {min_side}x{min_side} is required"
        )
    return Image(
        pixels=pixels,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
    )


def _guess_format(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    return "UNKNOWN"
