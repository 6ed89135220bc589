"""Quality measures and head pose computed from a face box and its landmarks.

These are simple, documented estimates (not learned models):

- brightness: mean luminance (ITU-R BT.601) of the face box, scaled 0-100.
- sharpness: variance of the Laplacian of the face box resized to 112x112,
  mapped to 0-100 by ``100 * (1 - exp(-var / 300))``.
- noise: the standard deviation of pixel noise in the face box at its own resolution,
  in 8-bit gray levels, by Immerkaer's estimator (J. Immerkaer, "Fast Noise Variance
  Estimation", Computer Vision and Image Understanding 64(2), 1996): the mean absolute
  response to the 3x3 mask [[1,-2,1],[-2,4,-2],[1,-2,1]] (which cancels smooth image
  structure) times sqrt(pi/2) / 6. Low light raises it (sensor gain).
- pose: roll from the eye line; yaw from the nose's horizontal offset from the
  eye midpoint; pitch from the nose's height between the eye and mouth lines.
  Accurate to roughly +-10 degrees near frontal; enough for EXTREME_POSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from faceaudit.engine._types import (
    LANDMARK_TYPES,
    BoundingBox,
    DetectedFace,
    Landmark,
    Pose,
    Quality,
)

_SHARPNESS_SCALE = 300.0
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_FRONTAL_NOSE_RATIO = 0.55  # nose height between eye line (0) and mouth line (1), frontal face


def estimate_pose(landmarks_px: np.ndarray) -> Pose:
    """Estimate roll, yaw and pitch in degrees from five landmarks (pixels)."""
    eye_l, eye_r, nose, mouth_l, mouth_r = (landmarks_px[i].astype(np.float64) for i in range(5))
    eye_vec = eye_r - eye_l
    interocular = float(np.hypot(*eye_vec))
    if interocular < 1e-6:
        return Pose(0.0, 0.0, 0.0)
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    # rotate into the eye-aligned frame
    c, s = eye_vec / interocular
    rot = np.array([[c, s], [-s, c]])
    eye_mid = (eye_l + eye_r) / 2
    mouth_mid = (mouth_l + mouth_r) / 2
    n = rot @ (nose - eye_mid)
    m = rot @ (mouth_mid - eye_mid)
    yaw = math.degrees(math.asin(float(np.clip(2.0 * n[0] / interocular, -1.0, 1.0))))
    if m[1] > 1e-6:
        ratio = n[1] / m[1]
        pitch = float(np.clip((ratio - _FRONTAL_NOSE_RATIO) * 150.0, -90.0, 90.0))
    else:
        pitch = 0.0
    return Pose(roll=round(roll, 3), yaw=round(yaw, 3), pitch=round(pitch, 3))


def eye_distance(landmarks_px: np.ndarray) -> float:
    """Pixels between the two eye landmarks (the first two of :data:`LANDMARK_TYPES`)."""
    lm = np.asarray(landmarks_px, dtype=np.float64).reshape(-1, 2)
    return float(np.hypot(*(lm[1] - lm[0])))


def measure_noise(gray: np.ndarray) -> float:
    """Estimated standard deviation of pixel noise (8-bit gray levels, >= 0) of a grayscale
    crop, by Immerkaer's estimator (see the module docstring); 0.0 for a crop under 3x3."""
    h, w = gray.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    src = gray if gray.dtype in (np.uint8, np.float32) else np.asarray(gray, np.float32)
    response = cv2.filter2D(src, cv2.CV_32F, _NOISE_MASK)[1:-1, 1:-1]  # exact for 8-bit pixels
    return float(math.sqrt(math.pi / 2.0) * cv2.norm(response, cv2.NORM_L1) / (6.0 * (w - 2) * (h - 2)))


def measure_quality(
    pixels: np.ndarray, box_px: tuple[float, float, float, float], gray_code: int | None = None,
    eye_distance_px: float = 0.0,
) -> Quality:
    """Brightness and sharpness (0-100) and noise (gray levels) of the face box.

    ``pixels`` is a grayscale image, or a colour one with ``gray_code`` the OpenCV
    conversion to gray (``cv2.COLOR_BGR2GRAY`` / ``cv2.COLOR_RGB2GRAY``): then only
    the face box is converted, which gives the same gray pixels as converting the
    whole image and cropping, at a fraction of the work.
    """
    h, w = pixels.shape[:2]
    x, y, bw, bh = box_px
    x0, y0 = max(int(round(x)), 0), max(int(round(y)), 0)
    x1, y1 = min(int(round(x + bw)), w), min(int(round(y + bh)), h)
    size = float(min(bw, bh))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return Quality(brightness=0.0, sharpness=0.0, face_size_px=size, eye_distance_px=eye_distance_px)
    crop = pixels[y0:y1, x0:x1]
    if gray_code is not None:
        crop = cv2.cvtColor(crop, gray_code)
    brightness = float(crop.mean()) * 100.0 / 255.0
    small = cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA)
    var = float(cv2.Laplacian(small, cv2.CV_64F).var())
    sharpness = 100.0 * (1.0 - math.exp(-var / _SHARPNESS_SCALE))
    return Quality(
        brightness=round(brightness, 3), sharpness=round(sharpness, 3), face_size_px=round(size, 2),
        eye_distance_px=eye_distance_px, noise=round(measure_noise(crop), 3),
    )


