"""Shared fixtures: the committed public-domain photos in tests/data."""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import scripts_module
from tests._milvus import milvus_server, milvus_uri  # noqa: F401  (fixtures: a throwaway Milvus server)
from tests._postgres import postgres_server, postgres_url  # noqa: F401  (fixtures: a throwaway PostgreSQL)

SCRIPTS_SUPPORT = scripts_module("_support")
"""scripts/_support.py, which the scripts import: the suite's portraits and sample clip are theirs."""
def pytest_configure(config) -> None:
    """gRPC (pymilvus, in this process once a Milvus test ran) re-creates its event engine in every
    forked child by default; a child forked to exec a server (PostgreSQL, faceaudit serve) then
    died at start now and then ("epoll_wait error: Bad file descriptor" in its log). The suite
    forks only to exec, so gRPC's fork handlers are off (set before anything imports grpc)."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


DATA = Path(__file__).parent / "data"
MEMBERS_F = SCRIPTS_SUPPORT.MEMBERS_F
MEMBERS_M = SCRIPTS_SUPPORT.MEMBERS_M
MEMBERS = SCRIPTS_SUPPORT.MEMBERS

HAVE_DLIB = importlib.util.find_spec("dlib") is not None and importlib.util.find_spec(
    "face_recognition_models"
) is not None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str | None:
    """Run a test on both databases: None (the data dir's SQLite files, the default) or the URL
    of a fresh, empty PostgreSQL database on the session's throwaway server (tests/_postgres.py)."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


WAIT_LIMIT_S = 600.0
"""How long wait_until waits before calling a test hung (a guard only: tests wait for conditions)."""


def wait_until(condition, what: str, limit: float = WAIT_LIMIT_S, interval: float = 0.02):
    """Poll ``condition()`` until it returns a true value (returned); fail after ``limit`` seconds.

    Tests wait for what they need to have happened, never for a fixed time, so a
    loaded machine only makes them slower. The limit only turns a hang into a failure.
    """
    import time

    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:g} s waiting for {what}")
        time.sleep(interval)


portrait_2018 = SCRIPTS_SUPPORT.portrait_2018
"""Official 2018 Congressional portrait (public domain, Bioguide): scripts/_support.py."""
portrait_2014 = SCRIPTS_SUPPORT.portrait_2014
"""2014 Pictorial Directory portrait, grayscale 200x250 (public domain): scripts/_support.py."""


def meds(name: str) -> Path:
    """NIST MEDS-II mugshot (see tests/data/meds/NOTICE)."""
    return DATA / "meds" / f"{name}.jpg"


def side_by_side(*paths: Path) -> bytes:
    """A JPEG with the given photos pasted side by side (a multi-face image)."""
    images = [Image.open(p).convert("RGB") for p in paths]
    h = max(i.height for i in images)
    canvas = Image.new("RGB", (sum(i.width for i in images), h), (128, 128, 128))
    x = 0
    for i in images:
        canvas.paste(i, (x, 0))
        x += i.width
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def blank_image(width: int = 200, height: int = 200, fmt: str = "PNG") -> bytes:
    """A uniform image with no face."""
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 200, np.uint8)).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def sface_engine():
    from faceaudit.engine import FaceEngine

    return FaceEngine("sface")


@pytest.fixture(scope="session")
def dlib_engine():
    if not HAVE_DLIB:
        pytest.skip("the dlib extra is not installed")
    from faceaudit.engine import FaceEngine

    return FaceEngine("dlib")


@pytest.fixture(params=["sface", "dlib"])
def any_engine(request):
    if request.param == "dlib" and not HAVE_DLIB:
        pytest.skip("the dlib extra is not installed")
    from faceaudit.engine import FaceEngine

    return FaceEngine(request.param)


@pytest.fixture(scope="session")
def _session_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("faceaudit-cache")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch, _session_cache_dir):
    """No test writes to the user's real data or cache dir: FACEAUDIT_DATA_DIR points at a fresh
    tmp dir, FACEAUDIT_CACHE_DIR at one shared by the session (the folded SFace model)."""
    monkeypatch.setenv("FACEAUDIT_DATA_DIR", str(tmp_path_factory.mktemp("faceaudit-data")))
    monkeypatch.setenv("FACEAUDIT_CACHE_DIR", str(_session_cache_dir))


# -- stored video: a test clip made from the portraits above ------------------------------------

VIDEO_FPS = SCRIPTS_SUPPORT.VIDEO_FPS
VIDEO_SIZE = SCRIPTS_SUPPORT.VIDEO_SIZE
VIDEO_SCRIPT = SCRIPTS_SUPPORT.VIDEO_SCRIPT
"""Who is on screen when in the sample clip: (bioguide, first second, last second (exclusive), left px)."""
VIDEO_SECONDS = SCRIPTS_SUPPORT.VIDEO_SECONDS
make_video = SCRIPTS_SUPPORT.make_video
"""Write the sample clip (cv2.VideoWriter: 2018 portraits on a grey background): scripts/_support.py."""
