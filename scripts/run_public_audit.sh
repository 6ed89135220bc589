#!/usr/bin/env bash
# The ACLU-style public reproduction on the shared data, one model at a time:
#   probes  = the 535 members of the 115th Congress (2018 portraits)
#   gallery = their 2014 portraits (399 mates) + 2,437 former members + 114 NIST MEDS mugshots
# Usage: scripts/run_public_audit.sh [MODEL...]   (default: sface dlib)
# Env: DATA (default ../shared/data), OUT (default out/public-audit), DOCS (default docs/public-audit)
# Writes OUT/<model>/{results.json,candidates.csv,report.html} and copies results.json (compact) and
# a report without thumbnails (the 2018 set holds Wikipedia-sourced photos and MEDS is NIST-licensed)
# to DOCS/<model>/. Embeddings are cached in OUT/embeddings.sqlite: a rerun resumes.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${DATA:-$ROOT/../shared/data}"
OUT="${OUT:-$ROOT/out/public-audit}"
DOCS="${DOCS:-$ROOT/docs/public-audit}"
FACEAUDIT="${FACEAUDIT:-$ROOT/.venv/bin/faceaudit}"
M="$DATA/manifests"
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(sface dlib)

for model in "${MODELS[@]}"; do
  start=$(date +%s)
  "$FACEAUDIT" audit --model "$model" \
    --probes "$M/congress_2018.csv" \
    --gallery "$M/congress_2014.csv" "$M/former_members.csv" "$M/meds.csv" \
    --bands age=40,50,60,70 --cache "$OUT/embeddings.sqlite" --out "$OUT/$model" \
    --thumbnail-exclude dataset=meds \
    --note "Gallery: 2,950 photos (399 2014 portraits of the members searched, 2,437 official portraits of former members, 114 NIST MEDS mugshots of 50 people) where the ACLU searched 25,000 arrest photos: compare per-comparison rates or the projection, not raw counts." \
    --note "Former members, most of this gallery, skew toward older white men; their sex is known for only 275 of 2,437." \
    --note "There are no race labels for members of Congress in this data. The ACLU reported that about 40% of its false matches were people of color, who were about 20% of Congress; this audit cannot test that. Only the MEDS gallery photos carry race labels (61 photos of Black and 53 of White people)." \
    --note "Probes are official studio portraits; the 2014 mates are grayscale, 200x250. Real investigative probes (surveillance stills) are harder."
  end=$(date +%s)
  echo "$model: $((end - start)) s wall time" | tee "$OUT/$model/wall_time.txt"
  mkdir -p "$DOCS/$model"
  "$ROOT/.venv/bin/python" -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2], "w"), separators=(",", ":"))' \
    "$OUT/$model/results.json" "$DOCS/$model/results.json"
  "$FACEAUDIT" report "$OUT/$model" --no-thumbnails >/dev/null
  cp "$OUT/$model/report.html" "$DOCS/$model/report.html"
  "$FACEAUDIT" report "$OUT/$model" --thumbnail-exclude dataset=meds >/dev/null
  echo "$model: $DOCS/$model/results.json, $DOCS/$model/report.html (no thumbnails); full report $OUT/$model/report.html"
done
