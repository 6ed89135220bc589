#!/usr/bin/env bash
# The transcript of docs/accountability-session.md: bash scripts/accountability_session.sh (from the repository root)
set -u
export FACEAUDIT_DATA_DIR=$(mktemp -d)/data
export PATH=$PWD/.venv/bin:$PATH
ANCH=$(mktemp -d)
run() { echo "\$ $*"; eval "$@" 2>&1; rc=$?; [ $rc -ne 0 ] && echo "exit code $rc"; return 0; }
run faceaudit collection create bookings
run faceaudit index bookings tests/data/congress2014
run faceaudit policy set bookings --law-enforcement
run faceaudit search bookings tests/data/congress2018/B000944.jpg '           # default threshold 80, no case'
run faceaudit search bookings tests/data/congress2018/B000944.jpg --threshold 99 --case-reference 2026-042 --purpose "'robbery investigation'"
run faceaudit policy set bookings --min-threshold 90 --require-case-reference
run faceaudit search bookings tests/data/congress2018/B000944.jpg --threshold 90 --case-reference 2026-042
run faceaudit review list
LEAD=$(faceaudit review list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["Leads"][0]["LeadId"])')
echo "# two reviewers: each a named person with their own key (the searcher may not review)"
A=$(faceaudit keys create --role reviewer --person "Alice Ng" --json); B=$(faceaudit keys create --role reviewer --person "Bob Reyes" --json)
AK=$(echo "$A" | python3 -c 'import json,sys; print(json.load(sys.stdin)["AccessKeyId"])'); AS=$(echo "$A" | python3 -c 'import json,sys; print(json.load(sys.stdin)["SecretAccessKey"])')
BK=$(echo "$B" | python3 -c 'import json,sys; print(json.load(sys.stdin)["AccessKeyId"])'); BS=$(echo "$B" | python3 -c 'import json,sys; print(json.load(sys.stdin)["SecretAccessKey"])')
echo "\$ faceaudit keys create --role reviewer --person 'Alice Ng'   # and 'Bob Reyes'"
echo "\$ FACEAUDIT_SECRET_ACCESS_KEY=… faceaudit review confirm $LEAD --access-key-id $AK --note 'tattoo matches booking record'"
FACEAUDIT_SECRET_ACCESS_KEY=$AS faceaudit review confirm $LEAD --access-key-id $AK --note 'tattoo matches booking record' 2>&1
echo "\$ FACEAUDIT_SECRET_ACCESS_KEY=… faceaudit review confirm $LEAD --access-key-id $AK"
FACEAUDIT_SECRET_ACCESS_KEY=$AS faceaudit review confirm $LEAD --access-key-id $AK 2>&1 || echo "exit code $?"
echo "\$ FACEAUDIT_SECRET_ACCESS_KEY=… faceaudit review confirm $LEAD --access-key-id $BK"
FACEAUDIT_SECRET_ACCESS_KEY=$BS faceaudit review confirm $LEAD --access-key-id $BK 2>&1
run faceaudit log verify
echo "\$ faceaudit log anchor --out anchors/2026-12.json      # hand this file to the oversight body"
faceaudit log anchor --out $ANCH/2026-12.json 2>&1 | sed "s#$ANCH#anchors#"
echo "\$ faceaudit log verify --anchors anchors"
faceaudit log verify --anchors $ANCH 2>&1
run "faceaudit log export --format csv | cut -d, -f1-12"
echo "# someone edits record 2 so that the refused threshold-80 search reads as a 99 search:"
echo "\$ sed -i '2s/\"threshold\":80.0/\"threshold\":99.0/' \$FACEAUDIT_DATA_DIR/search-log.jsonl"
sed -i '2s/"threshold":80.0/"threshold":99.0/' $FACEAUDIT_DATA_DIR/search-log.jsonl
run faceaudit log verify
echo "# ... and recomputes every hash and the head file: the log alone verifies again, the anchor does not:"
python3 - "$FACEAUDIT_DATA_DIR" <<'PY'
import json, sys
sys.path.insert(0, "src")
from faceaudit.accountability import record_hash
p = sys.argv[1] + "/search-log.jsonl"
prev, out = "0" * 64, []
for line in open(p, "rb").read().splitlines():
    r = json.loads(line); r["prev"] = prev
    r["hash"] = prev = record_hash(r["seq"], r["time"], r["kind"], r["data"], prev)
    out.append(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
open(p, "w").write("\n".join(out) + "\n")
open(p + ".head", "w").write(json.dumps({"seq": r["seq"], "hash": prev}))
PY
run faceaudit log verify
echo "\$ faceaudit log verify --anchors anchors"
faceaudit log verify --anchors $ANCH 2>&1 | sed "s#$ANCH#anchors#" ; echo "exit code ${PIPESTATUS[0]}"
