"""The tracker's choice of each person's best frames: by eye distance and sharpness (issue 19 item 5)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from faceaudit.collections._tracking import USEFUL_EYE_DISTANCE_PX, Sighting, Track
from faceaudit.engine import Quality
from tests.conftest import portrait_2014


def test_best_frames_are_chosen_by_eye_distance_then_sharpness(sface_engine):
    face = sface_engine.detect(portrait_2014("C000127").read_bytes()).faces[0]

    def sighting(frame, eyes, sharp, box=120.0):
        q = Quality(brightness=50.0, sharpness=sharp, face_size_px=box, eye_distance_px=eyes)
        return Sighting(frame * 500, replace(face, quality=q, confidence=90.0), np.ones(4, np.float32), frame)

    track = Track(0)
    frames = [sighting(0, 12.0, 95.0),   # tiny and sharp
              sighting(1, 30.0, 30.0),   # small and soft
              sighting(2, 90.0, 20.0),   # huge but blurred: size past the embedder's crop helps nothing
              sighting(3, 40.0, 80.0),   # usable size and sharp: the best probe
              sighting(4, 50.0, 80.0)]   # larger than useful, as sharp: ties with frame 3
    for s in frames:
        track.add(s)
    assert frames[3].quality == frames[4].quality  # both past USEFUL_EYE_DISTANCE_PX: size no longer counts
    assert USEFUL_EYE_DISTANCE_PX < 40
    assert [s.frame_number for s in track.best(3)] == [3, 4, 2]
    assert track.best(5)[-1].frame_number == 0  # the 12 px face is the worst probe however sharp
    # a face measured without landmarks (eye distance 0) falls back on its box: 0.4 x the shorter side
    assert sighting(5, 0.0, 80.0, box=50.0).quality == sighting(6, 20.0, 80.0).quality
