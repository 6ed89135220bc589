"""SFace on ONNX Runtime gives OpenCV's embeddings; the runtime is chosen as documented."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest

from faceaudit import InvalidParameterError, ModelIntegrityError, ModelNotInstalledError
from faceaudit.engine import FaceEngine, _sface, get_model, load_image
from faceaudit.engine import _onnx as onnx_mod
from faceaudit.engine._sface import Runtime, RuntimePlan, SFaceEmbedder, YuNetDetector, plan_runtime, sface_model
from tests.conftest import DATA

HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))
HAVE_OV = all(importlib.util.find_spec(m) is not None for m in ("openvino", "onnx"))
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime / onnx not installed")
needs_ov = pytest.mark.skipif(not HAVE_OV, reason="openvino / onnx not installed")

PHOTOS = sorted(p for p in DATA.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@pytest.fixture(scope="module")
def weights():
    return get_model("sface").weights[1].verified_path()


@pytest.fixture(scope="module")
def detector_weights():
    return get_model("sface").weights[0].verified_path()


def sface_embedder(weights, runtime):
    return sface_model(get_model("sface").weights[0].verified_path(), weights, runtime)[1]


@pytest.fixture(scope="module")
def engine():
    return FaceEngine("sface")


@needs_ort
@pytest.mark.parametrize("runtime", [Runtime.ONNXRUNTIME, pytest.param(Runtime.OPENVINO, marks=needs_ov)])
def test_embeddings_equal_opencvs_on_every_test_face(runtime, weights, engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEAUDIT_CACHE_DIR", str(tmp_path))  # folded afresh, then cached there
    opencv = SFaceEmbedder(weights)
    other = sface_embedder(weights, runtime)
    assert len(list((tmp_path / "models").glob("*.onnx"))) == 2  # SFace and YuNet folds
    assert other.runtime.startswith(runtime.value) and opencv.runtime == "opencv dnn"
    cosines = []
    for path in PHOTOS:
        image = load_image(path)
        for face in engine.detect(image).faces:
            a, b = opencv.embed(image, face), other.embed(image, face)
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
    monkeypatch.setattr(onnx_mod, "fold_dequantized_weights", lambda *a: called.append(1) or real(*a))
    assert onnx_mod.folded_model(weights, cache_dir=tmp_path) == first
    assert called == [1]
    # a fold that differs from its pin (another onnx version) is used but not written
    other = tmp_path / "other"
    monkeypatch.setattr(onnx_mod, "FOLDED_SHA256", {k: "0" * 64 for k in onnx_mod.FOLDED_SHA256})
    assert onnx_mod.folded_model(weights, cache_dir=other) == first
    assert not (other / "models").exists() or not list((other / "models").glob("*.onnx"))
    # a file that is not one of the pinned ones is never folded, whatever its name
    stranger = tmp_path / weights.name
    stranger.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="not a pinned model file"):
        onnx_mod.folded_model(stranger, cache_dir=other)


def test_runtime_from_environment(monkeypatch):
    monkeypatch.delenv("FACEAUDIT_RUNTIME", raising=False)
    assert Runtime.from_environment() is Runtime.AUTO
    monkeypatch.setenv("FACEAUDIT_RUNTIME", "OpenCV")
    assert Runtime.from_environment() is Runtime.OPENCV
    monkeypatch.setenv("FACEAUDIT_RUNTIME", "tensorrt")
    with pytest.raises(InvalidParameterError, match="auto, opencv, onnxruntime, openvino"):
        Runtime.from_environment()


def test_runtime_plans(monkeypatch):
    """auto: YuNet on ONNX Runtime, SFace on OpenVINO on a CPU, on ONNX Runtime with CUDA;
    OpenCV for what is missing; an explicit runtime that is missing is a typed error."""
    def installed(ort, ov, cuda=False):
        monkeypatch.setattr(_sface, "onnxruntime_installed", lambda: ort)
        monkeypatch.setattr(_sface, "openvino_installed", lambda: ov)
        monkeypatch.setattr(_sface, "_cuda", lambda: cuda)

    installed(True, True)
    assert plan_runtime(Runtime.AUTO) == RuntimePlan(Runtime.ONNXRUNTIME, Runtime.OPENVINO)
    assert plan_runtime(Runtime.ONNXRUNTIME) == RuntimePlan(Runtime.ONNXRUNTIME, Runtime.ONNXRUNTIME)
    assert plan_runtime(Runtime.OPENCV) == RuntimePlan(Runtime.OPENCV, Runtime.OPENCV)
    installed(True, True, cuda=True)
    assert plan_runtime(Runtime.AUTO) == RuntimePlan(Runtime.ONNXRUNTIME, Runtime.ONNXRUNTIME)
    installed(True, False)
    assert plan_runtime(Runtime.AUTO) == RuntimePlan(Runtime.ONNXRUNTIME, Runtime.ONNXRUNTIME)
    with pytest.raises(ModelNotInstalledError, match="openvino"):
        plan_runtime(Runtime.OPENVINO)
    installed(False, True)
    assert plan_runtime(Runtime.AUTO) == RuntimePlan(Runtime.OPENCV, Runtime.OPENVINO)
    installed(False, False)
    assert plan_runtime(Runtime.AUTO) == RuntimePlan(Runtime.OPENCV, Runtime.OPENCV)
    assert plan_runtime(Runtime.AUTO).describe() == "opencv dnn"
    with pytest.raises(ModelNotInstalledError, match="onnxruntime"):
        plan_runtime(Runtime.ONNXRUNTIME)


def test_auto_falls_back_to_opencv_without_the_other_runtimes(weights, monkeypatch):
    monkeypatch.setattr(_sface, "onnxruntime_installed", lambda: False)
    monkeypatch.setattr(_sface, "openvino_installed", lambda: False)
    detector, embedder = sface_model(get_model("sface").weights[0].verified_path(), weights, Runtime.AUTO)
    assert embedder.runtime == "opencv dnn" and type(detector) is YuNetDetector


@needs_ov
@needs_ort
def test_auto_runs_sface_on_openvino_and_yunet_on_onnxruntime(weights):
    if _sface._cuda():
        pytest.skip("with CUDA, auto runs SFace on ONNX Runtime")
    detector, embedder = sface_model(get_model("sface").weights[0].verified_path(), weights, Runtime.AUTO)
    assert embedder.runtime == "openvino (CPU)" and isinstance(detector, onnx_mod.OnnxYuNetDetector)
    assert get_model("sface").runtime() == "YuNet on onnxruntime (CPU), SFace on openvino (CPU)"


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


@needs_ort
def test_onnxruntime_detector_finds_opencvs_faces(detector_weights):
    """YuNet through ONNX Runtime + our decoding and suppression against FaceDetectorYN on every
    test photo and the bundled sample's first 100: the same faces, in the same order, with
    boxes and landmarks within 0.001 px and scores within 1e-4."""
    from pathlib import Path

    import cv2

    opencv = YuNetDetector(detector_weights)
    ort = onnx_mod.OnnxYuNetDetector(detector_weights)
    sample = sorted((Path(__file__).resolve().parents[2] / "examples" / "sample").rglob("*.jpg"))[:100]
    compared = 0
    for path in PHOTOS + sample:
        bgr = load_image(path).bgr()
        for scale in (1.0, 0.5):  # odd sizes: padding to multiples of 32 on both sides
            small = bgr if scale == 1.0 else cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            a, b = opencv._raw_rows(small), ort._raw_rows(small)
            assert (a is None) == (b is None), path
            if a is None:
                continue
            assert a.shape == b.shape, path
            np.testing.assert_allclose(a[:, :14], b[:, :14], atol=1e-3)
            np.testing.assert_allclose(a[:, 14], b[:, 14], atol=1e-4)
            compared += len(a)
    assert compared >= 200


def test_suppression_keeps_the_best_of_overlapping_boxes():
    """yunet_rows on hand-made outputs: two overlapping candidates in one 32x32 input -> the
    better one; a third far away stays; scores at or below the threshold never appear."""
    out = {}
    for stride in (8, 16, 32):
        n = (32 // stride) ** 2
        out[f"cls_{stride}"] = np.zeros((1, n, 1), np.float32)
        out[f"obj_{stride}"] = np.ones((1, n, 1), np.float32)
        out[f"bbox_{stride}"] = np.zeros((1, n, 4), np.float32)
        out[f"kps_{stride}"] = np.zeros((1, n, 10), np.float32)
    out["cls_8"][0, [0, 1, 15], 0] = [0.81, 0.64, 0.49]  # scores 0.9, 0.8, 0.7 (sqrt of cls * obj)
    out["bbox_8"][0, :, 2:] = np.log(2.0)  # 16x16 boxes centred on their cells
    out["cls_16"][0, 3, 0] = 0.25  # score 0.5: below the threshold
    rows = onnx_mod.yunet_rows(out, 32, 32, 0.6, 0.3)
    np.testing.assert_allclose(rows[:, 14], [0.9, 0.7], atol=1e-6)
    np.testing.assert_allclose(rows[0, :4], [-8, -8, 16, 16])  # cell (0, 0): centre 0, 16 wide
    np.testing.assert_allclose(rows[1, :2], [3 * 8 - 8, 3 * 8 - 8])  # cell 15 = row 3, column 3
    assert onnx_mod.yunet_rows(out, 32, 32, 0.95, 0.3) is None


@needs_ort
def test_a_pool_folds_once_before_its_workers_start(tmp_path, monkeypatch):
    """The parent caches both folds before spawning workers: the workers load them, none folds."""
    from faceaudit.engine import EnginePool

    monkeypatch.setenv("FACEAUDIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FACEAUDIT_RUNTIME", "onnxruntime")
    photo = PHOTOS[0].read_bytes()
    pool = EnginePool("sface", workers=2)
    try:
        pool._executor()  # what map() does first: prepare here, then start the workers
        folds = sorted((tmp_path / "models").glob("*.onnx"))
        assert [p.name.split("-folded")[0] for p in folds] == [
            "face_detection_yunet_2023mar_int8bq", "face_recognition_sface_2021dec_int8bq"]
        written = {p: p.stat().st_mtime_ns for p in folds}
        results = dict(pool.map(_box_count, [("a", photo), ("b", photo)]))
    finally:
        pool.close()
    assert results["a"] == results["b"] >= 1
    assert {p: p.stat().st_mtime_ns for p in folds} == written  # the workers loaded them, none folded
    assert not list((tmp_path / "models").glob(".fold-*"))


def _box_count(engine, data):
    return len(engine.detect(data).faces)


def test_auto_falls_back_when_a_runtime_fails_to_load(weights, detector_weights, monkeypatch, caplog):
    """auto: a runtime that is installed but cannot load the network (e.g. an unsupported CPU)
    is logged and the next one used; an explicit choice that fails is a typed ModelError."""
    from faceaudit import ModelError
    from faceaudit.engine import _onnx

    def broken(*args, **kwargs):
        raise RuntimeError("this CPU is not supported")

    monkeypatch.setattr(_sface, "onnxruntime_installed", lambda: HAVE_ORT)
    monkeypatch.setattr(_sface, "openvino_installed", lambda: True)
    monkeypatch.setattr(_sface, "_cuda", lambda: False)
    monkeypatch.setattr(_onnx, "OpenVinoSFaceEmbedder", broken)
    monkeypatch.setattr(_onnx, "OnnxYuNetDetector", broken)
    with caplog.at_level("WARNING"):
        detector, embedder = sface_model(detector_weights, weights, Runtime.AUTO)
    assert type(detector) is YuNetDetector
    assert embedder.runtime == ("onnxruntime (CPU)" if HAVE_ORT else "opencv dnn")
    assert "does not load on openvino" in caplog.text
    with pytest.raises(ModelError, match="does not load on onnxruntime: this CPU"):
        sface_model(detector_weights, weights, Runtime.OPENVINO)



@needs_ort
def test_a_broken_fold_falls_back_under_auto(weights, detector_weights, monkeypatch, caplog):
    """A fold that fails its own check (e.g. an onnx that cannot write this model) is a load
    failure like any other: auto moves on to OpenCV for that network."""
    def bad_fold(*args, **kwargs):
        raise ModelIntegrityError("the folded model does not check")

    monkeypatch.setattr(onnx_mod, "folded_model", bad_fold)
    monkeypatch.setattr(_sface, "_cuda", lambda: False)
    with caplog.at_level("WARNING"):
        detector, embedder = sface_model(detector_weights, weights, Runtime.AUTO)
    assert type(detector) is YuNetDetector and embedder.runtime == "opencv dnn"
    with pytest.raises(ModelIntegrityError):
        sface_model(detector_weights, weights, Runtime.ONNXRUNTIME)


def test_a_loaded_model_says_what_runs_it(engine):
    from faceaudit.engine import FaceEngine

    fresh = FaceEngine("sface")
    assert fresh.loaded_runtime is None
    _ = fresh.model  # loads the model
    assert fresh.loaded_runtime == engine.model.runtime
    assert engine.model.runtime in (get_model("sface").runtime(), "opencv dnn")


def test_dequantize_refuses_scales_that_do_not_fit():
    q = np.zeros((2, 8), np.int8)
    with pytest.raises(ModelIntegrityError):  # 8 in blocks of 3 needs 3 scales per row, not 2
        onnx_mod._dequantize(q, np.ones((2, 2), np.float32), np.zeros((2, 2), np.int8), axis=1, block=3)
    with pytest.raises(ModelIntegrityError):  # a zero point of another shape than its scales
        onnx_mod._dequantize(q, np.ones((2, 3), np.float32), np.zeros((), np.int8), axis=1, block=3)
    with pytest.raises(ModelIntegrityError):  # per axis: one scale per row, 2 rows
        onnx_mod._dequantize(q, np.ones(3, np.float32), np.zeros(3, np.int8), axis=0, block=0)


_FIRST_INFERENCES = """
import sys, threading
from pathlib import Path
import numpy as np
from faceaudit.engine import _onnx
sys.setswitchinterval(1e-6)  # the GIL changes hands as often as it can: the race, if there is one, shows
embedder = _onnx.OpenVinoSFaceEmbedder(Path(sys.argv[1]))
start = threading.Barrier(8)
def first():
    start.wait()
    embedder._forward(np.zeros((1, 3, 112, 112), np.float32))
threads = [threading.Thread(target=first) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("all answered")
"""


@needs_ov
def test_openvino_first_inferences_from_many_threads_do_not_deadlock(weights):
    """A fresh process whose first OpenVINO inferences run in 8 threads at once: without the
    warm-up at load, OpenVINO's binding deadlocked (7 of 10 such processes hung; a fresh
    server worker stopped answering), so each process here must finish."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import faceaudit

    src = str(Path(faceaudit.__file__).parents[1])
    for _ in range(3):  # a fresh process each time: the race is on a process's first inference
        try:
            done = subprocess.run([sys.executable, "-c", _FIRST_INFERENCES, str(weights)], capture_output=True,
                                  text=True, timeout=60, env={**os.environ, "PYTHONPATH": src})
        except subprocess.TimeoutExpired:
            pytest.fail("the first OpenVINO inferences of 8 threads deadlocked")
        assert done.returncode == 0, done.stderr
        assert "all answered" in done.stdout
