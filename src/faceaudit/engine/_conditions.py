"""Probe conditions: a probe photo degraded the way a doorbell or CCTV camera would take it.

A :class:`ProbeCondition` is data: a name, a version and ordered steps, parsed from a spec
such as ``iod=15,blur=1,gamma=2,noise=6,gray,jpeg=50`` or named by a preset. Applying it to
a photo is deterministic: every random draw comes from a numpy Generator seeded by the
condition's version and the photo's SHA-256, so the same photo under the same condition
gives the same pixels on every machine and every run.

Steps, applied in the order written:

``iod=PX``
    Scale the whole image (OpenCV INTER_AREA) so that the eyes of its largest face are PX
    pixels apart, measured from the detector's landmarks on the original. (Run again on the
    scaled image, the detector's int8 landmarks land within about 10% of PX, not exactly:
    their jitter at small sizes.) Never enlarges:
    a photo whose eyes are already closer than PX keeps its size (a camera cannot add detail).
``blur=SIGMA``
    Gaussian blur (OpenCV), SIGMA in pixels of the image after scaling (defocus, a soft lens).
``motion=LENGTH``
    Horizontal linear motion blur over LENGTH pixels (a person walking across the view).
``gamma=G``
    Darkening: each 8-bit level x becomes 255 * (x / 255) ** G (G > 1 darkens; low light).
``noise=SIGMA``
    Poisson-Gaussian sensor noise in 8-bit levels: shot noise (Poisson photo-electron counts
    at :data:`SHOT_GAIN` levels per electron, so its variance grows with the level) plus Gaussian
    read noise of SIGMA levels, drawn per pixel and channel (once per pixel on a gray image).
    The gain is an assumption, not a measured sensor.
``gray``
    Grayscale (ITU-R BT.601 luma), as a night camera's infrared mode records.
``jpeg=Q``
    A JPEG re-encode at quality Q (OpenCV / libjpeg), decoded again.
``h264=KBPS``
    A real H.264 encode and decode (libx264 through PyAV): KBPS is the bitrate of a 1080p
    stream; the probe gets the same bits per pixel (see :func:`h264_roundtrip`).

The presets (:data:`PRESETS`) are derived from camera geometry: for a camera W pixels wide
with horizontal field of view HFOV (radians) and a face d metres away, the eyes (63 mm apart:
Dodgson 2004, mean adult interpupillary distance 63.4 mm) are about
``IOD_px = (0.063 / d) * W / HFOV`` pixels apart (../shared/docs/probe-conditions.md).
The degradations are synthetic: they show the direction and rough size of the effect of
size, blur, low light and compression, not error rates on real footage. Pose, occlusion
and lens distortion are not synthesised.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from faceaudit._errors import InvalidParameterError, NoFaceError
from faceaudit.engine._image import Image
from faceaudit.engine._types import DetectedFace

TRANSFORMS_VERSION = "1"
"""Bumped whenever a step's arithmetic changes: every condition's version changes with it."""

SHOT_GAIN = 0.5
"""8-bit levels per photo-electron of the simulated sensor (an assumption): at level 64 the
shot noise alone has a standard deviation of sqrt(64 * 0.5) = 5.7 levels."""

H264_FPS = 15
"""Frame rate of the stream ``h264=KBPS`` describes (doorbells and CCTV record 15-30 fps)."""

H264_REFERENCE_PIXELS = 1920 * 1080
"""``h264=KBPS`` is the bitrate of a stream this many pixels a frame (1080p)."""

H264_MIN_FRAME = (480, 270)
"""The smallest frame the ``h264`` step encodes (1/16 of 1080p): x264's fixed costs per frame
would otherwise swallow a small probe's share of the bits."""

UPSCALE_FACTORS = (2.0, 4.0)
"""A small image in which the detector finds no face is searched again enlarged this much."""

UPSCALE_MAX_SIDE = 1280
"""Enlarging stops at this longer side (the detector downscales larger images anyway)."""

