#!/usr/bin/env bash
# Smoke-test the frozen app (built by installer/build.sh) the way a clinician's machine runs it:
# a clean environment (env -i: no venv, no PYTHONPATH), HOME an empty temporary folder, run from
# a folder outside the checkout.
#   bash installer/smoke.sh [APP_FOLDER]      (default dist/spineviewer)
# Prints one line per check and exits 1 when any check fails.
set -uo pipefail
cd "$(dirname "$0")/.."
APP=$(cd "${1:-dist/spineviewer}" 2>/dev/null && pwd) || { echo "smoke: no app folder ${1:-dist/spineviewer}; run installer/build.sh" >&2; exit 1; }
EXE="$APP/spineviewer"
[ -x "$EXE" ] || { echo "smoke: no executable $EXE" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/spineviewer-smoke-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/home" "$WORK/cwd"
passed=0
failed=0

run() {  # run the app with a clean environment; extra VAR=value words before --
  local envs=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  (cd "$WORK/cwd" && env -i HOME="$WORK/home" PATH=/usr/bin:/bin LANG=C.UTF-8 "${envs[@]}" \
     "$EXE" "$@")
}

seconds_since() {  # seconds (one decimal) since a `date +%s%N` stamp
  local ms=$(( ($(date +%s%N) - $1) / 1000000 ))
  printf '%d.%d' $((ms / 1000)) $(((ms % 1000) / 100))
}

check() {  # check NAME CONDITION-COMMAND...
  local name=$1; shift
  if "$@"; then echo "PASS  $name"; passed=$((passed + 1))
  else echo "FAIL  $name"; failed=$((failed + 1)); fi
}

# 1. --version: app version and the bundled model card's name and version
card=$(ls "$APP"/_internal/models/*.json 2>/dev/null | head -n1)
model_name=$(sed -n 's/^ *"name": *"\([^"]*\)".*/\1/p' "$card" | head -n1)
model_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$card" | head -n1)
version_out=$(run -- --version 2>&1)
echo "      $version_out"
check "--version prints the app and model versions" \
  grep -Eq "^spineviewer [0-9][^ ]* \(model $model_name $model_version\)$" <<<"$version_out"

# 2. --help lists the commands
help_out=$(run -- --help 2>&1)
check "--help lists gui, analyze, demo, synth, evaluate, send" bash -c \
  'for c in gui analyze demo synth evaluate send; do grep -q "$c" <<<"$1" || exit 1; done' _ "$help_out"

# 3. no command means gui (an option only gui knows, with --help)
check "no command defaults to gui" \
  grep -q "^usage: spineviewer gui" <<<"$(run -- --light --help 2>&1)"

# 4-8. demo: PDF, CSV (L1-L5), JSON, DICOM outputs
t0=$(date +%s%N)
run -- demo --out "$WORK/demo" >"$WORK/demo.out" 2>"$WORK/demo.err"
demo_rc=$?
demo_s=$(seconds_since "$t0")
echo "      demo took ${demo_s} s (exit status $demo_rc)"
[ "$demo_rc" = 0 ] || tail -n 5 "$WORK/demo.err"
check "demo exits 0" test "$demo_rc" = 0
check "demo writes a PDF report" bash -c '[ "$(head -c 4 "$1" 2>/dev/null)" = "%PDF" ]' _ \
  "$WORK/demo/report.pdf"
check "demo CSV has rows for L1, L2, L3, L4 and L5" bash -c \
  'for l in L1 L2 L3 L4 L5; do grep -q ",$l," "$1" || exit 1; done' _ "$WORK/demo/results.csv"
check "demo writes the JSON result" grep -q '"vertebrae"' "$WORK/demo/results.json"
check "demo writes DICOM outputs (SEG, SR, encapsulated PDF)" bash -c \
  'n=0; for f in "$1"/*; do [ "$(dd if="$f" bs=1 skip=128 count=4 2>/dev/null)" = DICM ] \
   && n=$((n + 1)); done; [ "$n" -ge 3 ]' _ "$WORK/demo/dicom_outputs"

# 9. the viewer starts offscreen, analyses the demo study and exits 0
t0=$(date +%s%N)
run QT_QPA_PLATFORM=offscreen -- gui --demo --exit-after-analysis \
  >"$WORK/gui.out" 2>"$WORK/gui.err"
gui_rc=$?
gui_s=$(seconds_since "$t0")
echo "      gui --demo --exit-after-analysis took ${gui_s} s (exit status $gui_rc)"
[ "$gui_rc" = 0 ] || tail -n 5 "$WORK/gui.err"
check "gui analyses the demo study offscreen and exits 0" bash -c \
  '[ "$1" = 0 ] && for l in L1 L2 L3 L4 L5; do grep -q "^$l " "$2" || exit 1; done' _ \
  "$gui_rc" "$WORK/gui.out"

# 10. batch, local mode: worker processes are spawned from the frozen executable
run -- synth "$WORK/archive" --n 2 --seed 3 --no-distractors >/dev/null 2>"$WORK/synth.err"
t0=$(date +%s%N)
run -- batch "$WORK/archive" --out "$WORK/batch" --workers 2 --threads 1 \
  >"$WORK/batch.out" 2>"$WORK/batch.err"
batch_rc=$?
echo "      batch of 2 studies with 2 worker processes took $(seconds_since "$t0") s (exit status $batch_rc)"
[ "$batch_rc" = 0 ] || tail -n 5 "$WORK/batch.err"
check "batch analyses 2 studies in 2 worker processes" bash -c \
  '[ "$1" = 0 ] && grep -q "2 analysed" "$2" && [ "$(grep -c ",L3," "$3")" = 2 ]' _ \
  "$batch_rc" "$WORK/batch.out" "$WORK/batch/results.csv"

# 11. bad input: exit status 2 and one line, no traceback
run -- analyze "$WORK/no-such-study" -q >"$WORK/bad.out" 2>"$WORK/bad.err"
bad_rc=$?
check "a missing study exits 2 with one line, no traceback" bash -c \
  '[ "$1" = 2 ] && [ "$(grep -c . "$2")" = 1 ] && ! grep -q Traceback "$2"' _ \
  "$bad_rc" "$WORK/bad.err"

echo "smoke: $passed passed, $failed failed ($APP)"
[ "$failed" = 0 ]
