"""Issue 15's speed-ups change no result: decoding, measures and embeddings equal the old path's.

``data/reference_embeddings.json`` holds what ``FaceEngine.analyze`` returned for every photo in
tests/data before the speed-ups (its ``about`` names the commit). The model's similarity
calibration was fitted on those embeddings, so they must not move (cosine >= 0.9999).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from tests.conftest import DATA, HAVE_DLIB, portrait_2018, side_by_side

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_embeddings.json").read_text())


def _old_decode(data: bytes) -> np.ndarray:
    """The decoding path before issue 15 (the oracle): EXIF transpose (a copy), then RGB."""
    pil = PILImage.open(io.BytesIO(data))
    pil.load()
    return np.asarray(ImageOps.exif_transpose(pil).convert("RGB"), dtype=np.uint8)


def _encoded(mode: str, fmt: str, orientation: int = 1) -> bytes:
    base = PILImage.open(portrait_2018("C000127")).convert("RGB")
    img = base.convert(mode) if mode != "RGB" else base
    buf = io.BytesIO()
    kwargs = {}
    if orientation != 1:
        exif = PILImage.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_decodes_as_before(orientation):
    from faceaudit.engine import load_image

    data = _encoded("RGB", "JPEG", orientation)
    img = load_image(data)
    np.testing.assert_array_equal(img.pixels, _old_decode(data))
    np.testing.assert_array_equal(img.bgr(), _old_decode(data)[:, :, ::-1])


@pytest.mark.parametrize("mode,fmt", [("L", "JPEG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"),
                                      ("LA", "PNG"), ("I;16", "PNG"), ("RGB", "PNG")])
def test_modes_decode_as_before(mode, fmt):
    from faceaudit.engine import load_image

    data = _encoded(mode, fmt)
    np.testing.assert_array_equal(load_image(data).pixels, _old_decode(data))


def test_bgr_is_converted_once_and_read_only():
    from faceaudit.engine import load_image

    img = load_image(portrait_2018("C000127"))
    assert img.bgr() is img.bgr()
    assert not img.bgr().flags.writeable
    np.testing.assert_array_equal(img.bgr(), img.pixels[:, :, ::-1])


def test_quality_of_the_face_crop_equals_quality_of_the_gray_image():
    import cv2

    from faceaudit.engine._quality import measure_quality

    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (300, 240, 3), dtype=np.uint8)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    for box in [(10.4, 20.6, 100.0, 120.0), (-15.0, -5.0, 80.0, 90.0), (200.0, 250.0, 90.0, 90.0), (0, 0, 1, 1)]:
        assert measure_quality(bgr, box, cv2.COLOR_BGR2GRAY) == measure_quality(gray, box)
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        assert measure_quality(rgb, box, cv2.COLOR_RGB2GRAY) == measure_quality(gray, box)


def _check(engine, model: str) -> None:
    ref = REFERENCE["models"][model]
    assert len(ref) == len(list(DATA.rglob("*.jpg")))
    for name, faces in ref.items():
        _, got = engine.analyze(DATA / name)
        assert len(got) == len(faces), name
        for g, r in zip(got, faces, strict=True):
            cos = float(np.dot(g.vector, np.asarray(r["vector"], np.float32)) / np.linalg.norm(r["vector"]))
            assert cos >= 0.9999, (name, cos)
            assert np.allclose(g.face.box_px, r["box_px"], atol=1e-3), name
            assert g.face.quality.brightness == pytest.approx(r["brightness"], abs=1e-3)
            assert g.face.quality.sharpness == pytest.approx(r["sharpness"], abs=1e-3)
            # pose is rounded to 0.001 degree: landmarks 1e-4 px apart (ONNX Runtime against
            # OpenCV's DNN module) may round to neighbouring values
            assert [g.face.pose.roll, g.face.pose.yaw, g.face.pose.pitch] == pytest.approx(r["pose"], abs=2.5e-3)


def test_sface_embeddings_equal_the_reference(sface_engine):
    _check(sface_engine, "sface")


@pytest.mark.skipif(not HAVE_DLIB, reason="the dlib extra is not installed")
def test_dlib_embeddings_equal_the_reference(dlib_engine):
    _check(dlib_engine, "dlib")


def test_limit_measures_only_the_largest_faces(any_engine):
    """detect(limit=k) returns the k largest of the faces detect() returns, measured the same."""
    data = side_by_side(portrait_2018("C000127"), portrait_2018("B000944"), DATA / "congress2014" / "K000367.jpg")
    img = any_engine.image(data)
    every = sorted(any_engine.model.detector.detect(img), key=lambda f: f.area, reverse=True)
    top = any_engine.model.detector.detect(img, 2)
    assert len(every) >= 3 and len(top) == 2
    for a, b in zip(sorted(top, key=lambda f: f.area, reverse=True), every[:2], strict=True):
        assert a.box_px == b.box_px and a.quality == b.quality and a.pose == b.pose
