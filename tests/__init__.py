"""The test suite. Scripts import nothing from here: the machinery the suite shares with them
(sample clip, portraits, throwaway PostgreSQL, HAProxy, `faceaudit serve` processes) lives in
scripts/_*.py, which the suite loads by path with :func:`scripts_module`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def scripts_module(name: str) -> ModuleType:
    """``scripts/<name>.py`` (e.g. ``"_support"``), loaded once by path, the file the scripts import."""
    key = f"faceaudit_scripts_{name.lstrip('_')}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, SCRIPTS / f"{name}.py")
    if spec is None or spec.loader is None:  # pragma: no cover - the file is part of the repository
        raise ImportError(f"scripts/{name}.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # before running it: dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module
