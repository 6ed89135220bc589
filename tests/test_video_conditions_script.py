"""scripts/video_conditions.py: its ground truth (who is where, topmost first) and its clip (a real
H.264 stream of the condition's frames, at 1080p)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location("video_conditions", ROOT / "scripts" / "video_conditions.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["video_conditions"] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("video_conditions", None)
        sys.path.remove(str(ROOT / "scripts"))


def _box(left, top, width, height):
    from faceaudit.engine import BoundingBox

    return BoundingBox(width=width / 1920, height=height / 1080, left=left / 1920, top=top / 1080)


def test_a_face_belongs_to_the_topmost_tile_under_it(script):
    tile = {w.member: np.zeros((200, 100, 3), np.uint8) for w in script.SCRIPT}
    n_frames = 100
    ts = 20 * 1000 // script.CLIP_FPS  # frame 20: fraction 0.2, C000127 and B000944 on screen
    shown = script.placements(20 / n_frames, tile)
    assert [m for _, m, *_ in shown] == ["C000127", "B000944"]
    for i, _, left, top, *_ in shown:
        assert script.walk_at(ts, _box(left + 40, top + 90, 20, 20), n_frames, tile) == i
    assert script.walk_at(ts, _box(5, 5, 10, 10), n_frames, tile) is None
    # two tiles over one another: the one painted last (later in SCRIPT) is the one seen
    big = {w.member: np.zeros((1000, 1900, 3), np.uint8) for w in script.SCRIPT}
    top_walk = script.placements(20 / n_frames, big)[-1][0]
    assert script.walk_at(ts, _box(950, 530, 20, 20), n_frames, big) == top_walk


def test_the_clip_is_h264_of_degraded_frames(script, tmp_path):
    import av

    from faceaudit.engine import probe_condition

    condition = probe_condition("doorbell-night-3m")
    tile = {w.member: np.full((90, 70, 3), 200, np.uint8) for w in script.SCRIPT}
    path = tmp_path / "clip.mp4"
    script.write_clip(path, condition, tile, 0.5)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 5 and frames[0].shape == (1080, 1920, 3)
    first = frames[0].astype(int)
    # gray (channels equal up to chroma rounding), dark (gamma 2 on grey 110: about 47), noisy
    assert np.abs(first[..., 0] - first[..., 1]).mean() < 3
    assert 30 < first[900:, :400].mean() < 65
    assert first[900:, :400].std() > 1
