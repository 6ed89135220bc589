"""FaceCollections.check_health(): the readiness check behind GET /ready (one cheap read)."""

from __future__ import annotations

import pytest

from faceaudit import ServiceUnavailableError
from faceaudit.collections import FaceCollections

pytestmark = pytest.mark.usefixtures("on_both_databases")


def test_a_store_with_a_collection_answers(fc):
    fc.check_health()


def test_a_data_dir_without_a_database_yet_answers(tmp_path):
    FaceCollections(tmp_path / "data").check_health()


def test_a_database_server_that_does_not_answer_is_an_error(tmp_path, free_tcp_port):
    fc = FaceCollections(tmp_path / "data",
                         database_url=f"postgresql://nobody@127.0.0.1:{free_tcp_port}/faceaudit?connect_timeout=2")
    with pytest.raises(ServiceUnavailableError, match="cannot be reached"):
        fc.check_health()


@pytest.fixture
def free_tcp_port() -> int:
    from tests._deploy import free_port

    return free_port()
