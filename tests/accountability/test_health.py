"""Accountability.check_health(): the search log's head and the policy/lead store answer."""

from __future__ import annotations

import pytest

from faceaudit import ServiceUnavailableError
from faceaudit.accountability import Accountability


def test_the_log_and_the_store_answer(tmp_path, database_url):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    acc = Accountability(data, database_url=database_url)
    acc.check_health()
    acc.log.append("search", {"operation": "SearchFaces"})
    acc.check_health()


def test_a_log_database_that_does_not_answer_is_an_error(tmp_path):
    from tests._deploy import free_port

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/faceaudit?connect_timeout=2"
    with pytest.raises(ServiceUnavailableError):
        Accountability(data, database_url=url).check_health()
