"""What the scripts share: a boto3 client for a faceaudit server, a signed call to one of
faceaudit's own operations, the committed public-domain portraits, synthetic prepared faces and
the sample clip of portraits.

Scripts import nothing from ``tests/``; the test suite's portraits, synthetic faces and sample clip
are these (tests/conftest.py loads this file; ``tests/test_scripts_support.py`` checks that it does).
The throwaway PostgreSQL server is scripts/_pgserver.py; HAProxy and `faceaudit serve` processes
are scripts/_deploy_support.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
REGION = "us-east-1"

MEMBERS_F = ["C000127", "F000062", "K000367", "M001170"]
MEMBERS_M = ["B000944", "C000141", "C000174", "C001070"]
MEMBERS = MEMBERS_F + MEMBERS_M
"""Bioguide ids of the members whose 2014 and 2018 portraits are in tests/data."""

VIDEO_FPS = 10
VIDEO_SIZE = (960, 540)
VIDEO_SCRIPT = (
    # (bioguide, first second shown, last second shown (exclusive), left edge in pixels)
    ("C000127", 0.0, 4.0, 40),      # enters at once, leaves at 4 s
    ("B000944", 2.0, 6.0, 520),     # enters at 2 s (two people at once until 4 s), leaves at 6 s
    ("C000141", 4.5, 6.0, 40),      # a passer-by who is not in the gallery
    ("C000127", 6.5, 8.0, 280),     # the first person comes back elsewhere in the picture
)
VIDEO_SECONDS = 8.0


def portrait_2018(bioguide: str) -> Path:
    """Official 2018 Congressional portrait (public domain, Bioguide)."""
    return DATA / "congress2018" / f"{bioguide}.jpg"


def portrait_2014(bioguide: str) -> Path:
    """2014 Pictorial Directory portrait, grayscale 200x250 (public domain)."""
    return DATA / "congress2014" / f"{bioguide}.jpg"


def synthetic_image(n_faces: int, model_version: str, rng: np.random.Generator, dimension: int = 128,
                    vectors: np.ndarray | None = None):
    """A PreparedImage with random unit vectors (no engine needed): ``n_faces`` faces of
    ``dimension`` components drawn from ``rng`` (a numpy Generator), or the given ``vectors``."""
    import hashlib

    import numpy as np

    from faceaudit.collections._prepare import PreparedFace, PreparedImage
    from faceaudit.engine import BoundingBox

    if vectors is None:
        vectors = rng.standard_normal((n_faces, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    box = BoundingBox(0.1, 0.1, 0.5, 0.5)
    faces = tuple(
        PreparedFace(detail={"BoundingBox": box.to_rekognition(), "Confidence": 99.0}, bounding_box=box,
                     confidence=99.0, quality=90.0, vector=v)
        for v in vectors
    )
    digest = hashlib.sha256(rng.bytes(16)).hexdigest()
    return PreparedImage(sha256=digest, width=100, height=100, model_version=model_version, faces=faces,
                         unindexed=())


def client(url: str, key: dict[str, str], **config):
    """A boto3 Rekognition client for a faceaudit server (one attempt per call)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "rekognition", endpoint_url=url, region_name=REGION,
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        config=Config(**{"retries": {"max_attempts": 1, "mode": "standard"}, **config}),
    )


def native(url: str, key: dict[str, str], operation: str, params: dict) -> tuple[int, dict]:
    """A SigV4-signed call to one of faceaudit's own operations: (HTTP status, response document)."""
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps(params).encode()
    req = AWSRequest("POST", url + "/", data=body, headers={
        "X-Amz-Target": f"FaceAuditService.{operation}", "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(key["AccessKeyId"], key["SecretAccessKey"]), "rekognition", REGION).add_auth(req)
    prepared = urllib.request.Request(url + "/", data=body, headers=dict(req.headers.items()), method="POST")
    try:
        with urllib.request.urlopen(prepared, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def make_video(path: Path, script=VIDEO_SCRIPT, seconds: float = VIDEO_SECONDS, fps: int = VIDEO_FPS,
               size=VIDEO_SIZE, fourcc: str = "mp4v") -> Path:
    """Write a clip with cv2.VideoWriter: 2018 portraits on a grey background, per ``script``."""
    import cv2
    import numpy as np
    from PIL import Image

    width, height = size
    tiles = {}
    for member, *_ in script:
        img = Image.open(portrait_2018(member)).convert("RGB")
        h = int(height * 0.8)
        img = img.resize((int(img.width * h / img.height), h))
        tiles[member] = np.asarray(img)[:, :, ::-1]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cv2 cannot write {fourcc} to {path}")
    for n in range(int(round(seconds * fps))):
        t = n / fps
        frame = np.full((height, width, 3), 110, np.uint8)
        for member, start, end, left in script:
            if start <= t < end:
                tile = tiles[member]
                top = (height - tile.shape[0]) // 2
                frame[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
        writer.write(frame)
    writer.release()
    return path
