"""The decode budget (issue 11): implausible declared sizes refused before decoding, pixels
being decoded at once bounded."""

import io
import threading

import pytest
from PIL import Image

from faceaudit import ImageTooLargeError, ThrottlingError
from faceaudit.engine import load_image
from faceaudit.engine._decode_budget import PixelBudget


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is rewritten to declare width x height."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 90, 60)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def test_tiny_jpeg_declaring_6000x6000_is_refused_before_decoding(monkeypatch):
    bomb = _jpeg_declaring(6000, 6000)
    assert len(bomb) < 1000
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(ImageTooLargeError, match="before decoding"):
        load_image(bomb)


def test_a_flat_large_photo_still_decodes():
    buf = io.BytesIO()
    Image.new("RGB", (2200, 2000), (200, 200, 200)).save(buf, "JPEG", quality=50)
    img = load_image(buf.getvalue())
    assert (img.width, img.height) == (2200, 2000)


def test_pixels_decoded_at_once_are_bounded():
    budget = PixelBudget(100, wait_seconds=30)
    entered, release, second_in = threading.Event(), threading.Event(), threading.Event()

    def first():
        with budget.hold(80):
            entered.set()
            release.wait(30)

    def second():
        with budget.hold(80):
            second_in.set()

    a = threading.Thread(target=first)
    a.start()
    assert entered.wait(30)
    b = threading.Thread(target=second)
    b.start()
    assert not second_in.is_set() and budget.in_flight == 80  # waits: 160 > 100
    release.set()
    assert second_in.wait(30)  # runs once the first is done
    a.join(30)
    b.join(30)
    assert budget.in_flight == 0
    with budget.hold(500):  # larger than the whole budget: runs alone
        assert budget.in_flight == 500


def test_a_decode_that_cannot_get_room_is_throttled():
    budget = PixelBudget(100, wait_seconds=0.01)
    with budget.hold(80), pytest.raises(ThrottlingError), budget.hold(80):
        pass
    assert budget.in_flight == 0
