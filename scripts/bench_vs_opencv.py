#!/usr/bin/env python
"""faceaudit against a bare OpenCV loop on the same photos, side by side in one run (issue 15).

Usage: python scripts/bench_vs_opencv.py [--images N] [--rounds 2] [--workers N] [--skip-audit]

The bare loop is what anyone would write with OpenCV alone: cv2.imread,
FaceDetectorYN.detect, the largest face, FaceRecognizerSF.alignCrop + feature, with the
same weight files faceaudit pins, on one OpenCV thread.

1. One image at a time: for each photo, the bare loop then ``FaceEngine.largest`` (each on
   one OpenCV thread), alternating which goes first, so both see the same load; repeated
   ``--rounds`` times. Prints the ratio of the totals (target: at most 1.05), in wall time and
   in the CPU time of the calling thread (all the work runs there with one OpenCV thread; CPU
   time is far less disturbed by other processes on a shared machine), and checks that the
   embeddings are equal (cosine).
2. A whole audit: the bare loop over the sample's photos (examples/sample, 480 photos),
   single-threaded, then ``faceaudit audit`` on them with an empty cache (a fresh process,
   ``--workers`` processes, default: the CPUs), then the bare loop again; prints the audit's
   wall time over the mean of the two bare loops (target: at most 0.5), and the CPU seconds
   of each (the audit's: all its processes, workers included). On a machine shared by other
   sessions, Linux's autogroup scheduling gives each session one share of the CPUs however
   many processes it runs, so the wall-time gain of the pool shows only when the CPUs are idle;
   the CPU ratio shows the work the audit adds to the bare loop's.

The machine's load (``os.getloadavg``) is printed before and after: on a shared machine
compare only figures of the same run.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from faceaudit.engine import FaceEngine, get_model  # noqa: E402

SAMPLE = ROOT / "examples" / "sample"
MANIFESTS = SAMPLE / "manifests"


class BareLoop:
    """imread -> YuNet -> largest face -> SFace alignCrop + feature: OpenCV and nothing else."""

    def __init__(self) -> None:
        spec = get_model("sface")
        det, rec = (w.verified_path() for w in spec.weights)
        self.det = cv2.FaceDetectorYN.create(str(det), "", (320, 320), 0.6, 0.3, 5000)
        self.rec = cv2.FaceRecognizerSF.create(str(rec), "")

    def embed(self, path: Path):
        img = cv2.imread(str(path))
        h, w = img.shape[:2]
        scale = min(1.0, 1280.0 / max(h, w))
        small = img if scale == 1.0 else cv2.resize(img, (round(w * scale), round(h * scale)),
                                                    interpolation=cv2.INTER_AREA)
        self.det.setInputSize((small.shape[1], small.shape[0]))
        _, rows = self.det.detect(small)
        if rows is None:
            return None
        row = rows[np.argmax(rows[:, 2] * rows[:, 3])].copy()
        row[:14] /= scale
        feature = self.rec.feature(self.rec.alignCrop(img, row)).reshape(-1)
        return feature / np.linalg.norm(feature)


def sample_photos() -> list[Path]:
    out = []
    for name in ("congress_2018.csv", "congress_2014.csv", "former_members.csv"):
        with open(MANIFESTS / name, newline="", encoding="utf-8") as fh:
            out += [(MANIFESTS / row["image"]).resolve() for row in csv.DictReader(fh)]
    return list(dict.fromkeys(out))


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def single_image(photos, rounds: int) -> None:
    bare, engine = BareLoop(), FaceEngine("sface")
    bare.embed(photos[0])
    engine.largest(photos[0])  # load + warm up both
    wall = [0.0, 0.0]
    cpu = [0.0, 0.0]
    cos = []
    for r in range(rounds):
        for k, p in enumerate(photos):
            order = (0, 1) if (k + r) % 2 == 0 else (1, 0)
            for which in order:
                t0, c0 = time.perf_counter(), time.thread_time()
                if which == 0:
                    vb = bare.embed(p)
                else:
                    _, face = engine.largest(p)
                wall[which] += time.perf_counter() - t0
                cpu[which] += time.thread_time() - c0
            if r == 0 and vb is not None:
                cos.append(float(np.dot(vb, face.vector)))
    n = rounds * len(photos)
    print(f"one image at a time ({len(photos)} photos x {rounds} rounds, 1 OpenCV thread each):")
    print("                         wall ms/image   CPU ms/image (this thread)")
    print(f"  bare OpenCV loop      {1000 * wall[0] / n:12.2f} {1000 * cpu[0] / n:14.2f}")
    print(f"  FaceEngine.largest    {1000 * wall[1] / n:12.2f} {1000 * cpu[1] / n:14.2f}")
    print(f"  ratio faceaudit/bare  {wall[1] / wall[0]:12.3f} {cpu[1] / cpu[0]:14.3f}   (target <= 1.05)")
    print(f"  embeddings: min cosine faceaudit vs bare {min(cos):.6f} over {len(cos)} photos")


def bare_pass(photos) -> tuple[float, float]:
    """(wall s, CPU s) of the bare loop over the photos, one thread."""
    bare = BareLoop()
    t0, c0 = time.perf_counter(), time.thread_time()
    for p in photos:
        bare.embed(p)
    return time.perf_counter() - t0, time.thread_time() - c0


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def whole_audit(workers) -> None:
    photos = sample_photos()
    exe = Path(sys.executable).with_name("faceaudit")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(exe), "audit", "--probes", str(MANIFESTS / "congress_2018.csv"),
               "--gallery", str(MANIFESTS / "congress_2014.csv"), str(MANIFESTS / "former_members.csv"),
               "--bands", "age=40,50,60,70", "--quiet", "--out", str(Path(tmp) / "out")]
        if workers:
            cmd += ["--workers", str(workers)]
        before = bare_pass(photos)
        t0, c0 = time.perf_counter(), children_cpu()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        audit, audit_cpu = time.perf_counter() - t0, children_cpu() - c0
        after = bare_pass(photos)
    bare, bare_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    print(f"whole audit of examples/sample ({len(photos)} photos, empty cache, "
          f"{workers or 'default'} worker(s)):")
    print("                                  wall s    CPU s (all its processes)")
    print(f"  bare OpenCV loop, 1 thread   {bare:9.1f} {bare_cpu:9.1f}   "
          f"(before {before[0]:.1f} s, after {after[0]:.1f} s)")
    print(f"  faceaudit audit (all of it)  {audit:9.1f} {audit_cpu:9.1f}")
    print(f"  ratio audit/bare loop        {audit / bare:9.3f} {audit_cpu / bare_cpu:9.3f}   (target: wall <= 0.5)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=60, help="photos for the one-image comparison (default 60)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None, help="audit worker processes (default: the CPUs)")
    ap.add_argument("--skip-audit", action="store_true")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    photos = sample_photos()
    step = max(1, len(photos) // a.images)
    print(f"cv2 {cv2.__version__}, {os.cpu_count()} CPUs, {load()}; faceaudit runs "
          f"{get_model('sface').runtime()} (FACEAUDIT_RUNTIME=opencv for OpenCV's DNN)")
    single_image(photos[::step][: a.images], a.rounds)
    if not a.skip_audit:
        whole_audit(a.workers)
    print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
