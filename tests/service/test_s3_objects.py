"""boto3, unmodified, against `faceaudit serve` reading S3Object images and videos from both
object stores: the folder store (--buckets) and an S3-compatible server (moto, on loopback)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import MEMBERS, make_video, portrait_2014, portrait_2018
from tests.service.conftest import REGION, ServeProcess, client, create_key

WARRANT = "WA-SUP-CT-2026-0117"


def _error(fn):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        fn()
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "doorbell.mp4")


@pytest.fixture(scope="module")
def moto_s3():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _folder_store(root: Path, clip: Path) -> None:
    photos = root / "photos" / "congress"
    photos.mkdir(parents=True)
    for m in MEMBERS:
        shutil.copy(portrait_2014(m), photos / f"{m}.jpg")
    shutil.copy(portrait_2018("C000127"), root / "photos" / "probe.jpg")
    (root / "footage").mkdir()
    shutil.copy(clip, root / "footage" / "doorbell.mp4")
    (root / "secret").mkdir()
    shutil.copy(portrait_2018("B000944"), root / "secret" / "x.jpg")
    (root / "outside.jpg").write_bytes(portrait_2018("B000944").read_bytes())


def _s3_store(url: str, clip: Path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    for bucket in ("photos", "footage", "secret"):
        s3.create_bucket(Bucket=bucket)
    for m in MEMBERS:
        s3.put_object(Bucket="photos", Key=f"congress/{m}.jpg", Body=portrait_2014(m).read_bytes())
    s3.put_object(Bucket="photos", Key="probe.jpg", Body=portrait_2018("C000127").read_bytes())
    s3.put_object(Bucket="footage", Key="doorbell.mp4", Body=clip.read_bytes())
    s3.put_object(Bucket="secret", Key="x.jpg", Body=portrait_2018("B000944").read_bytes())


@pytest.fixture(scope="module", params=["folder", "s3"])
def served(request, tmp_path_factory, clip, monkeypatch_module):
    data = tmp_path_factory.mktemp(f"data-{request.param}")
    if request.param == "folder":
        root = tmp_path_factory.mktemp("buckets")
        _folder_store(root, clip)
        args = ["--buckets", str(root)]
    else:
        url = request.getfixturevalue("moto_s3")
        _s3_store(url, clip)
        args = ["--s3-endpoint-url", url]
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            monkeypatch_module.setenv(name, value)
    operator, admin, auditor = create_key(data), create_key(data, "admin"), create_key(data, "auditor")
    proc = ServeProcess(data, "--rate-limit", "0", "--bucket-access", "operator=photos,footage", *args)
    yield {"kind": request.param, "url": proc.url, "operator": operator, "admin": admin,
           "auditor": auditor, "data": data}
    proc.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _s3(bucket: str, name: str) -> dict:
    return {"S3Object": {"Bucket": bucket, "Name": name}}


def _warranted(rek, warrant: str = WARRANT):
    def add(request, **kwargs):
        request.headers["x-faceaudit-warrant"] = warrant
    rek.meta.events.register_first("before-sign.rekognition.StartFaceSearch", add)
    return rek


def test_index_search_compare_detect_from_s3objects(served):
    rek = client(served["url"], served["operator"])
    rek.create_collection(CollectionId="gallery")
    for m in MEMBERS:
        r = rek.index_faces(CollectionId="gallery", Image=_s3("photos", f"congress/{m}.jpg"),
                            ExternalImageId=m, MaxFaces=1)
        assert len(r["FaceRecords"]) == 1
    r = rek.search_faces_by_image(CollectionId="gallery", Image=_s3("photos", "probe.jpg"))
    assert r["FaceMatches"][0]["Face"]["ExternalImageId"] == "C000127"
    r = rek.compare_faces(SourceImage=_s3("photos", "probe.jpg"), TargetImage=_s3("photos", "congress/C000127.jpg"))
    assert r["FaceMatches"] and r["FaceMatches"][0]["Similarity"] >= 80
    assert len(rek.detect_faces(Image=_s3("photos", "probe.jpg"))["FaceDetails"]) == 1
    assert "UserMatches" in rek.search_users_by_image(CollectionId="gallery", Image=_s3("photos", "probe.jpg"))


def test_s3object_errors(served):
    rek = client(served["url"], served["operator"])
    code, _ = _error(lambda: rek.detect_faces(Image=_s3("photos", "nope.jpg")))
    assert code == "InvalidS3ObjectException"
    code, _ = _error(lambda: rek.detect_faces(Image=_s3("nobucket", "a.jpg")))
    assert code in ("InvalidS3ObjectException", "AccessDeniedException")
    # the operator role reads photos and footage only; admin keys read every bucket
    code, message = _error(lambda: rek.detect_faces(Image=_s3("secret", "x.jpg")))
    assert code == "AccessDeniedException" and "secret" in message
    assert client(served["url"], served["admin"]).detect_faces(Image=_s3("secret", "x.jpg"))["FaceDetails"]
    code, _ = _error(lambda: client(served["url"], served["auditor"]).detect_faces(Image=_s3("photos", "probe.jpg")))
    assert code == "AccessDeniedException"
    if served["kind"] == "folder":
        for name in ("../outside.jpg", "congress/../../outside.jpg", "/etc/passwd", "congress//C000127.jpg"):
            code, _ = _error(lambda name=name: rek.detect_faces(Image=_s3("photos", name)))
            assert code == "InvalidS3ObjectException"
        code, message = _error(lambda: rek.detect_faces(
            Image={"S3Object": {"Bucket": "photos", "Name": "probe.jpg", "Version": "1"}}))
        assert code == "InvalidS3ObjectException" and "version" in message.lower()


def _wait_job(get, job_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = get(JobId=job_id)
        if r["JobStatus"] != "IN_PROGRESS":
            return r
        assert time.monotonic() < deadline, f"job still running: {r.get('StatusMessage')}"
        time.sleep(0.5)


def test_start_face_search_get_face_search(served):
    rek = client(served["url"], served["operator"])
    if "video" not in [c for c in rek.list_collections()["CollectionIds"]]:
        rek.create_collection(CollectionId="video")
        for m in ("C000127", "B000944", "K000367"):
            rek.index_faces(CollectionId="video", Image=_s3("photos", f"congress/{m}.jpg"), ExternalImageId=m)
    # no warrant: refused (the collection's video-search policy requires one by default)
    code, message = _error(lambda: rek.start_face_search(Video=_s3("footage", "doorbell.mp4"), CollectionId="video"))
    assert code == "AccessDeniedException" and "warrant" in message
    rek = _warranted(client(served["url"], served["operator"]))
    assert _error(lambda: rek.start_face_search(
        Video=_s3("footage", "doorbell.mp4"), CollectionId="video",
        NotificationChannel={"SNSTopicArn": "arn:aws:sns:us-east-1:1:t", "RoleArn": "arn:aws:iam::1:role/r"},
    ))[0] == "InvalidParameterException"
    job = rek.start_face_search(Video=_s3("footage", "doorbell.mp4"), CollectionId="video",
                                ClientRequestToken="door-1", JobTag="case-17")["JobId"]
    again = rek.start_face_search(Video=_s3("footage", "doorbell.mp4"), CollectionId="video",
                                  ClientRequestToken="door-1", JobTag="case-17")["JobId"]
    assert again == job
    assert _error(lambda: rek.start_face_search(Video=_s3("footage", "doorbell.mp4"), CollectionId="video",
                                                ClientRequestToken="door-1", FaceMatchThreshold=90)
                  )[0] == "IdempotentParameterMismatchException"
    r = _wait_job(rek.get_face_search, job)
    assert r["JobStatus"] == "SUCCEEDED", r.get("StatusMessage")
    assert r["JobTag"] == "case-17" and r["Video"]["S3Object"]["Name"] == "doorbell.mp4"
    meta = r["VideoMetadata"]
    assert (meta["FrameWidth"], meta["FrameHeight"], meta["DurationMillis"]) == (960, 540, 8000)
    persons = r["Persons"]
    by_index: dict = {}
    for p in persons:
        assert p["FaceMatches"][0]["Similarity"] >= 80
        by_index.setdefault(p["Person"]["Index"], []).append(
            (p["Timestamp"], p["FaceMatches"][0]["Face"]["ExternalImageId"]))
    # two people matched: C000127 (0-4 s, back at 6.5-8 s, same Index) and B000944 (2-6 s);
    # the passer-by (4.5-6 s) is not in the gallery and not in Persons
    assert len(by_index) == 2
    names = {idx: {n for _, n in seen} for idx, seen in by_index.items()}
    assert sorted(len(v) for v in names.values()) == [1, 1]
    a = next(i for i, v in names.items() if v == {"C000127"})
    b = next(i for i, v in names.items() if v == {"B000944"})
    times_a = sorted(t for t, _ in by_index[a])
    times_b = sorted(t for t, _ in by_index[b])
    assert times_a[0] <= 500 and 3000 <= max(t for t in times_a if t < 5000) < 4000
    assert any(6500 <= t < 8000 for t in times_a) and not any(4000 <= t < 6500 for t in times_a)
    assert 2000 <= times_b[0] <= 2500 and 5000 <= times_b[-1] < 6000
    assert [p["Timestamp"] for p in persons] == sorted(p["Timestamp"] for p in persons)
    # SortBy INDEX and paging
    first = rek.get_face_search(JobId=job, SortBy="INDEX", MaxResults=3)
    assert len(first["Persons"]) == 3 and "NextToken" in first
    pages = first["Persons"]
    token = first["NextToken"]
    while token:
        page = rek.get_face_search(JobId=job, SortBy="INDEX", MaxResults=3, NextToken=token)
        pages += page["Persons"]
        token = page.get("NextToken")
    assert len(pages) == len(persons)
    keys = [(p["Person"]["Index"], p["Timestamp"]) for p in pages]
    assert keys == sorted(keys)
    assert _error(lambda: rek.get_face_search(JobId="0" * 64))[0] == "ResourceNotFoundException"


def test_start_face_detection(served):
    rek = client(served["url"], served["operator"])
    job = rek.start_face_detection(Video=_s3("footage", "doorbell.mp4"))["JobId"]
    r = _wait_job(rek.get_face_detection, job)
    assert r["JobStatus"] == "SUCCEEDED", r.get("StatusMessage")
    per_time: dict = {}
    for f in r["Faces"]:
        per_time[f["Timestamp"]] = per_time.get(f["Timestamp"], 0) + 1
    # one face at 0 s, two at 2.5 s and at 5 s, none at 6 s (everyone has left)
    assert (per_time.get(0), per_time.get(2500), per_time.get(5000), per_time.get(6000)) == (1, 2, 2, None)
    code, _ = _error(lambda: rek.start_face_detection(Video=_s3("footage", "missing.mp4")))
    assert code == "InvalidS3ObjectException"


def test_readme_video_example(tmp_path, clip):
    """examples/boto3_video_search.py, run as README.md says, against buckets laid out as it says."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "buckets" / "photos").mkdir(parents=True)
    (tmp_path / "buckets" / "footage").mkdir()
    for m in MEMBERS:
        shutil.copy(portrait_2014(m), tmp_path / "buckets" / "photos" / f"{m}.jpg")
    shutil.copy(clip, tmp_path / "buckets" / "footage" / "doorbell.mp4")
    data = tmp_path / "data"
    key = create_key(data)
    (tmp_path / "key.json").write_text(json.dumps(key))
    proc = ServeProcess(data, "--buckets", str(tmp_path / "buckets"), "--bucket-access", "operator=photos,footage")
    try:
        run = subprocess.run([sys.executable, str(root / "examples" / "boto3_video_search.py"),
                              str(tmp_path / "key.json"), proc.url], cwd=root, capture_output=True, text=True,
                             timeout=600)
    finally:
        proc.stop()
    assert run.returncode == 0, run.stderr
    assert "SUCCEEDED" in run.stdout
    assert "person 0: 0.0-7.5 s, candidate C000127" in run.stdout
    assert "person 1: 2.0-5.5 s, candidate B000944" in run.stdout
    readme = (root / "README.md").read_text()
    assert "examples/boto3_video_search.py" in readme and "scripts/make_sample_video.py" in readme
