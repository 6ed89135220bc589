#!/usr/bin/env python
"""Video face search under probe conditions: who is found, who is confused, how tracks fragment.

For each condition (default: clean, doorbell-day-3m, doorbell-night-3m, cctv-4m) this builds a
1080p clip in which known people (2018 Congressional portraits from tests/data, public domain)
walk across the picture, two at a time for part of it, one coming back, and two passers-by who are
not in the gallery. Each portrait is scaled so its eyes are the condition's ``iod`` pixels apart
(60 px for ``clean``: a face about 0.75 m from a 1080p doorbell), measured by the detector on the
portrait. Every frame is then degraded by the condition's other steps except ``h264`` (blur,
motion, gray, gamma, noise, jpeg; seeded per frame, so the noise differs frame to frame and the
clip is reproducible), and the clip is encoded once with libx264 (PyAV) at the condition's
``h264`` rate (4000 kbit/s for conditions without one) -- a real stream, not a per-frame round trip.

The known people's OTHER photos (their 2014 portraits) are indexed in a temporary collection (a
temporary data directory, never the user's), and the clip is searched with the library's
FaceCollections.search_faces_in_video (what a StartFaceSearch job runs) at Similarity 80 and the
default sample rate (2 frames/s). A hook around the library's tracker records which track each
detected face joined; each face is assigned to the person whose tile holds its centre. Per condition:

  people present   known people shown (two passers-by are extra, never in the gallery)
  found            known people with a track whose majority person is themselves and whose top
                   match is themselves at the threshold (--threshold, default Similarity 80)
  wrong identity   tracks with any match at the threshold that is not their majority person (passers-by too)
  detected / shown faces the detector found in the sampled frames / faces on screen in them (it can
                   pass 1: two boxes on one face, the second often starting a track of its own)
  tracks/person    distinct tracks holding each known person's faces (1.00: everyone followed as one
                   track; the person who comes back is relinked by the tracker)
  mixing           tracks holding faces of more than one person (identity switches)
  never detected   known people with no detected face at all

    .venv/bin/python scripts/video_conditions.py
    .venv/bin/python scripts/video_conditions.py --seconds 12 --conditions clean,cctv-8m
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
WIDTH, HEIGHT = 1920, 1080
CLIP_FPS = 10
CLEAN_IOD = 60.0
CLEAN_KBPS = 4000.0
KNOWN = ("C000127", "B000944", "C000174", "C001070", "F000062", "K000367")
PASSERS_BY = ("C000141", "M001170")


@dataclass(frozen=True)
class Walk:
    """One appearance: ``member`` walks from x0 to x1 (fractions of the width, the tile's centre)
    between ``start`` and ``end`` (fractions of the clip), at height ``y`` (fraction, centre)."""

    member: str
    start: float
    end: float
    x0: float
    x1: float
    y: float

    def centre(self, f: float) -> tuple[float, float] | None:
        if not self.start <= f < self.end:
            return None
        a = (f - self.start) / (self.end - self.start)
        return (self.x0 + (self.x1 - self.x0) * a) * WIDTH, self.y * HEIGHT


SCRIPT = (
    Walk("C000127", 0.00, 0.30, 0.15, 0.45, 0.45),
    Walk("B000944", 0.15, 0.45, 0.85, 0.55, 0.50),   # overlaps C000127 in time, other side
    Walk("C000141", 0.30, 0.45, 0.20, 0.35, 0.55),   # passer-by
    Walk("C000174", 0.45, 0.65, 0.30, 0.60, 0.45),
    Walk("C001070", 0.55, 0.75, 0.80, 0.55, 0.50),
    Walk("M001170", 0.65, 0.80, 0.10, 0.30, 0.50),   # passer-by
    Walk("F000062", 0.75, 0.95, 0.45, 0.75, 0.45),
    Walk("K000367", 0.80, 1.00, 0.25, 0.15, 0.55),
    Walk("C000127", 0.85, 1.00, 0.90, 0.70, 0.45),   # the first person comes back
)


def eye_distance(engine, path: Path) -> float:
    from faceaudit.engine import load_image

    faces = engine.detect(load_image(path.read_bytes())).faces
    if not faces:
        raise SystemExit(f"no face found on {path}")
    return max(faces, key=lambda f: f.bounding_box.width).quality.eye_distance_px


def tiles(engine, iod: float) -> dict[str, np.ndarray]:
    """Each clip member's 2018 portrait (RGB) scaled so the eyes are ``iod`` pixels apart."""
    out = {}
    for member in {w.member for w in SCRIPT}:
        path = DATA / "congress2018" / f"{member}.jpg"
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        factor = iod / eye_distance(engine, path)
        size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
        out[member] = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
    return out


def placements(f: float, tile: dict[str, np.ndarray]) -> list[tuple[int, str, int, int, int, int]]:
    """(walk index, member, left, top, right, bottom) of everyone in the picture at clip fraction f."""
    out = []
    for i, w in enumerate(SCRIPT):
        c = w.centre(f)
        if c is None:
            continue
        h, wd = tile[w.member].shape[:2]
        left = int(np.clip(c[0] - wd / 2, 0, WIDTH - wd))
        top = int(np.clip(c[1] - h / 2, 0, HEIGHT - h))
        out.append((i, w.member, left, top, left + wd, top + h))
    return out


def write_clip(path: Path, condition, tile: dict[str, np.ndarray], seconds: float) -> None:
    import av

    from faceaudit.engine import ProbeCondition

    per_frame = ProbeCondition(condition.name + "/frame",
                               tuple(s for s in condition.steps if s.kind not in ("iod", "h264")))
    kbps = next((s.value for s in condition.steps if s.kind == "h264"), CLEAN_KBPS)
    n_frames = int(round(seconds * CLIP_FPS))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(CLIP_FPS, 1))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.bit_rate = int(kbps * 1000)
        stream.options = {"preset": "veryfast", "x264-params": f"vbv-maxrate={int(kbps)}:vbv-bufsize={int(kbps)}"}
        for n in range(n_frames):
            frame = np.full((HEIGHT, WIDTH, 3), 110, np.uint8)
            for _, member, left, top, right, bottom in placements(n / n_frames, tile):
                frame[top:bottom, left:right] = tile[member]
            if per_frame.steps:
                frame = per_frame.apply(frame, f"{condition.version}:frame{n}")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


