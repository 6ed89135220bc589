"""The two engines on the committed photos: local (exact), and Rekognition-compatible endpoints
(a stub boto3 client over faceaudit.collections, and `faceaudit serve` in a thread through boto3)."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit._errors import RemoteServiceError  # not yet re-exported from faceaudit
from faceaudit.audit import (
    AuditConfig,
    LocalEngine,
    RekognitionEngine,
    external_image_id,
    run_audit,
)
from tests.audit.conftest import THRESHOLDS


def _pascal_to_snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class CollectionsClient:
    """The five boto3 ``rekognition`` methods the audit uses, over FaceCollections (no HTTP).

    Errors come back as botocore ClientErrors, as from a real endpoint.
    """

    def __init__(self, fc, fail_on=None):
        self.fc = fc
        self.calls = []
        self.fail_on = fail_on

    def _call(self, op, **kwargs):
        from botocore.exceptions import ClientError

        from faceaudit import FaceAuditError

        self.calls.append(op)
        if op == self.fail_on:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, op)
        args = {}
        for k, v in kwargs.items():
            if k == "Image":
                v = v["Bytes"]
            args[_pascal_to_snake(k)] = v
        try:
            return getattr(self.fc, op)(**args).to_rekognition()
        except FaceAuditError as exc:
            raise ClientError({"Error": {"Code": exc.aws_code, "Message": exc.message}}, op) from None

    def create_collection(self, **kw):
        return self._call("create_collection", **kw)

    def describe_collection(self, **kw):
        return self._call("describe_collection", **kw)

    def index_faces(self, **kw):
        return self._call("index_faces", **kw)

    def search_faces_by_image(self, **kw):
        return self._call("search_faces_by_image", **kw)

    def delete_collection(self, **kw):
        return self._call("delete_collection", **kw)


def test_external_image_id():
    assert external_image_id("congress:B000944") == "congress:B000944"
    assert external_image_id("a b/c+d") == "a_b_c_d"
    assert len(external_image_id("x" * 300)) == 255


def test_local_engine_records_failures_and_resumes(small_run, small_manifests):
    run, out, _engine = small_run
    fails = {(f.side, f.subject): f.reason for f in run.result.failures}
    assert fails == {("probe", "nobody:1"): "no face detected", ("gallery", "nobody:2"): "no face detected"}
    c = run.result.counts
    assert (c.probes, c.probes_failed, c.gallery_images, c.gallery_failed) == (9, 1, 11, 1)
    assert (c.searches_mated, c.searches_non_mated) == (6, 3)
    # the faceless probe is a non-mated search without candidates: in FPIR's trials, never an error
    o = run.result.summary(50.0).overall
    assert o["FPIR"].trials == 3
    # a second audit with the same cache embeds nothing
    again = LocalEngine("sface", cache=out / "embeddings.sqlite")
    run2 = run_audit([small_manifests["probes"]], [small_manifests["gallery"]], again,
                     AuditConfig(thresholds=THRESHOLDS, bootstrap=200, seed=7), progress=False)
    assert again.embedded == 0 and again.from_cache == 20
    assert np.array_equal(run2.outcomes.imp_ge, run.outcomes.imp_ge)
    assert run2.result.summaries == run.result.summaries


def _compare_with_local(run_local, run_remote):
    lo, re_ = run_local.outcomes, run_remote.outcomes
    assert np.array_equal(lo.probe_ok, re_.probe_ok) and np.array_equal(lo.gallery_ok, re_.gallery_ok)
    for k, t in enumerate(re_.thresholds):
        kl = lo.threshold_index(t)
        assert np.array_equal(re_.imp_ge[:, k], lo.imp_ge[:, kl]), t
        assert np.array_equal(re_.gen_ge[:, k], lo.gen_ge[:, kl]), t
    for t in THRESHOLDS:
        a, b = run_local.result.summary(t).overall, run_remote.result.summary(t).overall
        for m in ("FPIR", "FNIR", "ACLU_COUNT", "MATED_FALSE", "FMR", "FNMR"):
            assert (a[m].errors, a[m].trials) == (b[m].errors, b[m].trials), (t, m)
    def sims(out):
        pairs = zip(out.cand_probe.tolist(), out.cand_gallery.tolist(), strict=True)
        return dict(zip(pairs, out.cand_similarity.tolist(), strict=True))

    sims_local, sims_remote = sims(lo), sims(re_)
    assert sims_local.keys() == sims_remote.keys()
    assert all(abs(sims_local[k] - sims_remote[k]) < 1e-3 for k in sims_local)


def test_rekognition_engine_over_the_collections_backend(small_run, small_manifests, tmp_path):
    from faceaudit.collections import INDEX_TAG, FaceCollections, SearchConfig

    # a server that would put every collection on HNSW: the audit's own collection stays flat (exact)
    fc = FaceCollections(tmp_path / "data", search_config=SearchConfig(hnsw_above=0))
    tags = []
    create = fc.create_collection
    fc.create_collection = lambda **kw: tags.append(kw.get("tags")) or create(**kw)
    client = CollectionsClient(fc)
    engine = RekognitionEngine(client, quality_filter="NONE")
    run = run_audit([small_manifests["probes"]], [small_manifests["gallery"]], engine,
                    AuditConfig(thresholds=THRESHOLDS, bootstrap=200, seed=7), progress=False)
    _compare_with_local(small_run[0], run)
    info = run.result.engine
    assert info.kind == "rekognition" and not info.exact_scores
    # the endpoint reports the API's numeric FaceModelVersion of the same model
    from faceaudit.engine import rekognition_model_version

    assert info.face_model_version == rekognition_model_version(small_run[0].result.engine.face_model_version)
    assert info.search["FaceMatchThreshold"] == 50.0 and info.search["MaxFaces"] == 4096
    assert client.calls[0] == "create_collection" and client.calls[-1] == "delete_collection"
    assert tags == [{INDEX_TAG: "flat"}]
    assert set(client.calls) == {"create_collection", "index_faces", "describe_collection",
                                 "search_faces_by_image", "delete_collection"}
    # no DET curves or score histograms without exact scores, and a note saying so
    assert run.result.curves.det == {} and run.result.fmr_targets == ()
    assert any("need exact scores" in n for n in run.result.notes)
    # the collection is gone
    assert client.fc.list_collections().collection_ids == ()


def test_rekognition_engine_deletes_its_collection_on_error(small_manifests, tmp_path):
    from faceaudit.collections import FaceCollections

    client = CollectionsClient(FaceCollections(tmp_path / "data"), fail_on="describe_collection")
    with pytest.raises(RemoteServiceError) as err:
        run_audit([small_manifests["probes"]], [small_manifests["gallery"]], RekognitionEngine(client),
                  AuditConfig(thresholds=THRESHOLDS, bootstrap=0), progress=False)
    assert err.value.aws_code == "ThrottlingException"
    assert client.calls[-1] == "delete_collection"
    assert client.fc.list_collections().collection_ids == ()


def test_rekognition_engine_meets_a_refusing_policy_before_indexing(small_manifests, tmp_path):
    """Issue 23: a server whose policy refuses the first search refused it after 320 uploads."""
    from botocore.exceptions import ClientError

    from faceaudit.collections import FaceCollections

    class Refusing(CollectionsClient):
        def search_faces_by_image(self, **kw):
            self.calls.append("search_faces_by_image")
            raise ClientError({"Error": {"Code": "AccessDeniedException",
                                         "Message": "the threshold 50 is below the policy's 99"}}, "x")

    client = Refusing(FaceCollections(tmp_path / "data"))
    with pytest.raises(RemoteServiceError, match="policy") as err:
        run_audit([small_manifests["probes"]], [small_manifests["gallery"]], RekognitionEngine(client),
                  AuditConfig(thresholds=THRESHOLDS, bootstrap=0), progress=False)
    assert err.value.aws_code == "AccessDeniedException"
    assert "index_faces" not in client.calls and client.calls[-1] == "delete_collection"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from faceaudit.accountability import AccountabilityExtension
    from faceaudit.service import KeyStore, ServiceApp, ServiceConfig, start_in_thread, stop_thread_server

    data = tmp_path_factory.mktemp("service")
    key = KeyStore(data).create("auditor")  # issue 22 M3: the audit header is honoured only from auditor keys
    app = ServiceApp(ServiceConfig(data, rate_limit=10_000, strict_responses=True),
                     extension=AccountabilityExtension(data))
    srv, thread, url = start_in_thread(app)
    yield url, key, data
    stop_thread_server(srv, thread)


def test_rekognition_engine_against_faceaudit_serve(service, small_run, small_manifests):
    import boto3
    from botocore.config import Config

    from faceaudit.accountability import Accountability

    url, key, data = service
    client = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret,
                          config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    engine = RekognitionEngine(client, quality_filter="NONE")
    run = run_audit([small_manifests["probes"]], [small_manifests["gallery"]], engine,
                    AuditConfig(thresholds=THRESHOLDS, bootstrap=200, seed=7), progress=False)
    _compare_with_local(small_run[0], run)
    assert run.result.engine.endpoint == url
    from faceaudit.collections import FaceCollections

    assert FaceCollections(data).list_collections().collection_ids == ()
    # the audit's searches are logged as audit traffic and make no review leads (finding 9)
    acc = Accountability(data)
    searches = [r.data for r in acc.log.records() if r.kind == "search"]
    assert searches and all(d["audit"] for d in searches) and any(d["candidates"] for d in searches)
    assert acc.leads() == []


def test_cli_audit_with_the_rekognition_engine(service, small_manifests, tmp_path, monkeypatch, capsys):
    import json

    from faceaudit.cli import main

    url, key, _ = service
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key.secret)
    out = tmp_path / "rek"
    code = main(["audit", "--engine", "rekognition", "--endpoint-url", url, "--region", "us-east-1",
                 "--probes", str(small_manifests["probes"]), "--gallery", str(small_manifests["gallery"]),
                 "--thresholds", "60,80", "--bootstrap", "0", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["engine"]["kind"] == "rekognition" and res["engine"]["endpoint"] == url
    assert res["engine"]["face_model_version"] == "1.0"  # sface's FaceModelVersion over the API
    assert res["fmr_targets"] == [] and res["curves"]["det"] == {}
    html = (out / "report.html").read_text()
    assert "need every pair's exact score" in html
