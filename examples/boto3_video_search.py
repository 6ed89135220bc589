"""boto3, unmodified, searching stored video: images and the video are S3Objects in the buckets of
`faceaudit serve --buckets buckets` (see README.md).

    .venv/bin/python examples/boto3_video_search.py key.json http://127.0.0.1:8080
"""

import json
import sys
import time

import boto3

key = json.load(open(sys.argv[1]))
rek = boto3.client("rekognition", endpoint_url=sys.argv[2], region_name="us-east-1",
                   aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


def add_warrant(request, **kwargs):  # before signing: a video face search needs a warrant reference
    request.headers["x-faceaudit-warrant"] = "WA-SUP-CT-2026-0117"


rek.meta.events.register("before-sign.rekognition.StartFaceSearch", add_warrant)
rek.create_collection(CollectionId="video-example")
for member in ("B000944", "C000127"):
    rek.index_faces(CollectionId="video-example", ExternalImageId=member,
                    Image={"S3Object": {"Bucket": "photos", "Name": f"{member}.jpg"}})
job = rek.start_face_search(CollectionId="video-example", ClientRequestToken="doorbell-1",
                            Video={"S3Object": {"Bucket": "footage", "Name": "doorbell.mp4"}})["JobId"]
while (result := rek.get_face_search(JobId=job, SortBy="INDEX"))["JobStatus"] == "IN_PROGRESS":
    print(result.get("StatusMessage", ""))
    time.sleep(2)
print(result["JobStatus"], result.get("StatusMessage", ""))
seen = {}
for person in result.get("Persons", []):  # one entry per frame analysed; NextToken pages long videos
    best = person["FaceMatches"][0]
    first, last, name, sim = seen.get(person["Person"]["Index"], (person["Timestamp"], 0, "", 0))
    seen[person["Person"]["Index"]] = (first, person["Timestamp"], best["Face"]["ExternalImageId"],
                                       max(sim, best["Similarity"]))
for index, (first, last, name, sim) in sorted(seen.items()):
    # a lead to check, not an identification
    print(f"person {index}: {first / 1000:.1f}-{last / 1000:.1f} s, candidate {name}: Similarity {sim:.1f}")
rek.delete_collection(CollectionId="video-example")
