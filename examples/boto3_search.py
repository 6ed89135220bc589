"""boto3 against `faceaudit serve`: index a face, then search with a case reference.

After the Quick start, in one terminal:

    .venv/bin/faceaudit keys create --role operator --out key.json
    .venv/bin/faceaudit serve --port 8080

and in another:

    .venv/bin/python examples/boto3_search.py key.json http://127.0.0.1:8080
"""

import json
import sys

import boto3

key = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "key.json"))
url = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8080"
rek = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


def add_case_reference(request, **kwargs):
    # Added before SigV4 signs the request, so the header is signed (the service refuses unsigned ones).
    # A collection under a law-enforcement policy refuses searches without a case reference.
    request.headers["x-faceaudit-case-reference"] = "CASE-2026-0142"
    request.headers["x-faceaudit-purpose"] = "example search"


rek.meta.events.register("before-sign.rekognition.SearchFacesByImage", add_case_reference)

rek.create_collection(CollectionId="example")
try:
    with open("tests/data/congress2014/B000944.jpg", "rb") as f:
        indexed = rek.index_faces(CollectionId="example", Image={"Bytes": f.read()}, ExternalImageId="B000944")
    print("indexed", [r["Face"]["FaceId"] for r in indexed["FaceRecords"]])
    with open("tests/data/congress2018/B000944.jpg", "rb") as f:
        found = rek.search_faces_by_image(CollectionId="example", Image={"Bytes": f.read()},
                                          FaceMatchThreshold=80, MaxFaces=5)
    for match in found["FaceMatches"]:
        print(f"candidate {match['Face']['ExternalImageId']}: Similarity {match['Similarity']:.1f} "
              "(a lead for a person to check, not an identification)")
finally:
    rek.delete_collection(CollectionId="example")
