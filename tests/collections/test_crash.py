"""Crash safety: `faceaudit index` killed with SIGKILL mid-run, several times, then run to completion."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from faceaudit.collections import FaceCollections
from tests.collections.conftest import variants
from tests.collections.test_batch import write_manifest
from tests.conftest import WAIT_LIMIT_S, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir() or os.name != "posix", reason="needs POSIX signals")


def cli(*args):
    return [sys.executable, "-m", "faceaudit.cli._main", *args]


def count(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    finally:
        con.close()


def children(pid: int):
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_mid_run_then_resume_indexes_each_image_once(tmp_path, sface_engine):
    paths = variants(tmp_path / "img")
    manifest = write_manifest(tmp_path / "m.csv", [(f"img/{p.name}", p.stem, "x", "") for p in paths])
    data = tmp_path / "data"
    fc = FaceCollections(data, engines={"sface": sface_engine})
    fc.create_collection(collection_id="crash")
    db = data / "collections.sqlite3"
    cmd = cli("index", "crash", str(manifest), "--data-dir", str(data), "--workers", "2", "--no-progress", "--json")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    seen_images = set()
    kills = 0
    orphans_checked = 0
    for target in (None, 3, 12, 24):  # None: kill during start-up, before anything is committed
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        workers = []

        def ready(proc=proc, target=target):  # bound now (B023); called only in this round
            # start-up: kill once the worker processes exist; later rounds: once `target` images are committed
            nonlocal workers
            workers = children(proc.pid) or workers
            return proc.poll() is not None or (workers and (target is None or count(db) >= target))

        wait_until(ready, f"the indexer to reach {target or 'its workers'}", interval=0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=WAIT_LIMIT_S)
        # the workers notice that their parent is gone and exit
        wait_until(lambda workers=workers: not any(alive(w) for w in workers), "the orphaned workers to exit",
                   interval=0.1)
        orphans_checked += len(workers)
        con = sqlite3.connect(str(db))
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        now = {r[0] for r in con.execute("SELECT image_id FROM images")}
        con.close()
        assert seen_images <= now  # nothing committed is lost
        seen_images = now
    assert kills >= 2 and 0 < len(seen_images) < 40 and orphans_checked >= 2
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=WAIT_LIMIT_S)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["Failed"] == 0 and report["IndexedImages"] + report["AlreadyIndexed"] == 40
    assert report["AlreadyIndexed"] == len(seen_images)
    con = sqlite3.connect(str(db))
    n_images, n_distinct = con.execute("SELECT COUNT(*), COUNT(DISTINCT sha256) FROM images").fetchone()
    n_faces = con.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    con.close()
    assert n_images == n_distinct == n_faces == 40
    assert fc.describe_collection(collection_id="crash").face_count == 40
    assert fc.verify_index("crash")
    r = fc.search_faces_by_image(collection_id="crash", image=paths[5].read_bytes())
    assert r.face_matches[0].face.external_image_id == paths[5].stem and r.face_matches[0].similarity > 99