EYE_MM = 63.0
"""Mean adult interpupillary distance in millimetres (Dodgson 2004: 63.4 mm)."""


def eye_distance_px(camera_width_px: int, hfov_degrees: float, distance_m: float) -> float:
    """Pixels between the eyes of a face ``distance_m`` metres from a camera ``camera_width_px``
    wide with a ``hfov_degrees`` horizontal field of view: (0.063 / d) * W / HFOV(rad)."""
    return (EYE_MM / 1000.0 / distance_m) * camera_width_px / math.radians(hfov_degrees)


# (name, range low, range high, takes a value): the grammar of one step
_STEPS: dict[str, tuple[float, float, bool]] = {
    "iod": (2.0, 1000.0, True),
    "blur": (0.0, 50.0, True),
    "motion": (1.0, 101.0, True),
    "gamma": (0.1, 10.0, True),
    "noise": (0.0, 100.0, True),
    "gray": (0.0, 0.0, False),
    "jpeg": (1.0, 100.0, True),
    "h264": (10.0, 100_000.0, True),
}


@dataclass(frozen=True)
class Step:
    """One transform: ``kind`` (a key of the grammar) and its value (None for ``gray``)."""

    kind: str
    value: float | None = None

    @property
    def spec(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value:g}"


@dataclass(frozen=True)
class ProbeCondition:
    """A named, versioned, seeded image transform applied to a probe before detection.

    ``version`` names the arithmetic and the steps (it keys cached embeddings: a changed
    version is embedded again); ``source`` says where a preset's numbers come from.
    """

    name: str
    steps: tuple[Step, ...]
    version: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", f"t{TRANSFORMS_VERSION}:{self.spec or 'clean'}")

    @property
    def spec(self) -> str:
        """The steps in the spec grammar ("" for the clean condition)."""
        return ",".join(s.spec for s in self.steps)

    @property
    def is_clean(self) -> bool:
        return not self.steps

    @property
    def target_eye_distance(self) -> float | None:
        """The ``iod`` step's eye distance in pixels, or None when the condition keeps the size."""
        for s in self.steps:
            if s.kind == "iod":
                return s.value
        return None

    def rng(self, image_sha256: str) -> np.random.Generator:
        """The Generator for one image: seeded by this condition's version and the image's SHA-256."""
        digest = hashlib.sha256(f"{self.version}\0{image_sha256}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:16], "big"))

    def apply(self, rgb: np.ndarray, image_sha256: str, eye_distance: float | None = None) -> np.ndarray:
        """The degraded copy of ``rgb`` (uint8, H x W x 3, RGB); the input is not changed.

        ``eye_distance``: pixels between the eyes of the largest face of ``rgb`` (needed by
        ``iod``; :func:`degrade` measures it with the detector).
        """
        rng = self.rng(image_sha256)
        out = np.ascontiguousarray(rgb, dtype=np.uint8)
        for step in self.steps:
            out = _APPLY[step.kind](out, step.value, rng, eye_distance)
        return out


def _scale(img: np.ndarray, px: float | None, rng, eye_distance: float | None) -> np.ndarray:
    if px is None:  # pragma: no cover - the grammar gives iod a value
        return img
    if eye_distance is None or eye_distance <= 0:
        raise NoFaceError("no face on the original photo to measure the eye distance the iod step needs")
    factor = float(px) / float(eye_distance)
    if factor >= 1.0:
        return img
    h, w = img.shape[:2]
    size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _blur(img, sigma, rng, _iod):
    if sigma <= 0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT)


def _motion(img, length, rng, _iod):
    n = max(1, int(round(length)))
    if n == 1:
        return img
    kernel = np.full((1, n), 1.0 / n, np.float32)
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)


