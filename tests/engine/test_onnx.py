"""SFace on ONNX Runtime gives OpenCV's embeddings; the runtime is chosen as documented."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest

from faceaudit import InvalidParameterError, ModelIntegrityError, ModelNotInstalledError
from faceaudit.engine import FaceEngine, get_model, load_image
from faceaudit.engine import _onnx as onnx_mod
from faceaudit.engine import _sface
from faceaudit.engine._sface import Runtime, SFaceEmbedder, sface_embedder
from tests.conftest import DATA

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime / onnx not installed")

PHOTOS = sorted(p for p in DATA.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@pytest.fixture(scope="module")
def weights():
    return get_model("sface").weights[1].verified_path()


@pytest.fixture(scope="module")
def engine():
    return FaceEngine("sface")


@needs_ort
def test_onnxruntime_embeddings_equal_opencv_on_every_test_face(weights, engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEAUDIT_CACHE_DIR", str(tmp_path))  # folded afresh, then cached there
    opencv = SFaceEmbedder(weights)
    ort = sface_embedder(weights, Runtime.ONNXRUNTIME)
    assert list((tmp_path / "models").glob("*.onnx"))
    assert "onnxruntime" in ort.runtime and opencv.runtime == "opencv dnn"
    cosines = []
    for path in PHOTOS:
        image = load_image(path)
        for face in engine.detect(image).faces:
            a, b = opencv.embed(image, face), ort.embed(image, face)
            assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (128,)
            assert abs(float(np.linalg.norm(b)) - 1.0) < 1e-5
            cosines.append(float(a @ b))
    assert len(cosines) >= 10
    assert min(cosines) >= 0.9999, min(cosines)


@needs_ort
def test_fold_removes_every_dequantize_node_and_dangling_input(weights):
    import onnx

    folded = onnx.load_from_string(onnx_mod.fold_dequantized_weights(weights.read_bytes()))
    ops = {n.op_type for n in folded.graph.node}
    assert "DequantizeLinear" not in ops and "Conv" in ops
    initialised = {t.name for t in folded.graph.initializer}
    assert [i.name for i in folded.graph.input if i.name not in initialised] == ["data"]
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in folded.graph.initializer
               if t.name.endswith("_reshaped") or t.name.endswith("_dequantized"))


def test_block_dequantize_matches_the_definition():
    """(q - zero) * scale, one scale per block of 3 along axis 1, the last block short."""
    q = np.arange(-8, 8, dtype=np.int8).reshape(2, 8)
    scale = np.array([[0.5, 2.0, 1.0], [1.0, 0.25, 3.0]], np.float32)
    zero = np.array([[1, 0, -1], [0, 2, 0]], np.int8)
    got = onnx_mod._dequantize(q, scale, zero, axis=1, block=3)
    want = np.empty((2, 8), np.float32)
    for r in range(2):
        for c in range(8):
            want[r, c] = (float(q[r, c]) - zero[r, c // 3]) * scale[r, c // 3]
    np.testing.assert_array_equal(got, want)
    per_axis = onnx_mod._dequantize(q, np.array([2.0, 3.0], np.float32), np.array([0, 1], np.int8), axis=0, block=0)
    np.testing.assert_array_equal(per_axis, (q.astype(np.float32) - [[0], [1]]) * [[2.0], [3.0]])


@needs_ort
def test_not_an_onnx_file_is_a_typed_error():
    with pytest.raises(ModelIntegrityError):
        onnx_mod.fold_dequantized_weights(b"\x00not a model" * 10)


@needs_ort
def test_fold_is_cached_only_when_it_matches_its_pin(weights, tmp_path, monkeypatch):
    first = onnx_mod.folded_model(weights, cache_dir=tmp_path)
    cached = list((tmp_path / "models").glob("*.onnx"))
    assert len(cached) == 1
    assert hashlib.sha256(cached[0].read_bytes()).hexdigest() == onnx_mod.FOLDED_SHA256[
        hashlib.sha256(weights.read_bytes()).hexdigest()]
    # a tampered cache is never used: the model is folded again from the verified file
    cached[0].write_bytes(b"tampered" + cached[0].read_bytes()[8:])
    called = []
    real = onnx_mod.fold_dequantized_weights
    monkeypatch.setattr(onnx_mod, "fold_dequantized_weights", lambda data: called.append(1) or real(data))
    assert onnx_mod.folded_model(weights, cache_dir=tmp_path) == first
    assert called == [1]
    # an unpinned fold (another onnx version) is used but not written
    other = tmp_path / "other"
    monkeypatch.setattr(onnx_mod, "FOLDED_SHA256", {})
    assert onnx_mod.folded_model(weights, cache_dir=other) == first
    assert not (other / "models").exists() or not list((other / "models").glob("*.onnx"))


def test_runtime_from_environment(monkeypatch):
    monkeypatch.delenv("FACEAUDIT_RUNTIME", raising=False)
    assert Runtime.from_environment() is Runtime.AUTO
    monkeypatch.setenv("FACEAUDIT_RUNTIME", "OpenCV")
    assert Runtime.from_environment() is Runtime.OPENCV
    monkeypatch.setenv("FACEAUDIT_RUNTIME", "tensorrt")
    with pytest.raises(InvalidParameterError, match="auto, opencv, onnxruntime"):
        Runtime.from_environment()


def test_auto_falls_back_to_opencv_without_onnxruntime(weights, monkeypatch):
    monkeypatch.setattr(_sface, "onnxruntime_installed", lambda: False)
    assert sface_embedder(weights, Runtime.AUTO).runtime == "opencv dnn"
    with pytest.raises(ModelNotInstalledError, match="onnxruntime"):
        sface_embedder(weights, Runtime.ONNXRUNTIME)


@needs_ort
def test_auto_prefers_onnxruntime(weights):
    assert sface_embedder(weights, Runtime.AUTO).runtime.startswith("onnxruntime")


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 500, size=(5, 2))
    angle, scale, shift = 0.3, 0.41, np.array([12.5, -7.25])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = scale * pts @ rot.T + shift
    m = onnx_mod.similarity_transform(pts, moved)
    np.testing.assert_allclose(m, np.hstack([scale * rot, shift[:, None]]), atol=1e-9)
    # a reflection is never returned: the best proper rotation instead
    m = onnx_mod.similarity_transform(pts, pts * [-1, 1])
    assert np.linalg.det(m[:, :2]) > 0


def test_alignment_matches_opencvs_crop(weights, engine):
    """align_crop against FaceRecognizerSF.alignCrop on every test face: the same crop up to a few
    grey levels (float64 here, float32 there)."""
    import cv2

    rec = cv2.FaceRecognizerSF.create(str(weights), "")
    diffs = []
    for path in PHOTOS:
        image = load_image(path)
        for face in engine.detect(image).faces:
            row = np.concatenate([np.asarray(face.box_px, np.float32), face.landmarks_px.reshape(-1),
                                  [face.confidence / 100.0]]).astype(np.float32)
            theirs = rec.alignCrop(image.bgr(), row).astype(np.int16)
            ours = onnx_mod.align_crop(image.bgr(), face.landmarks_px).astype(np.int16)
            assert ours.shape == theirs.shape == (112, 112, 3)
            diffs.append((np.abs(ours - theirs).max(), np.abs(ours - theirs).mean()))
    assert max(d[0] for d in diffs) <= 16 and max(d[1] for d in diffs) < 0.5, diffs
