#!/usr/bin/env python
"""Stored-video face search throughput: decoding, detection + embedding + tracking, and search.

Builds clips with the test suite's builder (cv2.VideoWriter, MPEG-4 Part 2 'mp4v', 30 fps; two
public-domain portraits from tests/data entering and leaving), then measures on this machine:

1. decode only: every frame decoded (cv2.VideoCapture, OpenCV's bundled FFmpeg), frames/s;
2. the face search pipeline (FaceCollections.search_faces_in_video: decode every frame, detect,
   embed and track the sampled ones, search each person's best frames): sampled frames analysed
   per second and seconds of video per second of wall time, at 720p and 1080p;
3. a 30-second 1080p clip searched against collections of 10,000 and 100,000 faces (synthetic
   unit vectors plus the two real portraits): total time, and the time spent in the searches.

    python scripts/bench_video.py                       # 720p + 1080p 10 s, 30 s 1080p vs 10k/100k
    python scripts/bench_video.py --seconds 5 --sizes 10000 --fps 2

Keep it bounded: the defaults run for a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GALLERY = [ROOT / "tests" / "data" / "congress2014" / f"{m}.jpg" for m in ("C000127", "B000944")]


def make_clip(path: Path, width: int, height: int, seconds: float, fps: int = 30) -> Path:
    """The test suite's clip builder, at this size: two people, one entering as the other leaves."""
    from _support import make_video

    script = (("C000127", 0.0, seconds * 0.7, width // 20), ("B000944", seconds * 0.3, seconds, width // 2))
    return make_video(path, script=script, seconds=seconds, fps=fps, size=(width, height))


def decode_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    t = time.perf_counter()
    while cap.grab():
        cap.retrieve()
        n += 1
    cap.release()
    return n / (time.perf_counter() - t)


def gallery(data_dir: Path, n_synthetic: int, rng):
    from faceaudit.collections import FaceCollections
    from faceaudit.collections._prepare import PreparedFace, PreparedImage
    from faceaudit.engine import BoundingBox, get_model

    fc = FaceCollections(data_dir)
    fc.create_collection(collection_id="bench")
    for p in GALLERY:
        fc.index_faces(collection_id="bench", image=p.read_bytes(), external_image_id=p.stem)
    version = get_model("sface").version
    box = BoundingBox(0.1, 0.1, 0.5, 0.5)
    for lo in range(0, n_synthetic, 1000):
        v = rng.standard_normal((min(1000, n_synthetic - lo), 128)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        faces = tuple(PreparedFace({"BoundingBox": box.to_rekognition()}, box, 99.0, 90.0, x) for x in v)
        fc._store_prepared("bench", PreparedImage(f"{lo:064x}", 100, 100, version, faces, ()))
    fc.verify_index("bench")  # builds this process's index now, not inside the timed search
    return fc


def timed_search(fc, clip: Path, fps: float):
    spent = [0.0]
    inner = fc._search_track

    def search_track(*a, **k):
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t

    fc._search_track = search_track
    t = time.perf_counter()
    found = fc.search_faces_in_video(collection_id="bench", path=clip, sample_fps=fps)
    total = time.perf_counter() - t
    fc._search_track = inner
    return found, total, spent[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the 720p/1080p throughput clips")
    ap.add_argument("--fps", type=float, default=2.0, help="frames analysed per second of video (default 2)")
    ap.add_argument("--sizes", default="10000,100000", help="collection sizes for the 30-s 1080p search")
    ap.add_argument("--search-seconds", type=float, default=30.0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__}, sample rate {args.fps:g} frames/s of video")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fc = gallery(tmp / "small", 0, rng)
        print("\nresolution  decode-only frames/s  analysed frames/s  video s per wall s  people")
        for name, (w, h) in (("720p", (1280, 720)), ("1080p", (1920, 1080))):
            clip = make_clip(tmp / f"{name}.mp4", w, h, args.seconds)
            dec = decode_fps(clip)
            found, total, _ = timed_search(fc, clip, args.fps)
            analysed = args.seconds * args.fps
            print(f"{name:<10}  {dec:20.1f}  {analysed / total:17.2f}  {args.seconds / total:18.2f}  "
                  f"{len(found.persons)}")
        clip = make_clip(tmp / "search.mp4", 1920, 1080, args.search_seconds)
        print(f"\n{args.search_seconds:g}-s 1080p clip against a collection:")
        print("faces in collection  total s  of which searching s  people  matched")
        for n in [int(x) for x in args.sizes.split(",") if x]:
            fc = gallery(tmp / f"g{n}", n, rng)
            found, total, searching = timed_search(fc, clip, args.fps)
            matched = sum(1 for p in found.persons if p.matches)
            print(f"{n + len(GALLERY):>19,}  {total:7.1f}  {searching:19.3f}  {len(found.persons):6}  {matched:7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