def _gamma(img, g, rng, _iod):
    lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** float(g)), 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def _noise(img, sigma, rng: np.random.Generator, _iod):
    if (img.ndim == 3 and img.shape[2] == 3
            and np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])):
        one = _noise(img[..., :1], sigma, rng, _iod)  # a gray (infrared) image: one sensor value a pixel
        return np.repeat(one, 3, axis=2)
    x = img.astype(np.float64)
    shot = rng.poisson(x / SHOT_GAIN) * SHOT_GAIN
    y = shot + rng.normal(0.0, float(sigma), size=x.shape) if sigma > 0 else shot
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def _gray(img, _v, rng, _iod):
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)


def _jpeg(img, q, rng, _iod):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(q)])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
        raise InvalidParameterError("the jpeg step could not encode the image")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:  # pragma: no cover - OpenCV decodes what it encoded
        raise InvalidParameterError("the jpeg step could not decode the image it encoded")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def h264_roundtrip(img: np.ndarray, kbps: float) -> tuple[np.ndarray, int]:
    """(decoded RGB, encoded bytes) of the image through libx264 at ``kbps`` for a 1080p stream.

    The image is placed in a frame at least :data:`H264_MIN_FRAME` (its edges repeated: flat,
    cheap to code, like a still background) and is the scene of one second of video (:data:`H264_FPS`
    identical frames, one group of pictures); the stream's rate is its share of a 1080p stream at ``kbps``
    (``kbps * (w * h) / (1920 * 1080)``, the same bits per pixel), held by x264's VBV over that
    second. The key frame is returned. A still scene lets the encoder spend most of the
    second's bits on that frame, so this is the best a frame of such a stream looks: a moving
    person costs bits in every frame and looks worse.
    """
    from fractions import Fraction

    import av

    h, w = img.shape[:2]
    # the probe sits in a larger frame of flat surroundings (cheap to code, as a still background
    # is): at least H264_MIN_FRAME, even sides for yuv420p; the probe is cropped back after
    pw = max(w, H264_MIN_FRAME[0]) + (max(w, H264_MIN_FRAME[0]) % 2)
    ph = max(h, H264_MIN_FRAME[1]) + (max(h, H264_MIN_FRAME[1]) % 2)
    padded = cv2.copyMakeBorder(img, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE) if (ph, pw) != (h, w) else img
    rate_kbps = max(1, int(round(kbps * (pw * ph) / H264_REFERENCE_PIXELS)))
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = pw, ph, "yuv420p"
    codec.time_base = Fraction(1, H264_FPS)
    codec.framerate = Fraction(H264_FPS, 1)
    codec.bit_rate = rate_kbps * 1000
    codec.options = {
        "preset": "medium",
        "x264-params": f"keyint={H264_FPS}:vbv-maxrate={rate_kbps}:vbv-bufsize={rate_kbps}:threads=1",
    }
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24").reformat(format="yuv420p")
    packets = []
    for i in range(H264_FPS):
        frame.pts = i
        packets.extend(codec.encode(frame))
    packets.extend(codec.encode(None))
    data = b"".join(bytes(p) for p in packets)
    decoder = av.CodecContext.create("h264", "r")
    decoder.options = {"threads": "1"}
    decoded: list[np.ndarray] = []
    for p in packets:
        decoded.extend(f.to_ndarray(format="rgb24") for f in decoder.decode(p))
        if decoded:
            break
    if not decoded:
        decoded.extend(f.to_ndarray(format="rgb24") for f in decoder.decode(None))
    if not decoded:  # pragma: no cover - libx264 always emits the frames on flush
        raise InvalidParameterError("the h264 step produced no frame")
    return np.ascontiguousarray(decoded[0][:h, :w]), len(data)


def _h264(img, kbps, rng, _iod):
    return h264_roundtrip(img, float(kbps))[0]


_APPLY: dict[str, Callable[..., np.ndarray]] = {
    "iod": _scale, "blur": _blur, "motion": _motion, "gamma": _gamma, "noise": _noise, "gray": _gray,
    "jpeg": _jpeg, "h264": _h264,
}


