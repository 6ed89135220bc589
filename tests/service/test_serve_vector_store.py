"""`faceaudit serve --vector-store milvus --milvus-uri URI`, `--fastscan-above N` and `--hnsw-above N`."""

from __future__ import annotations

import argparse
import os

import pytest

from faceaudit import InvalidParameterError
from faceaudit.collections import SearchConfig, VectorStore
from tests.conftest import portrait_2014, portrait_2018
from tests.service.conftest import ServeProcess, cli, client, create_key


def test_serve_options_reach_the_backend_in_the_app_factory(monkeypatch, tmp_path):
    """The serve flags over the settings make one SearchConfig, handed to the workers inside the
    picklable app factory: nothing is written to the environment for workers to read back."""
    import pickle

    from faceaudit._settings import load_settings
    from faceaudit.cli._service_cmds import _search_config

    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEAUDIT_")}
    monkeypatch.setattr(os, "environ", env)
    args = argparse.Namespace(vector_store=None, milvus_uri=None, hnsw_above=500_000, fastscan_above=20_000,
                              workers=4)
    config = _search_config(args)
    assert config == SearchConfig(hnsw_above=500_000, fastscan_above=20_000)
    assert not any(k.startswith("FACEAUDIT_") for k in os.environ)  # the environment is left alone
    assert pickle.loads(pickle.dumps(config)) == config
    # flags win over the environment, the environment over the defaults
    settings = load_settings({"FACEAUDIT_HNSW_ABOVE": "7", "FACEAUDIT_FASTSCAN_ABOVE": "3"})
    assert _search_config(args, settings) == SearchConfig(hnsw_above=500_000, fastscan_above=20_000)
    args.hnsw_above = None
    assert _search_config(args, settings).hnsw_above == 7
    if os.environ.get("CI") == "true" or _has_pymilvus():
        uri = str(tmp_path / "m.db")
        c = _search_config(argparse.Namespace(vector_store="milvus", milvus_uri=uri, hnsw_above=500_000,
                                              fastscan_above=None, workers=1))
        assert (c.vector_store, c.milvus_uri, c.hnsw_above) == (VectorStore.MILVUS, uri, 500_000)
        with pytest.raises(InvalidParameterError):  # milvus-lite is one process's
            _search_config(argparse.Namespace(vector_store="milvus", milvus_uri=uri, hnsw_above=None,
                                              fastscan_above=None, workers=2))


def _has_pymilvus() -> bool:
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _has_pymilvus() and os.environ.get("CI") != "true",
                    reason="pymilvus/milvus-lite not installed (the milvus extra)")
def test_serve_with_milvus_lite(tmp_path):
    data = tmp_path / "data"
    key = create_key(data)
    uri = tmp_path / "milvus" / "faces.db"
    refused = cli("serve", "--data-dir", str(data), "--port", "0", "--vector-store", "milvus",
                  "--milvus-uri", str(uri), "--workers", "2", check=False)
    assert refused.returncode == 2 and "one process" in refused.stderr
    proc = ServeProcess(data, "--vector-store", "milvus", "--milvus-uri", str(uri))
    try:
        rek = client(proc.url, key)
        rek.create_collection(CollectionId="m")
        for m in ("B000944", "C000141"):
            rek.index_faces(CollectionId="m", Image={"Bytes": portrait_2014(m).read_bytes()}, ExternalImageId=m)
        r = rek.search_faces_by_image(CollectionId="m", Image={"Bytes": portrait_2018("B000944").read_bytes()},
                                      FaceMatchThreshold=0)
        assert r["FaceMatches"][0]["Face"]["ExternalImageId"] == "B000944"
        assert len(r["FaceMatches"]) == 2
        assert uri.exists()
    finally:
        assert proc.stop() == 0


@pytest.mark.slow
def test_serve_flags_reach_every_worker_and_the_search_log(tmp_path):
    """--fastscan-above 0 over two spawned workers: every worker's backend uses the fast scan for
    an untagged collection (no environment variable carries it), and the search log says so."""
    from faceaudit.accountability import SearchLog

    data = tmp_path / "data"
    key = create_key(data)
    proc = ServeProcess(data, "--workers", "2", "--fastscan-above", "0")
    try:
        rek = client(proc.url, key)
        rek.create_collection(CollectionId="g")
        rek.index_faces(CollectionId="g", Image={"Bytes": portrait_2014("B000944").read_bytes()},
                        ExternalImageId="B000944")
        probe = portrait_2018("B000944").read_bytes()
        for _ in range(4):  # fresh connections spread over the workers
            r = client(proc.url, key).search_faces_by_image(CollectionId="g", Image={"Bytes": probe})
            assert r["FaceMatches"][0]["Face"]["ExternalImageId"] == "B000944"
    finally:
        assert proc.stop() == 0
    indexes = [r.data.get("index") for r in SearchLog(data / "search-log.jsonl").records() if r.kind == "search"]
    assert indexes == ["fastscan"] * 4
