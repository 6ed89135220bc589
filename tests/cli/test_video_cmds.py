import json

import pytest

from faceaudit.cli import main
from tests.conftest import make_video, portrait_2014


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return str(make_video(tmp_path_factory.mktemp("clip") / "doorbell.mp4"))


def test_video_search_needs_a_warrant_and_finds_each_person(tmp_path, capsys, clip):
    d = str(tmp_path)
    assert run(capsys, "collection", "create", "g", "--data-dir", d)[0] == 0
    for m in ("C000127", "B000944"):
        assert run(capsys, "index", "g", str(portrait_2014(m)), "--external-image-id", m, "--data-dir", d)[0] == 0
    code, out, err = run(capsys, "video", "search", "g", clip, "--data-dir", d, "--fps", "1")
    assert code == 6 and "warrant" in err
    code, out, err = run(capsys, "video", "search", "g", clip, "--data-dir", d, "--fps", "1",
                         "--warrant", "W-17", "--json", "--quiet")
    assert code == 0
    doc = json.loads(out)
    assert doc["VideoMetadata"]["DurationMillis"] == 8000
    found = {(p["Person"]["Index"], p["FaceMatches"][0]["Face"]["ExternalImageId"]) for p in doc["Persons"]}
    assert found == {(0, "C000127"), (1, "B000944")}
    code, out, _ = run(capsys, "video", "search", "g", clip, "--data-dir", d, "--fps", "1", "--warrant", "W-17",
                       "--quiet")
    assert code == 0 and "C000127" in out and "investigative lead" in out
    from faceaudit.accountability import Accountability

    leads = Accountability(d).leads()  # the warrant is the leads' case reference, as over HTTP
    assert leads and Accountability(d).leads(case_reference="W-17") == leads
    code, out, _ = run(capsys, "log", "verify", "--data-dir", d)
    assert code == 0
    assert run(capsys, "video", "policy", "g", "--warrant-required", "no", "--data-dir", d)[0] == 0
    assert run(capsys, "video", "search", "g", clip, "--data-dir", d, "--fps", "0.5", "--quiet")[0] == 0


def test_video_detect_and_bad_input(tmp_path, capsys, clip):
    code, out, _ = run(capsys, "video", "detect", clip, "--fps", "1", "--json", "--data-dir", str(tmp_path))
    assert code == 0 and len(json.loads(out)["Faces"]) >= 8
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"junk" * 100)
    code, _, err = run(capsys, "video", "detect", str(junk), "--data-dir", str(tmp_path))
    assert code == 3 and "InvalidParameterException" in err
    code, _, err = run(capsys, "video", "detect", clip, "--fps", "100", "--data-dir", str(tmp_path))
    assert code == 2 and "frames per second" in err


def test_video_input_errors_are_typed_quiet_and_use_the_parameter_exit_code(tmp_path, capsys, clip):
    """Issue 23 item 5: an image is not a video; a wrong path exits 2; no FFmpeg noise; no INT64_MIN."""
    from tests.conftest import portrait_2014
    from tests.service.conftest import cli

    d = str(tmp_path / "d")
    code, _, err = run(capsys, "video", "detect", str(portrait_2014("C000127")), "--data-dir", d)
    assert code == 3 and "JPEG image, not a video" in err
    code, _, err = run(capsys, "video", "detect", str(tmp_path / "nosuch.mp4"), "--data-dir", d)
    assert code == 2 and "No such file" in err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"junk" * 100)
    proc = cli("video", "detect", str(junk), "--data-dir", d, check=False)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [line for line in proc.stderr.strip().splitlines()
                                                if line.startswith("faceaudit: ")], proc.stderr
    assert "-9223372036854775808" not in proc.stderr


def test_video_progress_ends_at_100_percent(tmp_path, capsys, clip):
    code, _, err = run(capsys, "video", "detect", clip, "--fps", "1", "--data-dir", str(tmp_path))
    lines = [line for line in err.splitlines() if line.startswith("video:")]
    assert code == 0 and lines and lines[-1].startswith("video: 100%"), err
