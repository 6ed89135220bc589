"""scripts/ import nothing from tests/; the machinery both use is the scripts' own (scripts/_*.py,
loaded by path with tests.scripts_module): sample clip, portraits, synthetic faces, the throwaway
PostgreSQL server, HAProxy and `faceaudit serve` processes."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


KNOWN: set[str] = set()
"""Scripts allowed to import from tests/: none (issue 20). Nothing may be added to it."""


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


def test_the_suites_machinery_is_the_scripts():
    """The suite's PostgreSQL server, HAProxy, serve processes and synthetic faces are the files the
    scripts import, loaded once each (not copies of them)."""
    from tests import _deploy, _postgres, conftest, scripts_module
    from tests.collections import conftest as collections_conftest
    from tests.service import conftest as service_conftest

    pgserver, deploy, support = (scripts_module(n) for n in ("_pgserver", "_deploy_support", "_support"))
    assert Path(pgserver.__file__).resolve() == ROOT / "scripts" / "_pgserver.py"
    assert Path(deploy.__file__).resolve() == ROOT / "scripts" / "_deploy_support.py"
    assert support is conftest.SCRIPTS_SUPPORT
    assert _postgres.throwaway_server is pgserver.throwaway_server
    assert _postgres.PostgresServer is pgserver.PostgresServer
    assert (_deploy.HAProxy, _deploy.free_port, _deploy.wait_for, _deploy.rekognition) == (
        deploy.HAProxy, deploy.free_port, deploy.wait_for, deploy.rekognition)
    assert service_conftest.ServeProcess is deploy.ServeProcess
    assert service_conftest.create_key is deploy.create_key
    assert collections_conftest.synthetic_image is support.synthetic_image
    assert "pytest" not in vars(pgserver) and "pytest" not in vars(deploy) and "pytest" not in vars(support)
