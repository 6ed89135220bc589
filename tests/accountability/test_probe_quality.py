"""Every search knows its probe (issue 19 item 4): the probe face's quality in the log, a policy's
minimum quality (refuse or flag) from the CLI and over HTTP, and leads that carry it."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from faceaudit.cli import main
from tests.conftest import portrait_2014, portrait_2018


def small_probe(bioguide: str, scale: float) -> bytes:
    """The member's 2018 portrait scaled by ``scale`` on a gray canvas of the portrait's size (a
    smaller face: eyes fewer pixels apart; 0.4 puts them about 17 px apart)."""
    img = Image.open(portrait_2018(bioguide)).convert("RGB")
    small = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", img.size, (128, 128, 128))
    canvas.paste(small, (0, 0))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def eyes_px(data: bytes) -> float:
    from faceaudit.engine import FaceEngine

    return FaceEngine("sface").detect(data).faces[0].quality.eye_distance_px


@pytest.fixture
def cli(tmp_path, capsys):
    data = str(tmp_path / "data")

    def run(*argv, code=0):
        rc = main([*argv, "--data-dir", data])
        out, err = capsys.readouterr()
        assert rc == code, (argv, out, err)
        return out, err

    run("collection", "create", "g")
    run("index", "g", str(portrait_2014("C000141")), "--external-image-id", "C000141")
    return run


def _records(tmp_path, kind):
    from faceaudit.accountability import Accountability

    return [r.data for r in Accountability(tmp_path / "data").log.records() if r.kind == kind]


def test_every_search_logs_its_probe_quality_and_responses_keep_their_shape(cli, tmp_path):
    out, _ = cli("search", "g", str(portrait_2018("C000141")), "--json")
    doc = json.loads(out)
    assert set(doc) == {"SearchedFaceBoundingBox", "SearchedFaceConfidence", "FaceMatches", "FaceModelVersion"}
    [search] = _records(tmp_path, "search")
    q = search["probe_quality"]
    assert set(q) == {"eye_distance_px", "sharpness", "brightness", "band"}
    assert q["eye_distance_px"] == pytest.approx(eyes_px(portrait_2018("C000141").read_bytes()), abs=0.01)
    assert q["band"] == "portrait" and 0 < q["sharpness"] <= 100 and 0 < q["brightness"] <= 100
    assert "quality_flag" not in search


def test_policy_minimum_refuses_a_small_probe_from_the_cli_and_logs_why(cli, tmp_path):
    probe = small_probe("C000141", 0.4)
    eyes = eyes_px(probe)
    assert 8 < eyes < 30  # still detected, but small
    path = tmp_path / "small.jpg"
    path.write_bytes(probe)
    minimum = round(eyes) + 6
    out, _ = cli("policy", "set", "g", "--min-eye-distance", str(minimum), "--json")
    assert json.loads(out)["MinEyeDistance"] == minimum and json.loads(out)["OnLowQuality"] == "refuse"
    _, err = cli("search", "g", str(path), code=6)
    assert "AccessDeniedException" in err and f"probe eyes {eyes:.0f} px apart, policy minimum {minimum}" in err
    refused = [r for r in _records(tmp_path, "refused") if r.get("probe_quality")]
    assert len(refused) == 1 and refused[0]["operation"] == "SearchFacesByImage"
    assert f"policy minimum {minimum}" in refused[0]["reason"]
    assert refused[0]["probe_quality"]["eye_distance_px"] == pytest.approx(eyes, abs=0.01)
    assert _records(tmp_path, "search") == []  # never searched, so no candidates and no leads
    # the full-size portrait passes the same policy
    cli("search", "g", str(portrait_2018("C000141")))
    assert len(_records(tmp_path, "search")) == 1


def test_band_minimum_in_flag_mode_searches_logs_the_flag_and_marks_the_lead(cli, tmp_path):
    from faceaudit.accountability import Accountability

    probe = small_probe("C000141", 0.4)
    path = tmp_path / "small.jpg"
    path.write_bytes(probe)
    cli("policy", "set", "g", "--min-probe-quality", "portrait", "--on-low-quality", "flag")
    out, _ = cli("policy", "get", "g")
    assert "quality band portrait or better" in out and "leads flagged" in out
    cli("search", "g", str(path), "--threshold", "0")
    [search] = _records(tmp_path, "search")
    assert search["probe_quality"]["band"] != "portrait"
    assert "policy minimum band portrait" in search["quality_flag"]
    leads = Accountability(tmp_path / "data").leads()
    assert leads and all(l.quality_flag == search["quality_flag"] for l in leads)
    assert all(l.probe_quality is not None and l.probe_quality.band == search["probe_quality"]["band"]
               for l in leads)
    assert leads[0].to_json()["ProbeQuality"]["Band"] == search["probe_quality"]["band"]


def test_policy_values_are_checked(cli):
    _, err = cli("policy", "set", "g", "--min-eye-distance", "0", code=2)
    assert "MinEyeDistance" in err
    for bad in (("--min-probe-quality", "huge"), ("--on-low-quality", "warn")):
        with pytest.raises(SystemExit) as info:  # argparse: a usage error
            cli("policy", "set", "g", *bad)
        assert info.value.code == 2


def test_put_collection_policy_over_http_refuses_a_small_probe(tmp_path):
    from tests.accountability.serving import serving
    from tests.accountability.test_http import native
    from tests.service.conftest import client

    with serving(tmp_path) as (url, keys):
        rek = client(url, keys["operator"])
        rek.create_collection(CollectionId="lineup")
        rek.index_faces(CollectionId="lineup", Image={"Bytes": portrait_2014("C000141").read_bytes()})
        probe = small_probe("C000141", 0.4)
        minimum = round(eyes_px(probe)) + 6
        status, doc = native(url, keys["admin"], "PutCollectionPolicy", {
            "CollectionId": "lineup", "MinEyeDistance": minimum, "MinProbeQuality": "tiny",
            "OnLowQuality": "refuse"})
        assert status == 200 and doc["Policy"]["MinEyeDistance"] == minimum
        assert doc["Policy"]["MinProbeQuality"] == "tiny" and doc["Policy"]["OnLowQuality"] == "refuse"
        status, doc = native(url, keys["admin"], "PutCollectionPolicy",
                             {"CollectionId": "lineup", "OnLowQuality": "sometimes"})
        assert status == 400 and "OnLowQuality" in doc["message"]
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError) as info:
            rek.search_faces_by_image(CollectionId="lineup", Image={"Bytes": probe})
        assert info.value.response["Error"]["Code"] == "AccessDeniedException"
        assert f"policy minimum {minimum}" in info.value.response["Error"]["Message"]
        full = rek.search_faces_by_image(CollectionId="lineup", Image={"Bytes": portrait_2018("C000141").read_bytes()})
        assert "ProbeQuality" not in full and len(full["FaceMatches"]) == 1
    from faceaudit.accountability import SearchLog

    records = list(SearchLog(tmp_path / "search-log.jsonl").records())
    refused = [r.data for r in records if r.kind == "refused" and r.data.get("probe_quality")]
    assert len(refused) == 1 and refused[0]["source"] == "http" and "policy minimum" in refused[0]["reason"]
    [search] = [r.data for r in records if r.kind == "search"]
    assert search["probe_quality"]["band"] == "portrait"
