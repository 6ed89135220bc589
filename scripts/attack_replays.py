"""Replay the insider attacks of issue 10 against a fresh data dir and print each outcome.

    .venv/bin/python scripts/attack_replays.py            # this checkout
    PYTHONPATH=/path/to/older/src .venv/bin/python scripts/attack_replays.py   # an older one

Only the public HTTP API, the review page and the CLI are used, so the same script runs against
older code (where a feature is missing the outcome says so). Photos: tests/data (public domain).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = ("B000944", "C000127", "C000141", "C000174", "C001070", "F000062", "K000367", "M001170")


def photo(year: int, member: str) -> bytes:
    return (ROOT / f"tests/data/congress{year}/{member}.jpg").read_bytes()


def faceaudit(*argv: str, data: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("faceaudit")
    return subprocess.run([str(exe), *argv, "--data-dir", str(data)], capture_output=True, text=True, timeout=120)


def main() -> int:
    from _support import client, native

    from faceaudit.accountability import AccountabilityExtension, SearchLog
    from faceaudit.service import KeyStore, ServiceApp, ServiceConfig, start_in_thread, stop_thread_server

    old_umask = os.umask(0o022)
    work = Path(tempfile.mkdtemp(prefix="replay-"))
    data = work / "data"
    out = {}
    created = faceaudit("collection", "create", "gallery", data=data)
    mode = stat.S_IMODE(os.stat(data).st_mode) if data.exists() else None
    db = data / "collections.sqlite3"
    out["6 data dir made by `collection create`"] = (
        f"dir {mode:o}, database {stat.S_IMODE(os.stat(db).st_mode):o}" if db.exists() else created.stderr.strip())
    os.umask(old_umask)

    def key(role, person):
        store = KeyStore(data)
        try:
            k = store.create(role, person=person)
        except TypeError:  # no persons in this version
            k = store.create(role)
        return {"AccessKeyId": k.access_key_id, "SecretAccessKey": k.secret}

    admin, sam, olga, olga2, rita = (key("admin", "Ada"), key("operator", "Sam"), key("operator", "Olga"),
                                     key("operator", "Olga"), key("operator", "Rita"))
    app = ServiceApp(ServiceConfig(data, rate_limit=10_000), extension=AccountabilityExtension(data))
    srv, thread, url = start_in_thread(app)
    netloc = urllib.parse.urlsplit(url).netloc
    log = SearchLog(data / "search-log.jsonl")
    try:
        rek = client(url, sam)

        def cased(k, case):
            c = client(url, k)
            c.meta.events.register("before-sign.rekognition.*",
                                   lambda request, **_: request.headers.__setitem__("x-faceaudit-case-reference", case))
            return c

        gallery = [rek.index_faces(CollectionId="gallery", Image={"Bytes": photo(2014, m)}, ExternalImageId=m)
                   ["FaceRecords"][0]["Face"]["FaceId"] for m in MEMBERS]
        native(url, admin, "PutCollectionPolicy", {"CollectionId": "gallery", "MinFaceMatchThreshold": 99,
                                                    "RequireCaseReference": True})

        # 1. AssociateFaces ranks the gallery with no trace
        probe = rek.index_faces(CollectionId="gallery", Image={"Bytes": photo(2018, "C000141")},
                                ExternalImageId="probe")["FaceRecords"][0]["Face"]["FaceId"]
        rek.create_user(CollectionId="gallery", UserId="throwaway")
        before = sum(1 for _ in log.records())
        try:
            rek.associate_faces(CollectionId="gallery", UserId="throwaway", FaceIds=[probe], UserMatchThreshold=100)
            resp = rek.associate_faces(CollectionId="gallery", UserId="throwaway", FaceIds=gallery,
                                       UserMatchThreshold=100)
            best = max(resp["UnsuccessfulFaceAssociations"], key=lambda u: u.get("Confidence", 0))
            ranked = f"ranked {len(resp['UnsuccessfulFaceAssociations'])} faces (best {best['FaceId'][:8]})"
        except Exception as exc:
            ranked = f"refused ({type(exc).__name__}: {str(exc)[:70]})"
        new = [r for r in log.records()][before:]
        out["1 AssociateFaces without a case reference"] = (
            f"{ranked}; log records added: {[(r.kind, r.data.get('operation')) for r in new]}")

        # 4. the searcher confirms their own lead; one person with two keys counts twice
        rek.create_collection(CollectionId="lineup")
        for m in MEMBERS[:3]:
            rek.index_faces(CollectionId="lineup", Image={"Bytes": photo(2014, m)}, ExternalImageId=m)
        cased(sam, "case-4").search_faces_by_image(CollectionId="lineup", Image={"Bytes": photo(2018, "B000944")},
                                                   FaceMatchThreshold=90)
        _, doc = native(url, sam, "ListLeads", {"Status": "pending"})
        lead = doc["Leads"][0]["LeadId"] if doc.get("Leads") else None
        steps = []
        for who, k in (("searcher", sam), ("Olga", olga), ("Olga's 2nd key", olga2)):
            status, d = native(url, k, "DecideLead", {"LeadId": lead, "Decision": "confirm"})
            steps.append(f"{who}: {d['Lead']['Status'] if status == 200 else d['__type']}")
        out["4 confirmations: searcher, then one person's two keys"] = "; ".join(steps)

        # 5. crops of the whole collection from the review page, then a copy searched at 0
        def sign_in(k):
            _, page, cookies = request("GET", "/review/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page)
            form = {"access_key_id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}
            hdrs = {}
            if token:
                form["csrf"] = token.group(1)
                hdrs["Cookie"] = "faceaudit_login=" + cookies.get("faceaudit_login", "")
            _, _, cookies = request("POST", "/review/login", urllib.parse.urlencode(form).encode(), hdrs)
            return cookies.get("faceaudit_review")

        def request(method, path, body=b"", headers=None):
            conn = http.client.HTTPConnection(netloc, timeout=30)
            conn.request(method, path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                           **(headers or {})})
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            cookies = {}
            for value in resp.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";")[0]
            conn.close()
            return resp.status, text, cookies

        rita_cookie = sign_in(rita)
        got = sum(request("GET", f"/review/images/face/{f}", headers={"Cookie": f"faceaudit_review={rita_cookie}"})[0]
                  == 200 for f in gallery)
        status, _ = native(url, admin, "PutDefaultPolicy", {"MinFaceMatchThreshold": 99})
        rek.create_collection(CollectionId="copy")
        rek.index_faces(CollectionId="copy", Image={"Bytes": photo(2014, "C000141")})
        try:
            n = len(rek.search_faces_by_image(CollectionId="copy", Image={"Bytes": photo(2018, "C000141")},
                                              FaceMatchThreshold=0)["FaceMatches"])
            copy = f"copy searched at threshold 0: {n} candidate(s)"
        except Exception as exc:
            copy = f"copy searched at threshold 0: refused ({str(exc)[-60:]})"
        out["5 face crops downloadable by FaceId; copy into a new collection"] = (
            f"{got} of {len(gallery)} crops served; "
            f"default policy {'set' if status == 200 else 'not available'}; {copy}")

        # 7. login CSRF, session after sign-out, ?flash=
        body = urllib.parse.urlencode({"access_key_id": olga["AccessKeyId"], "secret": olga["SecretAccessKey"]})
        s, _, cookies = request("POST", "/review/login", body.encode(), {"Origin": "https://attacker.example"})
        forged = "signed in" if cookies.get("faceaudit_review") else f"refused ({s})"
        cookie = sign_in(olga)
        _, page, _ = request("GET", "/review", headers={"Cookie": f"faceaudit_review={cookie}"})
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        if 'action="/review/logout"' in page and token:
            request("POST", "/review/logout", f"csrf={token.group(1)}".encode(),
                    {"Cookie": f"faceaudit_review={cookie}"})
        else:
            request("GET", "/review/logout", headers={"Cookie": f"faceaudit_review={cookie}"})
        after, _, _ = request("GET", "/review", headers={"Cookie": f"faceaudit_review={cookie}"})
        _, page, _ = request("GET", "/review?flash=OFFICIAL%3A+arrest+authorised",
                             headers={"Cookie": f"faceaudit_review={sign_in(olga)}"})
        out["7 cross-site login / cookie after sign-out / ?flash="] = (
            f"forged login {forged}; old cookie after sign-out -> HTTP {after}; "
            f"flash text {'shown' if 'OFFICIAL' in page else 'not shown'}")

        # 8. SearchFaces by FaceId, then DeleteFaces: is what was searched kept?
        cased(sam, "case-8").search_faces(CollectionId="gallery", FaceId=gallery[1], FaceMatchThreshold=99)
        rec = [r for r in log.records() if r.kind == "search"][-1]
        digest = rec.data.get("probe_sha256")
        kept = bool(digest) and (data / "probes" / digest[:2] / digest).exists()
        out["8 SearchFaces by FaceId keeps the searched face"] = f"probe sha256 {'logged' if digest else 'none'}, " \
                                                                f"image {'kept' if kept else 'not kept'}"

        # 9. an audit's traffic (the rekognition engine's header) and the page on a phone
        aud = client(url, sam)
        aud.meta.events.register("before-sign.rekognition.*",
                                 lambda request, **_: request.headers.__setitem__("x-faceaudit-audit", "1"))
        native(url, admin, "PutDefaultPolicy", {})
        aud.create_collection(CollectionId="faceaudit-audit-x")
        aud.index_faces(CollectionId="faceaudit-audit-x", Image={"Bytes": photo(2014, "K000367")})
        _, before_doc = native(url, admin, "ListLeads", {})
        aud.search_faces_by_image(CollectionId="faceaudit-audit-x", Image={"Bytes": photo(2018, "K000367")})
        _, after_doc = native(url, admin, "ListLeads", {})
        viewport = "present" if 'name="viewport"' in page else "absent"
        out["9 audit traffic leads / viewport meta"] = (
            f"{len(after_doc['Leads']) - len(before_doc['Leads'])} new lead(s) from the audit's search; "
            f"viewport meta {viewport}")
    finally:
        stop_thread_server(srv, thread)

    # 3. the log: edit the last record and recompute its hash; bytes never hashed
    from faceaudit.accountability import record_hash

    original = log.path.read_bytes()
    lines = original.splitlines(keepends=True)
    rec = json.loads(lines[-1])
    rec["data"]["case_reference"] = "forged"
    rec["hash"] = record_hash(rec["seq"], rec["time"], rec["kind"], rec["data"], rec["prev"])
    forged = (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode()
    log.path.write_bytes(b"".join(lines[:-1]) + forged)
    res = [f"last record edited+rehashed: {'OK' if log.verify().ok else 'FAILED'}"]
    for what, edit in (("extra field", lambda line: line[:-2] + b',"zz":1}\n'),
                       ("seq as text", lambda line: re.sub(rb'"seq":(\d+)', rb'"seq":"\1"', line))):
        log.path.write_bytes(b"".join(lines[:-2]) + edit(lines[-2]) + lines[-1])
        res.append(f"{what}: {'OK' if log.verify().ok else 'FAILED'}")
    out["3 verify after forgeries (OK means the forgery passed)"] = "; ".join(res)
    log.path.write_bytes(original)

    # 2. launder through crash repair: remove the final newlines, make one more search
    acked = [r.seq for r in log.records()]
    log.path.write_bytes(b"".join(lines[:-2]) + lines[-2].rstrip(b"\n") + lines[-1].rstrip(b"\n"))
    srv, thread, url = start_in_thread(ServiceApp(ServiceConfig(data, rate_limit=10_000),
                                                  extension=AccountabilityExtension(data)))
    try:
        client(url, sam).compare_faces(SourceImage={"Bytes": photo(2018, "C000141")},
                                       TargetImage={"Bytes": photo(2014, "C000141")})
    finally:
        stop_thread_server(srv, thread)
    seqs = [r.seq for r in log.records()]
    lost = [s for s in acked if s not in seqs]
    reused = sorted(set(acked[-2:]) & set(seqs))
    result = log.verify()
    quarantine_dir = data / "search-log.jsonl.quarantine"
    quarantine = list(quarantine_dir.glob("*")) if quarantine_dir.exists() else []
    out["2 newlines removed, then a search"] = (
        f"acknowledged records no longer in the log file: {lost}; seqs reused: {reused}; "
        f"quarantined files: {len(quarantine)}; "
        f"verify {'OK' if result.ok else 'FAILED'}"
        + (f", repairs reported: {[(r.seq, r.acknowledged_missing) for r in getattr(result, 'repairs', ())]}"
           if getattr(result, "repairs", None) else ""))

    for name in sorted(out):
        print(f"{name}: {out[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
