"""Issue 22 M1 and L1: stored-video jobs belong to their caller. Results are shown only to the key
(or person) that started the job and to admins and auditors, every read is a logged disclosure,
ClientRequestToken is scoped to the caller, and one key cannot fill every job slot."""

from __future__ import annotations

import shutil

import pytest

from faceaudit.accountability import SearchLog
from tests.accountability.serving import serving
from tests.conftest import make_video
from tests.service.conftest import client, create_key

VIDEO = {"S3Object": {"Bucket": "footage", "Name": "doorbell.mp4"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from faceaudit.collections import FolderStore

    root = tmp_path_factory.mktemp("buckets")
    (root / "footage").mkdir()
    shutil.copy(make_video(tmp_path_factory.mktemp("clip") / "doorbell.mp4"), root / "footage" / "doorbell.mp4")
    d = tmp_path_factory.mktemp("jobs")
    with serving(d, objects=FolderStore(root)) as (url, keys):
        yield d, url, keys


def _records(d, kind):
    return [r.data for r in SearchLog(d / "search-log.jsonl").records() if r.kind == kind]


def test_results_only_for_the_caller_admins_and_auditors_and_every_read_logged(server):
    d, url, keys = server
    owner, other = client(url, keys["operator"]), client(url, keys["operator2"])
    job = owner.start_face_detection(Video=VIDEO, ClientRequestToken="door-1")["JobId"]
    with pytest.raises(other.exceptions.ResourceNotFoundException):
        other.get_face_detection(JobId=job)
    with pytest.raises(other.exceptions.ResourceNotFoundException):  # the other kind's read too
        other.get_face_search(JobId=job)
    refused = [r for r in _records(d, "refused") if r.get("job_id") == job]
    assert [r["access_key_id"] for r in refused] == [keys["operator2"]["AccessKeyId"]] * 2
    for name in ("operator", "admin", "auditor"):
        assert client(url, keys[name]).get_face_detection(JobId=job)["JobId"] == job
    reads = [r for r in _records(d, "disclosure") if r["job_id"] == job]
    assert [r["access_key_id"] for r in reads] == [keys[n]["AccessKeyId"] for n in ("operator", "admin", "auditor")]
    assert all(r["operation"] == "GetFaceDetection" and r["job_started_by"] == keys["operator"]["AccessKeyId"]
               for r in reads)
    # the same person with another key reads their own job
    same_person = create_key(d, "operator", "OSCAR")  # the owner's person, in other letter case
    assert client(url, same_person).get_face_detection(JobId=job)["JobId"] == job
    # ClientRequestToken is the caller's own: another key's same token starts another job
    assert owner.start_face_detection(Video=VIDEO, ClientRequestToken="door-1")["JobId"] == job
    assert other.start_face_detection(Video=VIDEO, ClientRequestToken="door-1")["JobId"] != job


def test_one_caller_cannot_fill_every_job_slot(tmp_path, database_url):
    from faceaudit import LimitExceededError
    from faceaudit.collections._jobs import MAX_PENDING_JOBS, MAX_PENDING_JOBS_PER_CALLER, JobStore

    store = JobStore(tmp_path, database_url=database_url)  # no pool: submitted jobs stay queued
    greedy = {"access_key_id": "AKGREEDY"}
    for i in range(MAX_PENDING_JOBS_PER_CALLER):
        store.submit("face_detection", {"n": i}, None, None, greedy)
    with pytest.raises(LimitExceededError, match="per key"):
        store.submit("face_detection", {"n": "more"}, None, None, greedy)
    assert MAX_PENDING_JOBS_PER_CALLER < MAX_PENDING_JOBS
    store.submit("face_detection", {"n": 0}, None, None, {"access_key_id": "AKOTHER"})  # others still can


def test_jobs_of_an_older_data_dir_gain_their_caller(tmp_path):
    import json
    import sqlite3

    conn = sqlite3.connect(tmp_path / "video-jobs.sqlite3")
    conn.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, "
                 "request TEXT NOT NULL, request_sha256 TEXT NOT NULL, client_token TEXT, job_tag TEXT, "
                 "requester TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL, started_at REAL, "
                 "finished_at REAL, owner TEXT, heartbeat REAL, attempts INTEGER NOT NULL DEFAULT 0, "
                 "progress REAL NOT NULL DEFAULT 0, status_message TEXT, metadata TEXT)")
    conn.execute("CREATE UNIQUE INDEX jobs_token ON jobs(kind, client_token) WHERE client_token IS NOT NULL")
    conn.execute("INSERT INTO jobs (job_id, kind, status, request, request_sha256, client_token, requester, "
                 "created_at) VALUES ('j1', 'face_search', 'SUCCEEDED', '{}', 'x', 'tok', ?, 0)",
                 (json.dumps({"access_key_id": "AKOLD"}),))
    conn.commit()
    conn.close()
    from faceaudit.collections._jobs import JobStore

    store = JobStore(tmp_path)
    job, created = store.submit("face_search", {}, "tok", None, {"access_key_id": "AKNEW"})
    assert created and job != "j1"
    assert store.requester_of("j1") == {"access_key_id": "AKOLD"}