def parse_steps(spec: str) -> tuple[Step, ...]:
    """The steps of a spec such as ``iod=20,blur=1,gamma=2,noise=6,jpeg=50``.

    InvalidParameterError naming the bad token for an unknown step, a missing or extra
    value, a value that is not a number, a value out of range, or a step given twice.
    """
    steps: list[Step] = []
    seen = set()
    tokens = [t.strip() for t in spec.split(",")]
    if not any(tokens):
        raise InvalidParameterError("a probe condition needs at least one step (or the preset 'clean')")
    for token in tokens:
        if not token:
            raise InvalidParameterError(f"empty step in probe condition {spec!r}")
        kind, eq, raw = token.partition("=")
        kind = kind.strip().lower()
        if kind not in _STEPS:
            raise InvalidParameterError(
                f"unknown probe condition step {token!r} (steps: {', '.join(_STEPS)}; presets: {', '.join(PRESETS)})")
        low, high, takes = _STEPS[kind]
        if kind in seen:
            raise InvalidParameterError(f"probe condition step {token!r} given twice")
        seen.add(kind)
        if not takes:
            if eq:
                raise InvalidParameterError(f"probe condition step {token!r} takes no value")
            steps.append(Step(kind))
            continue
        if not eq or not raw.strip():
            raise InvalidParameterError(f"probe condition step {token!r} needs a value: {kind}=NUMBER")
        try:
            value = float(raw)
        except ValueError:
            raise InvalidParameterError(f"probe condition step {token!r}: {raw.strip()!r} is not a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise InvalidParameterError(f"probe condition step {token!r}: {kind} must be from {low:g} to {high:g}")
        steps.append(Step(kind, value))
    return tuple(steps)


def _preset(name: str, spec: str, source: str) -> ProbeCondition:
    return ProbeCondition(name, parse_steps(spec) if spec else (), source=source)


_DOORBELL = "1080p doorbell, 155 deg lens (e.g. Ring Video Doorbell 2nd gen)"
_CCTV = "1080p CCTV camera, 90 deg lens"
PRESETS: dict[str, ProbeCondition] = {
    p.name: p for p in (
        _preset("clean", "", "the photo as given"),
        _preset("doorbell-day-1.5m", "iod=30,blur=0.6,h264=2000",
                f"{_DOORBELL} in daylight, face 1.5 m away: (0.063/1.5) * 1920/2.71 = 29.8 px between the eyes; "
                "slight lens softness; H.264 at 2 Mbit/s"),
        _preset("doorbell-day-3m", "iod=15,blur=0.6,h264=2000",
                f"{_DOORBELL} in daylight, face 3 m away: (0.063/3) * 1920/2.71 = 14.9 px; slight lens softness; "
                "H.264 at 2 Mbit/s"),
        _preset("doorbell-night-3m", "iod=15,blur=1,gray,gamma=2,noise=6,h264=1000",
                f"{_DOORBELL} at night (infrared: grayscale, dark, sensor noise), face 3 m away: 14.9 px; "
                "H.264 at 1 Mbit/s"),
        _preset("cctv-4m", "iod=19,blur=0.8,motion=3,h264=2000",
                f"{_CCTV}, person walking 4 m away: (0.063/4) * 1920/1.57 = 19.3 px; motion blur over 3 px; "
                "H.264 at 2 Mbit/s"),
        _preset("cctv-8m", "iod=10,blur=0.8,motion=3,h264=2000",
                f"{_CCTV}, person walking 8 m away: (0.063/8) * 1920/1.57 = 9.6 px; motion blur over 3 px; "
                "H.264 at 2 Mbit/s"),
    )
}
"""Named conditions grounded in camera geometry (``source`` holds the arithmetic)."""

CLEAN = PRESETS["clean"]


def probe_condition(text: str) -> ProbeCondition:
    """A preset by name, or a condition parsed from a spec (named by its spec)."""
    key = text.strip()
    if key.lower() in PRESETS:
        return PRESETS[key.lower()]
    steps = parse_steps(key)
    return ProbeCondition(",".join(s.spec for s in steps), steps, source="spec given by the user")


def conditions_with_clean(texts: Sequence[str]) -> tuple[ProbeCondition, ...]:
    """``clean`` first, then each condition of ``texts`` once (by version), in order."""
    out: list[ProbeCondition] = [CLEAN]
    for t in texts:
        c = probe_condition(t)
        if all(c.version != o.version for o in out):
            out.append(c)
    return tuple(out)


# -- detection of small faces and degrading a photo ----------------------------------------------

def _rescaled(face: DetectedFace, factor: float, pixels_bgr: np.ndarray) -> DetectedFace:
    from faceaudit.engine._quality import build_face

    x, y, w, h = (float(v) / factor for v in face.box_px)
    box = (x, y, w, h)
    return build_face(pixels_bgr, box, face.landmarks_px / factor, face.confidence, cv2.COLOR_BGR2GRAY)


def detect_upscaled(detector, image: Image, limit: int | None = None,
                    factors: Sequence[float] = UPSCALE_FACTORS) -> tuple[list[DetectedFace], float]:
    """Faces as a system built for small faces finds them: ``(faces, factor)``.

    The detector runs on the image; when it finds nothing, on the image enlarged by each
    of ``factors`` (bicubic; capped at :data:`UPSCALE_MAX_SIDE` on the longer side), and the
    first that finds a face wins. Boxes and landmarks map back to pixels of ``image``,
    where quality is measured; ``factor`` is 1.0 when no enlarging was needed, and the faces
    are empty when none of the sizes gave one (a failure to enrol).
    """
    faces = detector.detect(image, limit)
    if faces:
        return faces, 1.0
    longest = max(image.width, image.height)
    tried = {1.0}
    for f in factors:
        factor = min(float(f), UPSCALE_MAX_SIDE / float(longest))
        if factor < 1.2 or any(abs(factor - t) < 0.05 for t in tried):
            continue
        tried.add(factor)
        size = (int(round(image.width * factor)), int(round(image.height * factor)))
        big = cv2.resize(np.ascontiguousarray(image.pixels), size, interpolation=cv2.INTER_CUBIC)
        found = detector.detect(pixels_image(big, image.sha256), limit)
        if found:
            exact = (size[0] / image.width + size[1] / image.height) / 2.0
            bgr = image.bgr()
            return [_rescaled(face, exact, bgr) for face in found], factor
    return [], 1.0


def pixels_image(rgb: np.ndarray, sha256: str) -> Image:
    """An :class:`Image` of pixels made here (no bytes were decoded): ``sha256`` names its source."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    return Image(pixels=rgb, format="RAW", sha256=sha256, byte_size=int(rgb.nbytes))


@dataclass(frozen=True, eq=False)
class DegradedProbe:
    """A photo under a condition: the degraded image, the eye distance on the original (pixels,
    from the detector's landmarks; None when not measured), and the scale the image was
    resized by (1.0 when kept)."""

    image: Image
    original_eye_distance: float | None
    condition: ProbeCondition = field(repr=False)
    scale: float = 1.0

    @property
    def eye_distance(self) -> float | None:
        """The original's eye landmarks carried through the scaling: pixels between the eyes."""
        return None if self.original_eye_distance is None else self.original_eye_distance * self.scale


def degrade(detector, image: Image, condition: ProbeCondition) -> DegradedProbe:
    """``image`` under ``condition``; the eye distance for ``iod`` is measured by ``detector``
    on the original's largest face. NoFaceError when ``iod`` needs a face the original lacks."""
    if condition.is_clean:
        return DegradedProbe(image, None, condition)
    eyes: float | None = None
    if condition.target_eye_distance is not None:
        faces = detector.detect(image, 1)
        if faces:
            eyes = faces[0].quality.eye_distance_px
    pixels = condition.apply(image.pixels, image.sha256, eyes)
    sha = hashlib.sha256(f"{condition.version}\0{image.sha256}".encode()).hexdigest()
    scale = (pixels.shape[1] / image.width + pixels.shape[0] / image.height) / 2.0
    return DegradedProbe(pixels_image(pixels, sha), eyes, condition, scale)