class Recorder:
    """Every (timestamp ms, face box, track index) the library's tracker assigns: a measurement hook
    around collections._ops_video.FaceTracker (the pipeline itself is unchanged)."""

    def __init__(self) -> None:
        self.sightings: list[tuple[int, object, int]] = []
        self.frames: list[int] = []

    def __enter__(self) -> Recorder:
        from faceaudit.collections import _ops_video

        base = self._base = _ops_video.FaceTracker
        sightings, frames = self.sightings, self.frames

        class Recording(base):  # type: ignore[misc, valid-type]
            def update(self, frame_number, timestamp_ms, faces):
                out = super().update(frame_number, timestamp_ms, faces)
                frames.append(timestamp_ms)
                sightings.extend((timestamp_ms, f.bounding_box, ti) for (f, _), ti in zip(faces, out, strict=True))
                return out

        _ops_video.FaceTracker = Recording
        return self

    def __exit__(self, *exc) -> None:
        from faceaudit.collections import _ops_video

        _ops_video.FaceTracker = self._base


def walk_at(timestamp_ms: int, box, n_frames: int, tile) -> int | None:
    """The SCRIPT index of the appearance whose tile holds the centre of ``box`` at that time."""
    n = round(timestamp_ms / 1000.0 * CLIP_FPS)
    cx, cy = (box.left + box.width / 2) * WIDTH, (box.top + box.height / 2) * HEIGHT
    for i, _, left, top, right, bottom in reversed(placements(n / n_frames, tile)):  # topmost first
        if left <= cx < right and top <= cy < bottom:
            return i
    return None


