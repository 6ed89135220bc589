"""Probe quality on two axes (issue 19): the face's sensor noise beside its eye distance, the bands
they make, what a minimum band admits, and the quality of a stored face."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit._errors import InvalidParameterError
from faceaudit.engine import (
    NOISY_LEVELS,
    PRESETS,
    PROBE_BANDS,
    QUALITY_BANDS,
    degrade,
    detect_upscaled,
    get_model,
    load_image,
    measure_noise,
    probe_band,
    probe_band_named,
    stored_quality,
)
from tests.conftest import portrait_2018


def test_the_noise_measure_reads_the_noise_added_and_ignores_smooth_structure():
    rng = np.random.default_rng(7)
    ramp = np.tile(np.linspace(40, 200, 120), (120, 1))  # smooth shading: no noise
    assert measure_noise(ramp) < 0.01
    for sigma in (2.0, 6.0, 12.0):
        noisy = ramp + rng.normal(0.0, sigma, ramp.shape)
        assert measure_noise(noisy) == pytest.approx(sigma, rel=0.1)
    assert measure_noise(np.zeros((2, 40))) == 0.0  # too small to measure


def test_bands_on_both_axes_and_the_old_size_names():
    assert [b.name for b in PROBE_BANDS] == ["portrait-clear", "portrait-noisy", "small-clear", "small-noisy",
                                             "tiny-clear", "tiny-noisy", "below-measured"]
    assert probe_band(15.0, NOISY_LEVELS).name == "tiny-noisy"
    assert probe_band(15.0, NOISY_LEVELS - 0.01).name == "tiny-clear"
    assert probe_band(45.0, 1.0).name == "portrait-clear"
    assert probe_band(8.0, 9.0).name == "below-measured"  # nothing was measured below 10 px, at any noise
    size_only = probe_band(25.0, None)  # noise unknown: the band by eye distance, as before the noise axis
    assert (size_only.name, size_only.noisy) == ("small", None)
    assert {probe_band(e, n).size.name for e, n in ((45, 1), (25, 8), (15, 1))} == {b.name for b in QUALITY_BANDS[:-1]}
    for bad in (-1.0, float("nan"), True, "8"):
        with pytest.raises(InvalidParameterError):
            probe_band(20.0, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="unknown probe quality band"):
        probe_band_named("blurry")


def test_a_minimum_band_admits_by_size_and_asks_for_clear_only_when_named():
    tiny_night, small_day, unknown = probe_band(15.0, 8.0), probe_band(25.0, 1.0), probe_band(40.0, None)
    # the old names keep meaning what they meant: eye distance only, any noise
    assert tiny_night.meets(probe_band_named("tiny")) and not tiny_night.meets(probe_band_named("small"))
    assert tiny_night.meets(probe_band_named("tiny-noisy"))  # the same minimum as "tiny"
    assert not tiny_night.meets(probe_band_named("tiny-clear"))
    assert small_day.meets(probe_band_named("tiny-clear")) and small_day.meets(probe_band_named("small-clear"))
    assert not small_day.meets(probe_band_named("portrait"))
    # a probe whose noise is unknown cannot show it is clear
    assert unknown.meets(probe_band_named("portrait")) and not unknown.meets(probe_band_named("tiny-clear"))


@pytest.mark.parametrize("bioguide", ["B000944", "C000141"])
def test_the_night_doorbell_reads_noisy_and_the_day_one_clear(sface_engine, bioguide):
    """The presets at the same 15 px between the eyes: only the night one crosses NOISY_LEVELS,
    measured on the face a search would use (found as the audit finds it)."""
    detector = sface_engine.model.detector
    photo = load_image(portrait_2018(bioguide))
    noise = {}
    for name in ("doorbell-day-3m", "doorbell-night-3m"):
        faces, _ = detect_upscaled(detector, degrade(detector, photo, PRESETS[name]).image, 1)
        assert faces, name
        noise[name] = faces[0].quality.noise
        assert probe_band(faces[0].quality.eye_distance_px, noise[name]).size.name == "tiny"
    assert noise["doorbell-day-3m"] < NOISY_LEVELS <= noise["doorbell-night-3m"]
    clean = detector.detect(photo, 1)[0].quality
    assert clean.noise is not None and clean.noise < NOISY_LEVELS
    assert "Noise" not in clean.to_rekognition() and set(clean.to_rekognition()) == {"Brightness", "Sharpness"}


def test_a_stored_faces_quality_comes_from_its_face_detail(sface_engine):
    data = portrait_2018("B000944").read_bytes()
    img = load_image(data)
    face = sface_engine.detect(data).faces[0]
    q = stored_quality(face.to_rekognition(), img.width, img.height)
    assert q is not None and q.noise is None
    assert q.eye_distance_px == pytest.approx(face.quality.eye_distance_px, abs=0.05)
    assert (q.brightness, q.sharpness) == (face.quality.brightness, face.quality.sharpness)
    assert stored_quality(face.to_rekognition(), None, img.height) is None  # an image row without its size
    assert stored_quality({"Quality": {"Brightness": 50, "Sharpness": 50}}, 100, 100) is None  # no landmarks


@pytest.mark.parametrize("name", ["sface"])
def test_the_calibration_measures_each_band_on_both_axes(name):
    cal = get_model(name).calibrated()
    section = cal.raw["quality_bands"]["probe_bands"]
    assert section["noisy_levels"] == NOISY_LEVELS and cal.probe_bands
    assert [b.band for b in cal.probe_bands] == [b.name for b in PROBE_BANDS if cal.by_band(b)]
    for b in cal.probe_bands:
        assert b.noisy is not None and b.failed_to_enrol == 0  # every probe here had a face, and a noise
        assert b.probes == sum(p.probes for p in b.by_condition) > 0
        for i, r in enumerate(b.rates):
            assert r.fnmr.errors == sum(p.rates[i].fnmr.errors for p in b.by_condition)
    # each size band's probes with a face are split between its clear and its noisy half
    for size in cal.bands:
        halves = [b for b in cal.probe_bands if b.band in (f"{size.band}-clear", f"{size.band}-noisy")]
        assert sum(h.probes for h in halves) == size.probes - size.failed_to_enrol
    # the axis separates what size alone pooled: at 10-20 px the night probes miss far more mates
    clear, noisy = cal.by_band("tiny-clear"), cal.by_band("tiny-noisy")
    assert clear is not None and noisy is not None
    assert noisy.fnmr(80).rate > 0.5 > 0.15 > clear.fnmr(80).rate
    assert {p.condition for p in noisy.by_condition} >= {"doorbell-night-3m"}
    assert "doorbell-night-3m" not in {p.condition for p in clear.by_condition} or \
        next(p for p in clear.by_condition if p.condition == "doorbell-night-3m").probes < 0.1 * noisy.probes
