#!/usr/bin/env bash
# Delta engine benchmark: hasync rdiff against the real rdiff (librsync), in the same run, on the same files.
# Rows: signature; delta with ~20 small edits; delta against a completely different file (the worst case,
# a table lookup at every byte); patch. Prints MB/s for both, the ratio ours/rdiff (>1 = we are faster),
# and each program's peak resident memory. Each timing is the best (and the median) of BENCH_RUNS runs, the two
# programs taking turns, after one warm-up of each, so the page cache and a noisy neighbour hit both alike.
#   BENCH_MB=200 BENCH_RUNS=3 BENCH_DIR=/tmp tests/bench/delta-bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/bench/stats.sh

MB=${BENCH_MB:-200}
RUNS=${BENCH_RUNS:-3}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/hasync-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

command -v rdiff >/dev/null || { echo "delta-bench: rdiff is not installed (apt-get install rdiff)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "delta-bench: /usr/bin/time is not installed (apt-get install time)" >&2; exit 1; }

dotnet publish src/HaSync -c Release -o "$work/bin" >/dev/null || { echo "delta-bench: build failed" >&2; exit 1; }
ours="$work/bin/hasync"

bytes=$((MB * 1000 * 1000))
head -c "$bytes" /dev/urandom >"$work/basis"
cp "$work/basis" "$work/edited"
for i in $(seq 1 20); do   # ~20 small edits at scattered offsets
  printf 'edit-%02d' "$i" | dd of="$work/edited" bs=1 seek=$(( (i * 7919 * 104729) % (bytes - 16) )) conv=notrunc status=none
done
head -c "$bytes" /dev/urandom >"$work/different"

now() { date +%s%N; }
# timed CMD...: one run; its wall time in ns -> $t, its peak RSS in KB -> $r
timed() {
  local t0
  t0=$(now); /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>&1; t=$(( $(now) - t0 ))
  r=$(tail -n 1 "$work/rss")
}

printf '%-26s %12s %12s %8s %8s %12s %12s\n' "row ($MB MB, best of $RUNS)" "rdiff MB/s" "ours MB/s" "ratio" "ratio50" "rdiff RSS" "ours RSS"
# The two take turns, one run each, after a warm-up of each; best (and median: ratio50) of each tool's runs, largest RSS.
row() {
  local label=$1 rdiff_cmd=$2 ours_cmd=$3 out_rdiff=$4 out_ours=$5 i tr=() to=() rr=0 ro=0
  for cmd in "$rdiff_cmd" "$ours_cmd"; do
    bash -c "$cmd" >/dev/null 2>&1 || { echo "delta-bench: $label failed: $cmd" >&2; bash -c "$cmd" >&2 || true; exit 1; }
  done
  for i in $(seq 1 "$RUNS"); do
    timed bash -c "$rdiff_cmd"; tr+=("$t"); (( r > rr )) && rr=$r
    timed bash -c "$ours_cmd"; to+=("$t"); (( r > ro )) && ro=$r
  done
  cmp -s "$out_rdiff" "$out_ours" || { echo "delta-bench: $label: outputs differ ($out_rdiff vs $out_ours)" >&2; exit 1; }
  local br mr bo mo
  read -r br mr < <(best_and_median "${tr[@]}")
  read -r bo mo < <(best_and_median "${to[@]}")
  awk -v l="$label" -v mb="$MB" -v br="$br" -v mr="$mr" -v bo="$bo" -v mo="$mo" -v rr="$rr" -v ro="$ro" 'BEGIN {
    printf "%-26s %12.1f %12.1f %7.2fx %7.2fx %9.1f MB %9.1f MB\n", l, mb / (br / 1e9), mb / (bo / 1e9), br / bo, mr / mo, rr / 1024, ro / 1024 }'
}

cd "$work"
row "signature" "rdiff -f signature basis sig.rdiff" "$ours rdiff signature -f basis sig.ours" sig.rdiff sig.ours
row "delta, 20 small edits" "rdiff -f delta sig.rdiff edited d-edit.rdiff" "$ours rdiff delta -f sig.rdiff edited d-edit.ours" d-edit.rdiff d-edit.ours
row "delta, different file" "rdiff -f delta sig.rdiff different d-diff.rdiff" "$ours rdiff delta -f sig.rdiff different d-diff.ours" d-diff.rdiff d-diff.ours
row "patch (20 edits)" "rdiff -f patch basis d-edit.rdiff new.rdiff" "$ours rdiff patch -f basis d-edit.rdiff new.ours" new.rdiff new.ours
cmp -s new.ours edited || { echo "delta-bench: patched file differs from the edited file" >&2; exit 1; }
echo "identical outputs on every row; ratio = ours/rdiff throughput of the best runs, ratio50 of the medians; RSS = peak resident memory"
