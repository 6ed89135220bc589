"""Several processes on one data dir: two writers and two readers at once, then deletions."""

import json
import os
import subprocess
import sys
import textwrap

from faceaudit.collections import FaceCollections
from tests.collections.conftest import variants
from tests.conftest import WAIT_LIMIT_S, wait_until

READER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from faceaudit.collections import FaceCollections
    data, probe, ready, stop, progress = sys.argv[1:6]
    fc = FaceCollections(data)
    image = Path(probe).read_bytes()
    def search():
        r = fc.search_faces_by_image(collection_id="m", image=image, face_match_threshold=0, max_faces=4096)
        return [m.face.face_id for m in r.face_matches]
    search()  # loads the engine
    Path(ready).touch()
    counts, problems = [], []
    while not Path(stop).exists():
        if not fc.verify_index("m"):
            problems.append("index differs from SQLite")
        ids = search()
        if len(set(ids)) != len(ids):
            problems.append("duplicate candidates")
        counts.append(len(ids))
        tmp = Path(progress + ".tmp")
        tmp.write_text(json.dumps([len(counts), len(ids)]))
        tmp.replace(progress)  # the test waits on these numbers, never on a clock
        time.sleep(0.01)
    final = search()
    print(json.dumps({"counts": counts, "problems": problems, "final": sorted(final)}))
""")

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from faceaudit.collections import FaceCollections
    data, prefix, gate, *paths = sys.argv[1:]
    fc = FaceCollections(data)
    for i, p in enumerate(paths):
        r = fc.index_faces(collection_id="m", image=Path(p).read_bytes(), external_image_id=f"{prefix}{i}")
        assert len(r.face_records) == 1
        while i == 0 and not Path(gate).exists():  # after the first face: until the readers have seen it
            time.sleep(0.01)
""")


def test_two_writers_two_readers(tmp_path, sface_engine):
    paths = variants(tmp_path / "img")[::2]  # 20 people
    data = tmp_path / "data"
    fc = FaceCollections(data, engines={"sface": sface_engine})
    fc.create_collection(collection_id="m")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    (tmp_path / "reader.py").write_text(READER)
    (tmp_path / "writer.py").write_text(WRITER)
    stop, gate = tmp_path / "stop", tmp_path / "gate"
    readers, progress = [], [tmp_path / f"progress{i}" for i in range(2)]
    for i in range(2):
        ready = tmp_path / f"ready{i}"
        readers.append((ready, subprocess.Popen(
            [sys.executable, str(tmp_path / "reader.py"), str(data), str(paths[i]), str(ready), str(stop),
             str(progress[i])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)))

    def started():
        assert all(p.poll() is None for _, p in readers), "a reader died"
        return all(r.exists() for r, _ in readers)

    def seen(i):
        try:
            return json.loads(progress[i].read_text())
        except (OSError, ValueError):
            return [0, 0]

    wait_until(started, "the readers to load the engine")
    writers = [
        subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), str(data), prefix, str(gate),
                          *map(str, part)], stderr=subprocess.PIPE, text=True, env=env)
        for prefix, part in (("a", paths[0::2]), ("b", paths[1::2]))
    ]
    # the writers pause after their first face until both readers have searched a part-filled collection
    wait_until(lambda: all(0 < seen(i)[1] < 20 for i in range(2)), "the readers to see the first faces")
    gate.touch()
    for w in writers:
        assert w.wait(timeout=WAIT_LIMIT_S) == 0, w.stderr.read()
    # every reader has seen the full collection before the deletions start (under load a reader may
    # otherwise go from a part-filled collection straight to the one after the deletions)
    wait_until(lambda: all(seen(i)[1] == 20 for i in range(2)), "the readers to see all 20 faces")
    # deletions while the readers still search
    faces = fc.list_faces(collection_id="m").faces
    assert len(faces) == 20
    gone = [f.face_id for f in faces[:5]]
    assert len(fc.delete_faces(collection_id="m", face_ids=gone).deleted_faces) == 5
    # each reader searches at least twice more (once wholly after the deletions) before it stops
    after = [seen(i)[0] for i in range(2)]
    wait_until(lambda: all(seen(i)[0] >= after[i] + 2 for i in range(2)), "the readers to search again")
    stop.touch()
    expected = sorted(f.face_id for f in faces[5:])
    seen_between = set()
    for _, proc in readers:
        out, err = proc.communicate(timeout=WAIT_LIMIT_S)
        assert proc.returncode == 0, err
        result = json.loads(out)
        assert result["problems"] == []
        assert result["final"] == expected
        assert len(result["counts"]) >= 3
        # while only adds happened, each reader saw the collection grow, never shrink or skip back
        growing = result["counts"][: result["counts"].index(20)] if 20 in result["counts"] else result["counts"]
        assert growing == sorted(growing)
        seen_between |= {c for c in result["counts"] if 0 < c < 20}
    assert seen_between  # the readers did search while the writers wrote
    assert fc.describe_collection(collection_id="m").face_count == 15
    assert fc.verify_index("m")


def test_threads_share_one_backend(tmp_path, sface_engine):
    """One FaceCollections used by several threads (a threaded server): searches during writes."""
    import threading

    import numpy as np

    from tests.collections.conftest import synthetic_image

    fc = FaceCollections(tmp_path, engines={"sface": sface_engine})
    fc.create_collection(collection_id="t")
    rng = np.random.default_rng(5)
    first = fc._store_prepared("t", synthetic_image(50, sface_engine.model_version, rng))
    probe = first.face_records[0].face.face_id
    errors, counts = [], []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                r = fc.search_faces(collection_id="t", face_id=probe, face_match_threshold=0, max_faces=4096)
                counts.append(len(r.face_matches))
                assert fc.verify_index("t")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: len(counts) >= 3 or errors, "the readers to search")  # they search during the writes
    for _ in range(20):
        r = fc._store_prepared("t", synthetic_image(5, sface_engine.model_version, rng))
        fc.delete_faces(collection_id="t", face_ids=[r.face_records[0].face.face_id])
    done.set()
    for t in threads:
        t.join()
    assert errors == [] and counts
    assert fc.search_faces(collection_id="t", face_id=probe, face_match_threshold=0,
                           max_faces=4096).face_matches.__len__() == 49 + 20 * 4
