"""The AWS CLI (if installed) against the server: the same wire protocol as boto3, other code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import portrait_2014, portrait_2018
from tests.service.conftest import have_backend

AWS = shutil.which("aws")
pytestmark = pytest.mark.skipif(AWS is None, reason="the AWS CLI is not installed")


def aws(server, key, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIRTUAL_ENV", "PYTHON"))}
    env.update({
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": "",
    })
    p = subprocess.run([AWS, "rekognition", *args, "--endpoint-url", server, "--output", "json"],
                       capture_output=True, text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)}: {p.returncode} {p.stderr}")
    return p


def test_cli_detect_and_compare(server, key):
    p = aws(server, key, "detect-faces", "--image-bytes", f"fileb://{portrait_2018('C000127')}")
    assert len(json.loads(p.stdout)["FaceDetails"]) == 1
    p = aws(server, key, "compare-faces", "--source-image-bytes", f"fileb://{portrait_2018('C000141')}",
            "--target-image-bytes", f"fileb://{portrait_2014('C000141')}")
    assert json.loads(p.stdout)["FaceMatches"][0]["Similarity"] >= 80


def test_cli_errors(server, key):
    p = aws(server, key, "detect-faces", "--image", '{"S3Object":{"Bucket":"bucket","Name":"a.jpg"}}', check=False)
    assert p.returncode != 0 and "InvalidS3ObjectException" in p.stderr
    bad = {**key, "SecretAccessKey": "z" * 40}
    p = aws(server, bad, "detect-faces", "--image-bytes", f"fileb://{portrait_2018('C000127')}", check=False)
    assert p.returncode != 0 and "InvalidSignatureException" in p.stderr


@pytest.mark.skipif(not have_backend(), reason="faceaudit.collections not there yet")
def test_cli_collections_and_pagination(server, key):
    aws(server, key, "create-collection", "--collection-id", "cli-test")
    try:
        for m in ("C000127", "B000944", "C000141"):
            aws(server, key, "index-faces", "--collection-id", "cli-test", "--external-image-id", m,
                "--image-bytes", f"fileb://{portrait_2018(m)}")
        # the CLI paginates by itself: page size 1, all three faces come back
        p = aws(server, key, "list-faces", "--collection-id", "cli-test", "--page-size", "1")
        assert len(json.loads(p.stdout)["Faces"]) == 3
        p = aws(server, key, "search-faces-by-image", "--collection-id", "cli-test",
                "--image-bytes", f"fileb://{portrait_2014('C000141')}")
        assert json.loads(p.stdout)["FaceMatches"][0]["Face"]["ExternalImageId"] == "C000141"
        p = aws(server, key, "list-collections")
        assert "cli-test" in json.loads(p.stdout)["CollectionIds"]
    finally:
        aws(server, key, "delete-collection", "--collection-id", "cli-test")