def build_face(
    pixels: np.ndarray,
    box_px: tuple[float, float, float, float],
    landmarks_px: np.ndarray,
    confidence: float,
    gray_code: int | None = None,
) -> DetectedFace:
    """Assemble a :class:`DetectedFace` from detector output in original-image pixels.

    ``pixels``/``gray_code``: the image, as for :func:`measure_quality`.
    """
    h, w = pixels.shape[:2]
    x, y, bw, bh = (float(v) for v in box_px)
    landmarks_px = np.asarray(landmarks_px, dtype=np.float32).reshape(5, 2)
    box = BoundingBox(left=x / w, top=y / h, width=bw / w, height=bh / h)
    landmarks = tuple(
        Landmark(type=name, x=float(px) / w, y=float(py) / h)
        for name, (px, py) in zip(LANDMARK_TYPES, landmarks_px, strict=True)
    )
    return DetectedFace(
        bounding_box=box,
        confidence=float(np.clip(confidence, 0.0, 100.0)),
        landmarks=landmarks,
        pose=estimate_pose(landmarks_px),
        quality=measure_quality(pixels, (x, y, bw, bh), gray_code, round(eye_distance(landmarks_px), 2)),
        box_px=(x, y, bw, bh),
        landmarks_px=landmarks_px,
    )


@dataclass(frozen=True)
class QualityBand:
    """A named band of probe quality by eye distance (pixels between the eye landmarks).

    ``low`` is inclusive and ``high`` exclusive (None: no upper end), in pixels.
    """

    name: str
    low: float
    high: float | None
    meaning: str


QUALITY_BANDS = (
    QualityBand("portrait", 30.0, None,
                "portrait size: the Congress portraits every shipped number was measured on have a median of 32 px "
                "between the eyes (10th percentile 23)"),
    QualityBand("small", 20.0, 30.0,
                "smaller than most portraits measured: a doorbell face about 1.5-2 m away (1080p, 155 deg lens)"),
    QualityBand("tiny", 10.0, 20.0,
                "a doorbell face about 3 m away or a CCTV face 4-8 m away: on degraded portraits the model "
                "misses far more mates here (issue 19: 5% at 15 px against 1.5% at portrait size, 76% at "
                "20 px with blur and low light)"),
    QualityBand("below-measured", 0.0, 10.0,
                "below the smallest tested condition (cctv-8m, 9.6 px): no error rate was measured at this size"),
)
"""The bands, best first. The edges follow the camera geometry of the presets
(engine/_conditions.py): 30 px is a 1080p doorbell at 1.5 m and the portraits' own size,
20 px about a CCTV camera at 4 m, 10 px a CCTV camera at 8 m, the smallest preset.
Size alone does not tell a day probe from a night one (at 15 px the model missed 4% of
mates by day, 97% at night): :func:`probe_band` adds the noise axis (:data:`NOISY_LEVELS`).
Sharpness is reported beside the bands, not folded in: the face box is resized to 112 px
for it, so it reads soft at every small size, and sensor noise reads as detail."""


def quality_band(eye_distance_px: float) -> QualityBand:
    """The band of a face whose eyes are ``eye_distance_px`` pixels apart (a number >= 0)."""
    if isinstance(eye_distance_px, bool) or not isinstance(eye_distance_px, (int, float)) \
            or not math.isfinite(eye_distance_px) or eye_distance_px < 0:
        from faceaudit._errors import InvalidParameterError

        raise InvalidParameterError(f"an eye distance must be a number of pixels >= 0, got {eye_distance_px!r}")
    for band in QUALITY_BANDS:
        if eye_distance_px >= band.low:
            return band
    return QUALITY_BANDS[-1]  # pragma: no cover - the last band starts at 0


NOISY_LEVELS = 5.5
"""Face-box noise (:func:`measure_noise`, 8-bit gray levels) at or above which a probe is
*noisy*: the capture axis of probe quality, beside eye distance. Chosen from the measured
conditions (the 535 2018 portraits, SFace's detector, the presets of engine/_conditions.py;
the sface calibration file's ``probe_bands.noise_by_condition``, docs/public-audit/probe-bands.md):
the night doorbell (gamma 2, sensor noise 6, H.264 at 1 Mbit/s) reads 6.09 / 8.09 / 9.30 levels
at its 5th / 50th / 95th percentile and 506 of its 524 faces (96.6%) reach 5.5; the daylight
presets read at most 2.04 at their 95th percentile and none reaches it; the clean portraits
1.18 / 2.06 / 4.61, 13 of 535 (2.4%) at or above 5.5 (large, finely textured photos).
Brightness was not used: a face's mean luminance also depends on the person's skin
(the clean portraits of Black members read 35 at their 10th percentile, the night
doorbell's probes 39 at their 90th), and the axis must say nothing about the person."""