def measure(fc, engine, condition, seconds: float, tmp: Path, threshold: float) -> dict:
    iod = condition.target_eye_distance or CLEAN_IOD
    tile = tiles(engine, iod)
    clip = tmp / f"{condition.name}.mp4"
    t0 = time.perf_counter()
    write_clip(clip, condition, tile, seconds)
    t1 = time.perf_counter()
    with Recorder() as rec:
        found = fc.search_faces_in_video(collection_id="known", path=clip, face_match_threshold=threshold)
    t2 = time.perf_counter()
    n_frames = int(round(seconds * CLIP_FPS))
    members_of: dict[int, list[str]] = {}  # track -> the member under each of its sightings
    stray = 0
    for ts, box, ti in rec.sightings:
        i = walk_at(ts, box, n_frames, tile)
        if i is None:
            stray += 1
        else:
            members_of.setdefault(ti, []).append(SCRIPT[i].member)
    # faces shown in the sampled frames: one per appearance on screen at each sampled timestamp
    shown = sum(len(placements(round(ts / 1000.0 * CLIP_FPS) / n_frames, tile)) for ts in rec.frames)
    present = {w.member for w in SCRIPT if w.member in KNOWN}
    people_found: set[str] = set()
    wrong = mixed = 0
    log: list[str] = []
    tracks_of: dict[str, set[int]] = {}
    for person in found.persons:
        seen = members_of.get(person.index, [])
        for m in set(seen):
            tracks_of.setdefault(m, set()).add(person.index)
        if len(set(seen)) > 1:
            mixed += 1
            log.append(f"track {person.index} holds " + ", ".join(f"{m} x{seen.count(m)}" for m in sorted(set(seen))))
        member = max(set(seen), key=seen.count) if seen else None
        ids = [m.face.external_image_id for m in person.matches]
        if ids and ids[0] == member and member in KNOWN:
            people_found.add(member)
        wrong += any(x != member for x in ids)
    return {
        "condition": condition.name, "iod": iod, "present": len(present), "found": len(people_found),
        "missed": sorted(present - people_found), "wrong": wrong, "mixed": mixed,
        "tracks_per_person": sum(len(tracks_of.get(m, ())) for m in present) / len(present),
        "never_detected": sum(1 for m in present if m not in tracks_of),
        "detected": len(rec.sightings) - stray, "shown": shown, "stray": stray,
        "tracks": len(found.persons), "log": log, "build_s": t1 - t0, "search_s": t2 - t1,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conditions", default="clean,doorbell-day-3m,doorbell-night-3m,cctv-4m",
                    help="comma-separated preset names (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=20.0, help="clip length (default 20)")
    ap.add_argument("--threshold", type=float, default=80.0, help="FaceMatchThreshold (default 80)")
    args = ap.parse_args(argv)

    from faceaudit.collections import FaceCollections
    from faceaudit.engine import FaceEngine, probe_condition

    conditions = [probe_condition(c) for c in args.conditions.split(",") if c.strip()]
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__}; {args.seconds:g}-s 1080p clip at {CLIP_FPS} fps, libx264; "
          f"Similarity >= {args.threshold:g}, default sample rate")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        fc = FaceCollections(tmp_path / "data")
        fc.create_collection(collection_id="known")
        for member in KNOWN:
            fc.index_faces(collection_id="known", image=(DATA / "congress2014" / f"{member}.jpg").read_bytes(),
                           external_image_id=member)
        engine = FaceEngine("sface")
        for condition in conditions:
            rows.append(measure(fc, engine, condition, args.seconds, tmp_path, args.threshold))
            r = rows[-1]
            print(f"# {r['condition']}: missed {', '.join(r['missed']) or 'nobody'}; "
                  f"{r['tracks']} tracks, {r['stray']} detections off every shown face"
                  + "".join(f"; {x}" for x in r["log"]), flush=True)
    print(f"\n| condition | eyes px | people present | found (own identity >= {args.threshold:g}) "
          "| tracks with a wrong identity | faces detected / shown | tracks per person "
          "| tracks mixing people | never detected "
          "| clip build s | search s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['condition']} | {r['iod']:g} | {r['present']} | {r['found']} | {r['wrong']} "
              f"| {r['detected']} / {r['shown']} | {r['tracks_per_person']:.2f} | {r['mixed']} "
              f"| {r['never_detected']} | {r['build_s']:.1f} | {r['search_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
