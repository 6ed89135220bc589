"""Where an audit runs changes nothing: worker processes, this process and Ray give equal counts."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from faceaudit.audit import AuditConfig, EmbeddingCache, LocalEngine, LocalExecutor, run_audit
from tests.audit.conftest import THRESHOLDS

HAVE_RAY = importlib.util.find_spec("ray") is not None


def assert_same_outcomes(a, b) -> None:
    """Every count, best score, histogram and candidate equal (exact scores: no tolerance)."""
    oa, ob = a.outcomes, b.outcomes
    for name in ("probe_ok", "gallery_ok", "thresholds", "imp_ge", "imp_n", "gen_ge", "gen_n", "cand_probe",
                 "cand_gallery", "cand_similarity"):
        assert np.array_equal(getattr(oa, name), getattr(ob, name)), name
    for name in ("best_mate", "best_nonmate"):
        assert np.array_equal(getattr(oa, name), getattr(ob, name), equal_nan=True), name
    for field in ("imp_ge_gallery", "imp_n_gallery", "hist_genuine", "hist_impostor"):
        da, db = getattr(oa, field), getattr(ob, field)
        assert da.keys() == db.keys() and all(np.array_equal(da[k], db[k]) for k in da), field
    assert oa.fmr_target_thresholds == ob.fmr_target_thresholds
    assert a.result.summaries == b.result.summaries


def _audit(manifests, engine):
    return run_audit([manifests["probes"]], [manifests["gallery"]], engine,
                     AuditConfig(thresholds=THRESHOLDS, bootstrap=200, seed=7, block_size=3), progress=False)


def test_one_process_and_a_pool_of_two_agree(small_run, small_manifests, sface_engine):
    run, _, engine = small_run
    assert engine.executor.workers >= 1
    serial = LocalEngine("sface", face_engine=sface_engine, workers=1)
    assert_same_outcomes(_audit(small_manifests, serial), run)
    assert serial.embedded == 20 and serial.from_cache == 0


class StopAfter(LocalExecutor):
    """A local executor that is interrupted (Ctrl-C) after ``n`` images."""

    def __init__(self, n: int) -> None:
        super().__init__(workers=2)
        self.n = n

    def map_images(self, model, task, jobs):
        for k, item in enumerate(super().map_images(model, task, jobs)):
            if k == self.n:
                raise KeyboardInterrupt
            yield item


def test_an_interrupted_audit_keeps_its_embeddings_and_resumes(small_run, small_manifests, tmp_path):
    cache = tmp_path / "embeddings.sqlite"
    with pytest.raises(KeyboardInterrupt):
        _audit(small_manifests, LocalEngine("sface", cache=cache, executor=StopAfter(7)))
    with EmbeddingCache(cache) as c:
        assert sum(c.count()) == 7
    again = LocalEngine("sface", cache=cache, workers=2)
    assert_same_outcomes(_audit(small_manifests, again), small_run[0])
    assert (again.embedded, again.from_cache) == (13, 7)


def test_cli_workers(small_manifests, tmp_path, capsys):
    from faceaudit.cli import main

    args = ["audit", "--probes", str(small_manifests["probes"]), "--gallery", str(small_manifests["gallery"]),
            "--thresholds", "60,80", "--bootstrap", "0", "--quiet"]
    assert main([*args, "--workers", "0", "--out", str(tmp_path / "bad")]) != 0
    assert "workers" in capsys.readouterr().err
    assert main([*args, "--ray-address", "auto", "--out", str(tmp_path / "bad")]) != 0
    assert "--executor ray" in capsys.readouterr().err
    assert main([*args, "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    res = json.loads((tmp_path / "two" / "results.json").read_text())
    assert res["counts"]["probes"] == 9 and res["timings"]["images_embedded"] == 20


@pytest.fixture(scope="module")
def ray_cluster():
    if not HAVE_RAY:
        pytest.skip("Ray is not installed (pip install 'faceaudit[ray]'; `make test` installs it)")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_counts_equal_the_local_executor_and_resume(ray_cluster, small_run, small_manifests, tmp_path):
    from faceaudit.audit import RayExecutor

    cache = tmp_path / "embeddings.sqlite"
    with EmbeddingCache(cache) as c, EmbeddingCache(small_run[1] / "embeddings.sqlite") as done:
        # a resumed audit: 5 images already embedded (copied from the local run's cache)
        version = small_run[2].spec.version
        rows = done._db.execute("SELECT sha256 FROM embeddings ORDER BY sha256 LIMIT 5").fetchall()
        for (sha,) in rows:
            c.put(sha, version, done.get(sha, version))
    executor = RayExecutor()
    assert executor.workers == 2
    engine = LocalEngine("sface", cache=cache, executor=executor)
    assert_same_outcomes(_audit(small_manifests, engine), small_run[0])
    assert (engine.embedded, engine.from_cache) == (15, 5)
    assert ray_cluster.is_initialized()  # an executor leaves a Ray it did not start running


def test_cli_executor_ray(ray_cluster, small_run, small_manifests, tmp_path):
    from faceaudit.cli import main

    out = tmp_path / "ray"
    assert main(["audit", "--probes", str(small_manifests["probes"]), "--gallery", str(small_manifests["gallery"]),
                 "--thresholds", ",".join(f"{t:g}" for t in THRESHOLDS), "--bootstrap", "0", "--quiet",
                 "--executor", "ray", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    local = json.loads(small_run[0].result.to_json())
    assert res["counts"] == local["counts"]
    assert [s["overall"]["ACLU_COUNT"]["errors"] for s in res["summaries"]] == \
        [s["overall"]["ACLU_COUNT"]["errors"] for s in local["summaries"]]
