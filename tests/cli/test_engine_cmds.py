import json
import subprocess
import sys

import pytest

from faceaudit.cli import main
from tests.conftest import blank_image, portrait_2014, portrait_2018


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_detect_json_is_detectfaces_shape(capsys):
    code, out, _ = run(capsys, "detect", str(portrait_2018("B000944")), "--json")
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == ["FaceDetails"] and len(doc["FaceDetails"]) == 1
    assert set(doc["FaceDetails"][0]["BoundingBox"]) == {"Width", "Height", "Left", "Top"}


def test_detect_many_images_one_line_each(capsys):
    code, out, _ = run(capsys, "detect", str(portrait_2018("B000944")), str(portrait_2014("B000944")), "--json")
    assert code == 0 and len(out.strip().splitlines()) == 2


def test_compare_json_same_member_vs_different(capsys):
    _, out, _ = run(capsys, "compare", str(portrait_2018("C000141")), str(portrait_2014("C000141")), "--json")
    same = json.loads(out)
    _, out, _ = run(capsys, "compare", str(portrait_2018("C000141")), str(portrait_2014("C000127")),
                    "--json", "--threshold", "0")
    diff = json.loads(out)
    assert set(same) == {"SourceImageFace", "FaceMatches", "UnmatchedFaces"}
    assert same["FaceMatches"][0]["Similarity"] > diff["FaceMatches"][0]["Similarity"]


def test_compare_human_output_says_lead_not_identification(capsys):
    code, out, err = run(capsys, "compare", str(portrait_2018("C000141")), str(portrait_2014("C000141")))
    assert code == 0 and "match" in out and "not an identification" in err


@pytest.mark.parametrize(
    "make, code_expected, name",
    [
        (lambda p: p.write_bytes(b""), 3, "InvalidImageFormatException"),
        (lambda p: p.write_bytes(b"not an image"), 3, "InvalidImageFormatException"),
        (lambda p: p.write_bytes(blank_image()), 2, "InvalidParameterException"),
    ],
    ids=["empty", "garbage", "no-face"],
)
def test_bad_source_one_line_error(tmp_path, capsys, make, code_expected, name):
    bad = tmp_path / "bad.jpg"
    make(bad)
    code, out, err = run(capsys, "compare", str(bad), str(portrait_2014("C000141")))
    assert code == code_expected and out == ""
    assert err.count("\n") == 1 and name in err and "Traceback" not in err


def test_models_lists_both_with_calibration(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "sface (default)" in out and "dlib" in out
    assert "FMR" in out and "reproduce: .venv/bin/python scripts/calibrate.py" in out and "95% bound" in out
    assert "Similarity = 80 + 10 * (-log10 FMR - 5)" in out and "Similarity scale: fmr1-sface-" in out


def test_models_json(capsys):
    _, out, _ = run(capsys, "models", "--json")
    models = json.loads(out)["Models"]
    sface = next(m for m in models if m["Name"] == "sface")
    sims = [row["similarity"] for row in sface["Calibration"]["thresholds"]]
    assert {80.0, 90.0, 95.0, 99.0} <= set(sims)
    assert sface["SimilarityScaleVersion"].startswith("fmr1-sface-")
    row80 = next(r for r in sface["Calibration"]["thresholds"] if r["similarity"] == 80.0)
    assert row80["promised_fmr"] == pytest.approx(1e-5)
    assert row80["expected_false_candidates"]["25000"] == pytest.approx(0.25)


def test_console_script_error_exit_code(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    proc = subprocess.run(
        [sys.executable, "-m", "faceaudit.cli._main", "detect", str(bad)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 3 and "Traceback" not in proc.stderr


def test_compare_is_logged_with_probe_hash_and_candidates(tmp_path, capsys):
    import hashlib

    from faceaudit.accountability import SearchLog

    src = portrait_2018("C000141")
    code, _, _ = run(capsys, "compare", str(src), str(portrait_2014("C000141")), "--data-dir", str(tmp_path),
                     "--case-reference", "case-1", "--purpose", "test")
    assert code == 0
    (rec,) = list(SearchLog(tmp_path / "search-log.jsonl").records())
    assert rec.kind == "search" and rec.data["operation"] == "CompareFaces"
    assert rec.data["probe_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert rec.data["threshold"] == 80.0 and rec.data["case_reference"] == "case-1"
    assert len(rec.data["candidates"]) == 1 and rec.data["candidates"][0]["similarity"] > 80


def test_models_shows_rates_per_probe_quality_band(capsys):
    from faceaudit.engine import get_model

    code, out, _ = run(capsys, "models")
    assert code == 0 and "by probe quality" in out and "FNMR at 80 / 90 / 99" in out
    cal = get_model("sface").calibrated()
    tiny = cal.by_band("tiny")
    r80 = tiny.fnmr(80)
    assert f"{r80.errors}/{r80.trials} = " in out  # the band's own count, as the calibration holds it
    assert "nothing was measured below band tiny" in out and "below-measured" in out
    _, out, _ = run(capsys, "models", "--json")
    sface = next(m for m in json.loads(out)["Models"] if m["Name"] == "sface")
    assert sface["Calibration"]["quality_bands"]["measured_down_to"] == "tiny"


def test_models_shows_rates_per_probe_band_on_both_axes(capsys):
    from faceaudit.engine import NOISY_LEVELS, get_model

    code, out, _ = run(capsys, "models")
    assert code == 0 and f"noisy: the face's sensor noise at least {NOISY_LEVELS:g} gray levels" in out
    noisy = get_model("sface").calibrated().by_band("tiny-noisy")
    assert noisy is not None
    r80 = noisy.fnmr(80)
    line = next(x for x in out.splitlines() if x.strip().startswith("tiny-noisy"))
    assert f"{r80.errors}/{r80.trials} = " in line and "doorbell-night-3m" in line
