#!/usr/bin/env bash
# The ACLU-style public reproduction on the shared data, one model at a time:
#   probes  = the 535 members of the 115th Congress (2018 portraits)
#   gallery = their 2014 portraits (399 mates) + 2,437 former members + 114 NIST MEDS mugshots
# Each model is searched clean and under four probe conditions (doorbell-day-1.5m, doorbell-day-3m,
# doorbell-night-3m, cctv-4m: the probes degraded as such a camera takes them; the gallery stays clean).
# Usage: scripts/run_public_audit.sh [--update-docs] [MODEL...]   (default: sface dlib)
# Env: DATA (default ../shared/data), OUT (default out/public-audit), DOCS (setting it implies
# --update-docs; default docs/public-audit)
# Writes OUT/<model>/{results.json,candidates.csv,report.html,wall_time.txt} and nothing else.
# With --update-docs it also copies results.json (compact), candidates.csv (every candidate down to the
# lowest threshold any figure uses: each count can be recounted; its image paths are relative to its
# folder, so DOCS and OUT sit at the same depth by default) and a report without thumbnails (the 2018
# set holds Wikipedia-sourced photos and MEDS is NIST-licensed) to DOCS/<model>/, then writes
# DOCS/comparison.html and DOCS/tables.md (scripts/summarize_public_audit.py) once both models are
# there. Embeddings are cached in OUT/embeddings.sqlite (the same cache scripts/calibrate.py reads by
# default), per model and probe condition: a rerun resumes.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"  # relative paths: results.json records the command as typed, without this machine's folders
UPDATE_DOCS=0
[ -n "${DOCS:-}" ] && UPDATE_DOCS=1
MODELS=()
for arg in "$@"; do
  case "$arg" in
    --update-docs) UPDATE_DOCS=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "run_public_audit.sh: unknown option $arg (only --update-docs)" >&2; exit 2 ;;
    *) MODELS+=("$arg") ;;
  esac
done
[ ${#MODELS[@]} -eq 0 ] && MODELS=(sface dlib)
DATA="${DATA:-../shared/data}"
OUT="${OUT:-out/public-audit}"
DOCS="${DOCS:-docs/public-audit}"
CONDITIONS=(doorbell-day-1.5m doorbell-day-3m doorbell-night-3m cctv-4m)
CONDITION_ARGS=()
for c in "${CONDITIONS[@]}"; do CONDITION_ARGS+=(--probe-condition "$c"); done
FACEAUDIT="${FACEAUDIT:-.venv/bin/faceaudit}"
M="$DATA/manifests"
# every people-of-color label in the race column, the members on two lists included
PEOPLE_OF_COLOR="race=black,hispanic,asian_pacific,native_american,black;asian_pacific,hispanic;asian_pacific,black;hispanic"

for model in "${MODELS[@]}"; do
  start=$(date +%s)
  "$FACEAUDIT" audit --model "$model" \
    --probes "$M/congress_2018.csv" \
    --gallery "$M/congress_2014.csv" "$M/former_members.csv" "$M/meds.csv" \
    --bands age=40,50,60,70 --cache "$OUT/embeddings.sqlite" --out "$OUT/$model" \
    --thumbnail-exclude dataset=meds "${CONDITION_ARGS[@]}" \
    --relabel race:B=black --relabel race:W=white_non_hispanic \
    --share "$PEOPLE_OF_COLOR" --share-label "people of color" --match-count 28 \
    --note "Gallery: 2,950 photos (399 2014 portraits of the members searched, 2,437 official portraits of former members, 114 NIST MEDS mugshots of 50 people) where the ACLU searched 25,000 arrest photos: compare per-comparison rates, not raw counts." \
    --note "Race labels come from published lists (House Historian, Senate, Congressional Black Caucus and others; ../shared/data/congress115/ethnicity.csv), never from the photos. white_non_hispanic is assigned BY EXCLUSION: a member on none of the lists. People of color here: black, hispanic, asian_pacific, native_american and the members on two lists; one member (Garamendi) is unlabelled because sources disagree." \
    --note "Former members, most of this gallery, skew toward older white men: 174 of their 2,437 portraits (7%) are of people of color, against about 21% of the members searched; their sex is known for only 275. MEDS photos carry NIST's own race labels: B is mapped to black and W, NIST's \"White\", to white_non_hispanic as an approximation (NIST's W does not exclude Hispanic people, while white_non_hispanic in Congress is assigned by exclusion)." \
    --note "Probes are official studio portraits; the 2014 mates are grayscale, 200x250. Real investigative probes (surveillance stills) are harder: the probe conditions (doorbell-day-1.5m, doorbell-day-3m, doorbell-night-3m, cctv-4m) degrade the 2018 portraits synthetically as such cameras would take them (fewer pixels between the eyes, blur, low light, noise, compression); they show the direction and rough size of the effect, not rates on real footage."
  end=$(date +%s)
  echo "$model: $((end - start)) s wall time (clean and ${#CONDITIONS[@]} probe conditions; embedding time per condition in results.json)" | tee "$OUT/$model/wall_time.txt"
  if [ "$UPDATE_DOCS" -eq 0 ]; then  # the audit wrote OUT's report (MEDS without thumbnails)
    echo "$model: $OUT/$model/report.html (docs/ untouched; --update-docs to publish)"
    continue
  fi
  mkdir -p "$DOCS/$model"
  .venv/bin/python -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2], "w"), separators=(",", ":"))' \
    "$OUT/$model/results.json" "$DOCS/$model/results.json"
  cp "$OUT/$model/candidates.csv" "$DOCS/$model/candidates.csv"
  "$FACEAUDIT" report "$OUT/$model" --no-thumbnails >/dev/null
  cp "$OUT/$model/report.html" "$DOCS/$model/report.html"
  "$FACEAUDIT" report "$OUT/$model" --thumbnail-exclude dataset=meds >/dev/null   # the full one stays in OUT
  echo "$model: $DOCS/$model/results.json, $DOCS/$model/report.html (no thumbnails); full report $OUT/$model/report.html"
done
if [ "$UPDATE_DOCS" -eq 1 ] && [ -f "$DOCS/sface/results.json" ] && [ -f "$DOCS/dlib/results.json" ]; then
  "$FACEAUDIT" report "$DOCS/sface" "$DOCS/dlib" --out "$DOCS"   # engines side by side: $DOCS/comparison.html
  .venv/bin/python scripts/summarize_public_audit.py "$DOCS/sface" "$DOCS/dlib" >"$DOCS/tables.md"
fi
