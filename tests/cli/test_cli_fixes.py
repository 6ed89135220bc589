"""Issue 23 item 5: the CLI fixes users tripped on, each checked through the real command line."""

import json
import os
import socket
import stat
from pathlib import Path

from tests.service.conftest import cli


def test_keys_create_out_writes_a_0600_key_file_and_never_overwrites(tmp_path):
    old = os.umask(0o022)  # the usual umask that left `> key.json` world-readable
    try:
        out = tmp_path / "key.json"
        run = cli("keys", "create", "--out", str(out), "--data-dir", str(tmp_path / "data"))
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        key = json.loads(out.read_text())
        assert set(key) == {"AccessKeyId", "SecretAccessKey"}
        assert key["SecretAccessKey"] not in run.stdout + run.stderr
        again = cli("keys", "create", "--out", str(out), "--data-dir", str(tmp_path / "data"), check=False)
        assert again.returncode == 2 and "exists" in again.stderr
        assert json.loads(out.read_text()) == key
        listed = cli("keys", "list", "--json", "--data-dir", str(tmp_path / "data")).stdout
        assert len(json.loads(listed)["AccessKeys"]) == 1  # the refused one made no key
    finally:
        os.umask(old)


def test_gitignore_keeps_key_files_and_buckets_out_of_the_repo():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines = Path(root, ".gitignore").read_text(encoding="utf-8").split()
    assert {"key.json", "/buckets/", "/out/"} <= set(lines)


def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = cli("serve", "--port", str(port), "--no-auth", "--data-dir", str(tmp_path / "d"), check=False)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in last, out.stderr
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr


def test_report_usage_prints_a_text_summary_and_html_only_to_a_file(tmp_path):
    data = str(tmp_path / "d")
    cli("collection", "create", "c", "--data-dir", data)
    period = ["--from", "2026-01-01", "--to", "2099-12-31", "--data-dir", data]
    text = cli("report", "usage", *period).stdout
    assert "<" not in text and "identification searches: 0" in text and "Search log verified" in text
    cli("report", "usage", *period, "--out", str(tmp_path / "u.html"))
    assert (tmp_path / "u.html").read_text().lstrip().lower().startswith("<!doctype html")
    listed = cli("--help").stdout
    assert "report usage" in listed and "report-usage" not in listed


def test_a_subcommands_bad_flag_prints_its_usage_with_a_did_you_mean():
    out = cli("search", "c", "--treshold", "80", check=False)
    assert out.returncode == 2
    assert "usage: faceaudit search" in out.stderr and "did you mean --threshold?" in out.stderr
    out = cli("keys", "create", "--jsn", check=False)
    assert out.returncode == 2 and "usage: faceaudit keys create" in out.stderr and "--json?" in out.stderr


def test_small_rates_read_as_1_in_n_and_short_exponents_never_a_percent():
    from faceaudit.cli._audit_cmds import _coherent
    from faceaudit.cli._output import rate_text, short_g

    assert rate_text(6.4e-5) == "6.4e-5 (1 in 15,625)"
    assert rate_text(0.012) == "0.012 (1 in 83)"
    assert rate_text(0.0) == "0" and rate_text(None) == "-" and rate_text(0.25) == "0.25"
    assert short_g(1.26e-7) == "1.3e-7" and short_g(0.001) == "0.001"
    assert "%" not in rate_text(6.4e-5)
    # a --match-count the threshold did not reach says so instead of contradicting "0/160"
    said = _coherent(("audited", "10 searches with a false candidate"), found=0)
    assert said[0] == "audited" and "at most 10" in said[1] and "0 here" in said[1]
    assert _coherent(("2 searches with a false candidate",), found=2) == ["2 searches with a false candidate"]


def test_log_verify_with_a_missing_anchors_dir_fails_before_printing_ok(tmp_path):
    data = str(tmp_path / "d")
    cli("collection", "create", "c", "--data-dir", data)
    out = cli("log", "verify", "--anchors", str(tmp_path / "nosuchdir"), "--data-dir", data, check=False)
    assert out.returncode == 2 and "no such directory" in out.stderr and "OK" not in out.stdout, out
    (tmp_path / "empty").mkdir()
    out = cli("log", "verify", "--anchors", str(tmp_path / "empty"), "--data-dir", data, check=False)
    assert out.returncode != 0 and "no anchors" in out.stderr and "OK" not in out.stdout, out


def test_make_demo_opens_briefly_and_shares_its_embedding_cache_with_the_readme():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    make = Path(root, "Makefile").read_text(encoding="utf-8")
    recipe = make[make.index("\ndemo: $(STAMP)"):make.index("\ntest:")]
    assert "faceaudit models --brief" in recipe and "faceaudit models\n" not in recipe
    cache = make.split("DEMO_CACHE := ")[1].split("\n")[0]
    assert "--cache $(DEMO_CACHE)" in recipe
    readme = Path(root, "README.md").read_text(encoding="utf-8")
    assert f"--out out/sample-audit \\\n    --cache {cache}" in readme
    brief = cli("models", "--brief").stdout.splitlines()
    assert 2 <= len(brief) <= 5 and brief[0].startswith("sface (default)")


def test_audit_with_the_rekognition_engine_and_no_credentials_says_which_are_needed(tmp_path):
    manifests = Path(__file__).resolve().parents[2] / "examples" / "sample" / "manifests"
    no_credentials = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
                      "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                      "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    out = cli("audit", "--engine", "rekognition", "--endpoint-url", "http://127.0.0.1:9",
              "--probes", str(manifests / "congress_2018.csv"), "--gallery", str(manifests / "congress_2014.csv"),
              "--out", str(tmp_path / "o"), "--quiet", check=False, env=no_credentials)
    assert out.returncode == 9 and "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in out.stderr, out.stderr


def test_audit_with_an_unknown_aws_profile_is_a_parameter_error(tmp_path):
    manifests = Path(__file__).resolve().parents[2] / "examples" / "sample" / "manifests"
    out = cli("audit", "--engine", "rekognition", "--endpoint-url", "http://127.0.0.1:9",
              "--probes", str(manifests / "congress_2018.csv"), "--gallery", str(manifests / "congress_2014.csv"),
              "--out", str(tmp_path / "o"), "--quiet", check=False,
              env={"AWS_PROFILE": "no-such-profile", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                   "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
    assert out.returncode == 2 and "no-such-profile" in out.stderr and "internal error" not in out.stderr


def test_a_missing_image_or_video_path_is_a_parameter_error_exit_2(tmp_path):
    data = str(tmp_path / "d")
    cli("collection", "create", "c", "--data-dir", data)
    for argv in (["detect", str(tmp_path / "no.jpg")], ["index", "c", str(tmp_path / "no.jpg"), "--data-dir", data],
                 ["video", "detect", str(tmp_path / "no.mp4"), "--data-dir", data]):
        out = cli(*argv, check=False)
        assert out.returncode == 2, (argv, out.stderr)
        assert "not found" in out.stderr or "No such file" in out.stderr, (argv, out.stderr)
