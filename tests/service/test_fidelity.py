"""Where clients notice Rekognition's behaviour (issue 11): error bodies, model versions,
QualityFilter on CompareFaces, tags, ARNs, unsupported HTTP versions."""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import pytest

from tests.service.test_http import raw


def test_error_bodies_carry_message_and_Message(server):
    # the AWS SDK for Go v2 reads "Message"; botocore and the AWS CLI read "message"
    resp, doc, _ = raw(server)
    assert resp.status == 400 and doc["__type"] == "MissingAuthenticationTokenException"
    assert doc["message"] and doc["Message"] == doc["message"]
    resp, doc, _ = raw(server, "GET", "/nowhere", body=None)
    assert resp.status == 404 and doc["Message"] == doc["message"]
