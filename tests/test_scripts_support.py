"""scripts/ import nothing from tests/; the suite's sample clip is the scripts' own
(scripts/_support.py, loaded by tests/conftest.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


KNOWN = {"bench_log.py: tests._postgres"}
"""Left for its owner (issue 21's throwaway PostgreSQL server lives in tests/_postgres.py): to move
out of tests/ so that this set is empty. Nothing may be added to it."""


def test_scripts_import_no_tests_modules():
    offenders = []
    for path in sorted((ROOT / "scripts").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n == "tests" or n.startswith("tests.")]
    assert sorted(set(offenders) - KNOWN) == []


def test_the_scripts_clip_is_the_suites():
    """One sample clip: the suite's fixtures use scripts/_support.py itself, not a copy of it."""
    from tests import conftest

    assert Path(conftest.SCRIPTS_SUPPORT.__file__).resolve() == ROOT / "scripts" / "_support.py"
    assert conftest.make_video is conftest.SCRIPTS_SUPPORT.make_video
    assert conftest.VIDEO_SCRIPT is conftest.SCRIPTS_SUPPORT.VIDEO_SCRIPT
    assert conftest.SCRIPTS_SUPPORT.portrait_2018("B000944") == conftest.portrait_2018("B000944")