@dataclass(frozen=True)
class ProbeBand:
    """A probe quality band on both axes: eye distance (:class:`QualityBand`) and noise.

    ``noisy``: True for a noisy probe (noise >= :data:`NOISY_LEVELS`), False for a clear one,
    None for a band by eye distance alone (the noise was not measured, or the band predates
    the noise axis: "portrait", "small", "tiny" keep meaning what they meant). The name is
    the size band's, with "-clear" or "-noisy" when the noise is known; "below-measured"
    has no noise suffix (nothing was measured below it at any noise).
    """

    name: str
    size: QualityBand
    noisy: bool | None

    @property
    def meaning(self) -> str:
        if self.noisy is None:
            return self.size.meaning
        grain = (f"noisy (sensor noise of the face at least {NOISY_LEVELS:g} gray levels: a night or "
                 "low-light frame)" if self.noisy
                 else f"clear (sensor noise under {NOISY_LEVELS:g} gray levels: daylight or a portrait)")
        return f"{grain}; {self.size.meaning}"

    def meets(self, minimum: ProbeBand) -> bool:
        """True when a probe of this band is at least ``minimum``: eyes at least as far apart as
        the minimum's size band, and clear where the minimum asks for clear (a probe whose noise
        is unknown does not meet a "-clear" minimum)."""
        sizes = [b.name for b in QUALITY_BANDS]
        if sizes.index(self.size.name) > sizes.index(minimum.size.name):
            return False
        return minimum.noisy is not False or self.noisy is False


_BELOW = QUALITY_BANDS[-1]
PROBE_BANDS: tuple[ProbeBand, ...] = (
    *(ProbeBand(f"{size.name}-{'noisy' if noisy else 'clear'}", size, noisy)
      for size in QUALITY_BANDS[:-1] for noisy in (False, True)),
    ProbeBand(_BELOW.name, _BELOW, None),
)
"""The bands a measured probe falls in, by size (best first) and, within a size, clear before
noisy; "below-measured" ends the list."""

SIZE_ONLY_BANDS: tuple[ProbeBand, ...] = tuple(ProbeBand(b.name, b, None) for b in QUALITY_BANDS[:-1])
"""The bands by eye distance alone (the names used before the noise axis), for probes whose
noise is unknown and for policies set before it."""


def probe_band_named(name: str) -> ProbeBand:
    """The band called ``name`` (a :data:`PROBE_BANDS` name or a size-only one); InvalidParameterError otherwise."""
    for band in PROBE_BANDS + SIZE_ONLY_BANDS:
        if band.name == name:
            return band
    from faceaudit._errors import InvalidParameterError

    raise InvalidParameterError(
        f"unknown probe quality band {name!r} (bands: {', '.join(b.name for b in PROBE_BANDS + SIZE_ONLY_BANDS)})")


def probe_band(eye_distance_px: float, noise: float | None) -> ProbeBand:
    """The band of a face ``eye_distance_px`` pixels between the eyes whose face box has ``noise``
    gray levels of noise (None: not measured, giving the band by eye distance alone)."""
    size = quality_band(eye_distance_px)
    if size.name == _BELOW.name:
        return PROBE_BANDS[-1]
    if noise is None:
        return next(b for b in SIZE_ONLY_BANDS if b.size.name == size.name)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        from faceaudit._errors import InvalidParameterError

        raise InvalidParameterError(f"a noise level must be a number of gray levels >= 0, got {noise!r}")
    noisy = float(noise) >= NOISY_LEVELS
    return next(b for b in PROBE_BANDS if b.size.name == size.name and b.noisy is noisy)


def stored_quality(detail: object, width: object, height: object) -> Quality | None:
    """The quality of a stored face, from its FaceDetail at indexing (Rekognition's shape) and its
    image's size in pixels: eye distance from the eyeLeft / eyeRight landmarks (fractions of the
    image), brightness and sharpness from its Quality; the noise was not kept (None), the face
    size is the box's shorter side. None when the detail or the size lacks what is needed (a face
    indexed without landmarks, an image row without its size)."""
    try:
        w, h = float(width), float(height)  # type: ignore[arg-type]
        if not (w > 0 and h > 0) or not isinstance(detail, dict):
            return None
        marks = {lm["Type"]: (float(lm["X"]) * w, float(lm["Y"]) * h) for lm in detail["Landmarks"]}
        (lx, ly), (rx, ry) = marks["eyeLeft"], marks["eyeRight"]
        q, box = detail["Quality"], detail.get("BoundingBox") or {}
        size = min(float(box.get("Width", 0.0)) * w, float(box.get("Height", 0.0)) * h)
        values = (math.hypot(rx - lx, ry - ly), float(q["Brightness"]), float(q["Sharpness"]), size)
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    eyes, brightness, sharpness, size = values
    return Quality(brightness=round(brightness, 3), sharpness=round(sharpness, 3), face_size_px=round(size, 2),
                   eye_distance_px=round(eyes, 2), noise=None)
