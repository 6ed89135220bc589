"""16 concurrent boto3 clients index and search one collection on a 2-worker server."""

from __future__ import annotations

import threading
import traceback

import pytest

from tests.conftest import MEMBERS, WAIT_LIMIT_S, portrait_2014, portrait_2018
from tests.service.conftest import ServeProcess, client, create_key, needs_backend

CLIENTS = 16
ROUNDS = 3
"""Each client indexes ROUNDS faces and runs ROUNDS searches: a fixed amount of work, not a fixed time."""


@pytest.mark.slow
@needs_backend
def test_concurrent_index_and_search_loses_nothing(tmp_path):
    key = create_key(tmp_path)
    proc = ServeProcess(tmp_path, "--workers", "2", "--rate-limit", "0", "--log-level", "WARNING")
    try:
        admin = client(proc.url, key)
        admin.create_collection(CollectionId="busy")
        portraits = [portrait_2018(m).read_bytes() for m in MEMBERS]
        probes = [portrait_2014(m).read_bytes() for m in MEMBERS]
        indexed, errors, searches = [], [], [0]
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS)

        def work(n):
            rek = client(proc.url, key)  # each thread its own client (and connections)
            start.wait()  # all clients at once
            for i in range(2 * ROUNDS):
                try:
                    if i % 2 == 0:
                        r = rek.index_faces(CollectionId="busy", Image={"Bytes": portraits[(n + i) % 8]},
                                            ExternalImageId=f"t{n}-{i}", MaxFaces=1, QualityFilter="NONE")
                        with lock:
                            indexed.extend(f["Face"]["FaceId"] for f in r["FaceRecords"])
                    else:
                        r = rek.search_faces_by_image(CollectionId="busy", Image={"Bytes": probes[(n + i) % 8]})
                        with lock:
                            searches[0] += 1
                except Exception:
                    with lock:
                        errors.append(traceback.format_exc())

        threads = [threading.Thread(target=work, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_LIMIT_S)
        assert not any(t.is_alive() for t in threads), "a client hung"
        print(f"{CLIENTS} clients: {len(indexed)} faces indexed, {searches[0]} searches, {len(errors)} errors")
        assert not errors, f"{len(errors)} errors, first:\n{errors[0]}"
        assert len(indexed) == CLIENTS * ROUNDS and searches[0] == CLIENTS * ROUNDS
        assert len(set(indexed)) == len(indexed)  # FaceIds are unique
        listed = admin.get_paginator("list_faces").paginate(
            CollectionId="busy", PaginationConfig={"PageSize": 100}).build_full_result()["Faces"]
        listed_ids = [f["FaceId"] for f in listed]
        assert set(indexed) <= set(listed_ids)  # no face lost
        assert len(listed_ids) == len(set(listed_ids)) == len(indexed)
        assert admin.describe_collection(CollectionId="busy")["FaceCount"] == len(indexed)
        # the other worker sees the same faces: a search from a fresh connection finds the newest face
        last = next(f for f in listed if f["FaceId"] == indexed[-1])
        for _ in range(4):
            r = client(proc.url, key).search_faces(CollectionId="busy", FaceId=last["FaceId"], MaxFaces=4096,
                                                   FaceMatchThreshold=0)
            assert len(r["FaceMatches"]) == len(indexed) - 1
    finally:
        assert proc.stop() == 0
    assert "Traceback" not in proc.logs()
    # accountability under load: both workers appended to one chain, every search is in it once
    from faceaudit.accountability import SearchLog

    log = SearchLog(tmp_path / "search-log.jsonl")
    assert log.verify().ok
    logged = [r.data["operation"] for r in log.records() if r.kind == "search"]
    assert logged.count("SearchFacesByImage") == searches[0] and logged.count("SearchFaces") == 4
