#!/usr/bin/env python
"""Profile one image at a time through the face engine, stage by stage (issue 15).

Usage: python scripts/profile_engine.py [--model sface] [--images 40] [--repeat 3] [--threads 1]
                                        [--data examples/sample]

Each stage is timed on its own over the same photos (best of ``--repeat`` passes, ms per
image), then the whole ``FaceEngine.largest`` call, so the stages can be checked against the
total. Stages: read the bytes; PIL header checks; decode; EXIF orientation and RGB; the BGR
conversion OpenCV wants; detection (network + boxes, without the measures); landmarks, pose and
quality for the returned face; alignment; embedding (the network's forward pass). The machine
is shared: compare the stages within one run, not across runs.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image as PILImage  # noqa: E402
from PIL import ImageOps  # noqa: E402

from faceaudit.engine import FaceEngine, load_image, read_bytes  # noqa: E402


def best_ms(fn, items, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, time.perf_counter() - t0)
    return best / len(items) * 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sface")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1, as in the pool)")
    ap.add_argument("--data", default=str(ROOT / "examples" / "sample"))
    a = ap.parse_args()
    cv2.setNumThreads(a.threads)
    paths = sorted(Path(a.data).rglob("*.jpg"))[: a.images]
    if not paths:
        print(f"no photos under {a.data}", file=sys.stderr)
        return 2
    engine = FaceEngine(a.model)
    model = engine.model
    datas = [read_bytes(p) for p in paths]
    images = [load_image(d) for d in datas]
    faces = [model.detector.detect(img, 1) for img in images]
    pairs = [(img, f[0]) for img, f in zip(images, faces, strict=True) if f]

    def pil_decode(d):
        pil = PILImage.open(io.BytesIO(d))
        pil.load()
        return pil

    decoded = [pil_decode(d) for d in datas]

    def exif_rgb(pil):
        pil = pil.copy()
        ImageOps.exif_transpose(pil, in_place=True)
        return np.asarray(pil if pil.mode == "RGB" else pil.convert("RGB"))

    def fresh(img):
        return type(img)(pixels=img.pixels, format=img.format, sha256=img.sha256, byte_size=img.byte_size)

    stages = [
        ("read bytes", lambda p: read_bytes(p), paths),
        ("header (PIL open)", lambda d: PILImage.open(io.BytesIO(d)), datas),
        ("decode (PIL load)", pil_decode, datas),
        ("EXIF + RGB array", exif_rgb, decoded),
        ("load_image (all of the above)", load_image, datas),
        ("BGR conversion (once per image)", lambda img: fresh(img).bgr(), images),
    ]
    if a.model == "sface":
        det = model.detector

        def yunet(img):
            return det._raw_rows(img.bgr())  # the network and its decoding, whatever runs it

        emb = model.embedder
        if hasattr(emb, "aligned"):  # ONNX Runtime / OpenVINO: our alignment, then the network
            align = emb.aligned

            def forward(crop):
                return emb._forward(cv2.dnn.blobFromImage(crop, 1.0, (112, 112), (0, 0, 0), True, False))
        else:  # OpenCV's FaceRecognizerSF
            rec = emb._net

            def align(img, face):
                row = np.concatenate([np.asarray(face.box_px, np.float32), face.landmarks_px.reshape(-1),
                                      [face.confidence / 100.0]]).astype(np.float32)
                return rec.alignCrop(img.bgr(), row)

            forward = rec.feature
        crops = [align(img, f) for img, f in pairs]
        stages += [
            (f"detection network (YuNet, {type(det).__name__})", yunet, images),
            ("detect(limit=1): + pose, quality", lambda img: det.detect(img, 1), images),
            ("detect(): every face measured", lambda img: det.detect(img), images),
            ("alignment", lambda p: align(p[0], p[1]), pairs),
            (f"embedding network (SFace, {emb.runtime})", forward, crops),
        ]
    else:
        stages += [
            ("detect(limit=1)", lambda img: model.detector.detect(img, 1), images),
            ("embed (landmarks + network)", lambda p: model.embedder.embed(*p), pairs),
        ]
    stages.append(("FaceEngine.largest (total)", lambda d: engine.largest(d), datas))
    print(f"{a.model}: {len(paths)} photos from {a.data}, OpenCV threads {cv2.getNumThreads()}, "
          f"best of {a.repeat}; ms per image")
    for name, fn, items in stages:
        print(f"  {name:36s} {best_ms(fn, items, a.repeat):9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
