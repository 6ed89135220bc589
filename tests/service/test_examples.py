"""The README's boto3 example (examples/boto3_search.py) runs as documented against `faceaudit serve`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import WAIT_LIMIT_S
from tests.service.conftest import ServeProcess, create_key, needs_backend

ROOT = Path(__file__).resolve().parents[2]


@needs_backend
def test_boto3_example_searches_with_a_signed_case_reference(tmp_path):
    key = create_key(tmp_path)
    (tmp_path / "key.json").write_text(json.dumps(key))
    proc = ServeProcess(tmp_path, "--workers", "1")
    try:
        run = subprocess.run([sys.executable, str(ROOT / "examples" / "boto3_search.py"), str(tmp_path / "key.json"),
                              proc.url], cwd=ROOT, capture_output=True, text=True, timeout=WAIT_LIMIT_S)
    finally:
        proc.stop()
    assert run.returncode == 0, run.stderr
    assert "indexed [" in run.stdout and "candidate B000944: Similarity" in run.stdout
    from faceaudit.accountability import SearchLog

    searches = [r for r in SearchLog(tmp_path / "search-log.jsonl").records() if r.kind == "search"]
    assert [r.data.get("case_reference") for r in searches] == ["CASE-2026-0142"]
    readme = (ROOT / "README.md").read_text()
    assert "examples/boto3_search.py" in readme and 'before-sign.rekognition.SearchFacesByImage' in readme
