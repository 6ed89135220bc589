"""Reading stored video: OpenCV's bundled FFmpeg (``cv2.VideoCapture``), checked before decoding.

:func:`probe_video` opens a file, reads what its container declares (codec,
frame rate, size, frame count) and refuses, before any frame is decoded, what
is over :class:`VideoLimits` (VideoTooLargeException) or cannot be decoded
(InvalidParameterException). :func:`sample_frames` then yields frames at a
chosen rate (frames per second of video time), each with its timestamp in
milliseconds from the start. A stream that ends well before the frame count its
container declares is refused as truncated; zero decodable frames as well.
MP4 and MOV (H.264, MPEG-4), AVI and MKV are read; anything FFmpeg decodes works.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import cv2
import numpy as np

from faceaudit._errors import InvalidParameterError, InvalidVideoError, VideoTooLargeError
from faceaudit.engine import Image

log = logging.getLogger(__name__)

REKOGNITION_MAX_VIDEO_BYTES = 10 * 1024 ** 3
"""Rekognition Video's limit for a stored video file: 10 GB."""
REKOGNITION_MAX_VIDEO_SECONDS = 6 * 3600.0
"""Rekognition Video's limit for a stored video's length: 6 hours."""
DEFAULT_SAMPLE_FPS = 2.0
"""Frames analysed per second of video unless the caller asks for another rate."""
MAX_SAMPLE_FPS = 30.0


@dataclass(frozen=True)
class VideoLimits:
    """What a stored video may be: bytes, length (seconds), pixels per frame and frame rate."""

    max_bytes: int = REKOGNITION_MAX_VIDEO_BYTES
    max_seconds: float = REKOGNITION_MAX_VIDEO_SECONDS
    max_pixels: int = 3840 * 2160  # 4K UHD
    min_side: int = 64
    max_frame_rate: float = 240.0


@dataclass(frozen=True)
class VideoMetadata:
    """What the container declares: codec (FourCC), length in milliseconds, format, frames per
    second and frame size in pixels."""

    codec: str
    duration_millis: int
    format: str
    frame_rate: float
    frame_width: int
    frame_height: int
    frame_count: int

    def to_rekognition(self) -> Dict[str, Any]:
        return {
            "Codec": self.codec, "DurationMillis": self.duration_millis, "Format": self.format,
            "FrameRate": round(self.frame_rate, 3), "FrameWidth": self.frame_width,
            "FrameHeight": self.frame_height,
        }

    @classmethod
    def from_rekognition(cls, doc: Dict[str, Any]) -> "VideoMetadata":
        return cls(doc["Codec"], int(doc["DurationMillis"]), doc["Format"], float(doc["FrameRate"]),
                   int(doc["FrameWidth"]), int(doc["FrameHeight"]), int(doc.get("FrameCount", 0)))


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame: its position (0-based frame number), time in ms, and RGB pixels."""

    number: int
    timestamp_ms: int
    image: Image


def check_sample_fps(value: Optional[float]) -> float:
    """Frames analysed per second of video: default 2, from 0.1 to 30."""
    if value is None:
        return DEFAULT_SAMPLE_FPS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.1 <= value <= MAX_SAMPLE_FPS:
        raise InvalidParameterError(f"the sampling rate must be from 0.1 to {MAX_SAMPLE_FPS:g} frames per second")
    return float(value)


def _container(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise InvalidVideoError(f"cannot read the video: {exc.strerror}") from None
    if head[4:8] == b"ftyp":
        return "QuickTime / MOV" if head[8:12] == b"qt  " else "QuickTime / MOV / MP4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska / WebM"
    for magic, kind in _IMAGE_MAGIC:
        if head.startswith(magic) and (kind != "WebP" or head[8:12] == b"WEBP"):
            raise InvalidVideoError(f"{path.name} is a {kind} image, not a video: images are read by "
                                    "DetectFaces / SearchFacesByImage (`faceaudit detect`, `faceaudit search`)")
    return "unknown"


_IMAGE_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF8", "GIF"),
                (b"BM", "BMP"), (b"RIFF", "WebP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))
"""Still-image signatures: OpenCV's FFmpeg opens a JPEG as a one-frame MJPEG "video"."""


