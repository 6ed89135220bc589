"""scripts/run_public_audit.sh: writes to OUT only unless asked to update the docs; passes the
probe conditions and the MEDS relabelling to the audit. The audit itself is a stub here (the real
run takes minutes per model)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_public_audit.sh"

STUB = """#!/usr/bin/env bash
# records its arguments; `audit ... --out DIR` writes a results.json, candidates.csv and report.html there,
# `report DIR` a report.html
set -euo pipefail
printf '%s\\n' "$*" >> "$STUB_LOG"
out=""; prev=""
for a in "$@"; do [ "$prev" = "--out" ] && out="$a"; prev="$a"; done
if [ "$1" = "audit" ]; then
  mkdir -p "$out"; echo '{"engine": {"model": "stub"}}' > "$out/results.json"; echo "probe" > "$out/candidates.csv"
  echo "<html>$*</html>" > "$out/report.html"
elif [ "$1" = "report" ] && [ -z "$out" ]; then
  echo "<html>$*</html>" > "$2/report.html"
fi
"""


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def stub(tmp_path):
    exe = tmp_path / "faceaudit-stub"
    exe.write_text(STUB)
    exe.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {k: v for k, v in os.environ.items() if k != "DOCS"}
    env.update(FACEAUDIT=str(exe), STUB_LOG=str(log), OUT=str(tmp_path / "out"), DATA=str(tmp_path / "data"))
    return env, log, tmp_path


def test_without_update_docs_only_out_is_written(stub):
    env, log, tmp = stub
    before = _digest(ROOT / "docs" / "public-audit")
    run = subprocess.run(["bash", str(SCRIPT), "sface"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert _digest(ROOT / "docs" / "public-audit") == before  # docs untouched
    assert (tmp / "out" / "sface" / "report.html").exists() and (tmp / "out" / "sface" / "wall_time.txt").exists()
    assert "docs/ untouched" in run.stdout
    audit = next(line for line in log.read_text().splitlines() if line.startswith("audit "))
    for condition in ("doorbell-day-1.5m", "doorbell-day-3m", "doorbell-night-3m", "cctv-4m"):
        assert f"--probe-condition {condition}" in audit
    assert "--relabel race:B=black --relabel race:W=white_non_hispanic" in audit
    assert "NIST's \"White\", to white_non_hispanic as an approximation" in audit


def test_update_docs_copies_to_docs(stub):
    env, _, tmp = stub
    env["DOCS"] = str(tmp / "docs")  # DOCS set: the docs are updated there
    run = subprocess.run(["bash", str(SCRIPT), "sface"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    docs = tmp / "docs" / "sface"
    assert json.loads((docs / "results.json").read_text()) == {"engine": {"model": "stub"}}
    assert (docs / "candidates.csv").read_text() == "probe\n"
    assert "--no-thumbnails" in (docs / "report.html").read_text()  # the published report has no faces


def test_an_unknown_option_is_refused(stub):
    env, log, _ = stub
    run = subprocess.run(["bash", str(SCRIPT), "--update-doc", "sface"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "unknown option --update-doc" in run.stderr and not log.exists()


def test_published_tables_are_the_summary_of_the_published_results():
    """docs/public-audit/tables.md is what scripts/summarize_public_audit.py makes of the published
    results.json files today (so it is regenerated with them), with one row per probe condition."""
    import sys

    docs = ROOT / "docs" / "public-audit"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "summarize_public_audit.py"),
                          "docs/public-audit/sface", "docs/public-audit/dlib"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == (docs / "tables.md").read_text(encoding="utf-8")
    for model in ("sface", "dlib"):
        res = json.loads((docs / model / "results.json").read_text(encoding="utf-8"))
        names = [c["name"] for c in res["conditions"]]
        assert names == ["clean", "doorbell-day-1.5m", "doorbell-day-3m", "doorbell-night-3m", "cctv-4m"]
        night = next(c for c in res["conditions"] if c["name"] == "doorbell-night-3m")
        fnir = next(s for s in night["summaries"] if s["threshold"] == 80.0)["overall"]["FNIR"]
        section = next(part for part in run.stdout.split("\n### ") if part.startswith(f"{model} ("))
        row = next(line for line in section.splitlines() if line.startswith("| doorbell-night-3m"))
        assert f"| {fnir['errors']}/{fnir['trials']} = " in row
        assert f"{night['failures_to_enrol']}/{night['probes']}" in row