def _quiet_ffmpeg() -> None:
    """FFmpeg's and OpenCV's own messages ("moov atom not found") off stderr: the typed error says
    what is wrong. A user's explicit OPENCV_FFMPEG_LOGLEVEL / OPENCV_LOG_LEVEL is kept."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg first opens
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _fourcc(value: float) -> str:
    code = int(value)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text.strip("\x00 ").lower() if text.isprintable() else "unknown"


def _open(path: Path) -> Any:
    _quiet_ffmpeg()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise InvalidVideoError(
            "the video cannot be opened: not a video, truncated, or a container or codec "
            "this build of FFmpeg does not decode (MP4, MOV, AVI and MKV with H.264 or MPEG-4 are)"
        )
    return cap


def probe_video(path: "str | os.PathLike[str]", limits: VideoLimits = VideoLimits()) -> VideoMetadata:
    """The video's metadata, after checking it against ``limits`` (nothing is decoded yet)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:  # a wrong path is a parameter error (exit 2), not a bad video
        raise InvalidParameterError(f"cannot read the video {path}: {exc.strerror}") from None
    if size == 0:
        raise InvalidVideoError("the video is empty (0 bytes)")
    if size > limits.max_bytes:
        raise VideoTooLargeError(f"the video is {size} bytes; the limit is {limits.max_bytes} bytes")
    fmt = _container(path)
    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # unknown: INT64_MIN
        codec = _fourcc(cap.get(cv2.CAP_PROP_FOURCC) or 0)
    finally:
        cap.release()
    if width <= 0 or height <= 0 or count <= 0 or not math.isfinite(fps) or fps <= 0:
        raise InvalidVideoError(
            f"the video declares no frames or no frame size ({width}x{height}, {count} frames at "
            f"{fps:g} fps): empty, truncated or not decodable"
        )
    if width * height > limits.max_pixels:
        raise VideoTooLargeError(
            f"the video's frames are {width}x{height} pixels; the limit is {limits.max_pixels} pixels"
        )
    if min(width, height) < limits.min_side:
        raise InvalidVideoError(f"the video's frames are {width}x{height} pixels; at least "
                                f"{limits.min_side} per side are needed to find faces")
    if fps > limits.max_frame_rate:
        raise InvalidVideoError(f"the video declares {fps:g} frames per second; at most "
                                f"{limits.max_frame_rate:g} are read")
    seconds = count / fps
    if seconds > limits.max_seconds:
        raise VideoTooLargeError(
            f"the video is {seconds:.0f} s long; the limit is {limits.max_seconds:.0f} s"
        )
    return VideoMetadata(codec=codec, duration_millis=int(round(seconds * 1000)), format=fmt,
                         frame_rate=fps, frame_width=width, frame_height=height, frame_count=count)


def sample_frames(path: "str | os.PathLike[str]", meta: VideoMetadata, fps: float,
                  limits: VideoLimits = VideoLimits()) -> Iterator[Frame]:
    """Frames at about ``fps`` per second of video (the first frame of each 1/fps interval).

    Every frame is decoded (a compressed stream cannot skip), only the sampled
    ones are converted. Raises InvalidVideoError when no frame decodes, or when
    the stream stops well before the frame count its container declares, and
    VideoTooLargeError as soon as the frames decoded run past ``limits.max_seconds``:
    the length counted is the decoded one, whatever the container's header declares.
    """
    cap = _open(Path(path))
    decoded = 0
    next_slot = 0
    max_frames = math.floor(limits.max_seconds * meta.frame_rate) + 1
    try:
        while True:
            if not cap.grab():
                break
            number = decoded
            decoded += 1
            if decoded > max_frames:
                raise VideoTooLargeError(
                    f"the video holds more than {limits.max_seconds:.0f} s of frames (the limit) although "
                    f"its container declares {meta.duration_millis / 1000:.0f} s")
            t = number / meta.frame_rate
            if t * fps + 1e-9 < next_slot:
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                break
            if bgr.shape[0] * bgr.shape[1] != meta.frame_width * meta.frame_height:
                raise InvalidVideoError(
                    f"frame {number} is {bgr.shape[1]}x{bgr.shape[0]}; the video declares "
                    f"{meta.frame_width}x{meta.frame_height}"
                )
            next_slot = math.floor(t * fps + 1e-9) + 1
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield Frame(number=number, timestamp_ms=int(round(t * 1000)),
                        image=Image(pixels=np.ascontiguousarray(rgb), format="VIDEO", sha256="",
                                    byte_size=0))
    finally:
        cap.release()
    if decoded == 0:
        raise InvalidVideoError("no frame of the video could be decoded (corrupt, or an unsupported codec)")
    missing = meta.frame_count - decoded
    if missing > max(2, 0.02 * meta.frame_count):
        raise InvalidVideoError(
            f"the video ends after {decoded} of the {meta.frame_count} frames it declares: "
            "truncated or corrupt"
        )
