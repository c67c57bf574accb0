#!/usr/bin/env bash
# Resync benchmark: hasync resync against rsync -a --delete -e ssh, in the same run, through the same sshd
# (started here on a free loopback port with throw-away keys). Rows: cold copy of a copy of /etc; the same
# again with nothing changed; a 100 MB file with 1 % of it changed in scattered places. For each: wall time
# (best and median of BENCH_RUNS, and every run's) and protocol bytes on the wire (before ssh's encryption; rsync's --stats, our summary).
# hasync's ack means "on the passive's disk" (a syncfs per batch) and rsync does not sync, so the time of
# `rsync --fsync` (every written file fsynced) is printed as well, for the durable comparison.
#   BENCH_RUNS=3 BENCH_BIG_MB=100 tests/bench/resync-bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${BENCH_RUNS:-3}
BIG_MB=${BENCH_BIG_MB:-100}
source tests/bench/sshd.sh
source tests/bench/stats.sh
bench_workdir resync-bench rsync ssh ssh-keygen /usr/sbin/sshd
bench_fresh_fs $(( BIG_MB * 8 / 1000 + 2 )) 100000

dotnet publish src/HaSync -c Release -o "$work/bin" >/dev/null || { echo "resync-bench: build failed" >&2; exit 1; }
hasync="$work/bin/hasync"

start_sshd

# --- data: a copy of /etc, later a big file ---
mkdir -p "$work/src" "$work/ours" "$work/theirs"
cp -a /etc "$work/src/etc"
entries=$(find "$work/src/etc" | wc -l)
cat >"$work/hasync.yaml" <<CFG
source_root: $work/src
paths: [/etc, /big]
state_dir: $work/state
role: always
targets:
$(hasync_target_yaml "$hasync" "$work/ours")
CFG

now() { date +%s%N; }
# Each timed run starts with a sync, so that no tool pays for the writeback of another's unsynced files.
# ours / theirs: one run each; set $t (ns) and $wire (bytes)
ours() {
  local t0 out; sync; t0=$(now)
  out=$("$hasync" resync --json -c "$work/hasync.yaml" 2>&1) || { echo "resync-bench: hasync resync failed: $out" >&2; exit 1; }
  t=$(( $(now) - t0 ))
  wire=$(sed -n 's/.*"wire_bytes":\([0-9]*\).*/\1/p' <<<"$out" | tail -n 1)
}
theirs() {
  local t0 out; sync; t0=$(now)
  out=$(rsync -a --delete --stats "$@" -e "$ssh_cmd" "$work/src/" "$user@127.0.0.1:$work/theirs/" 2>&1) || { echo "resync-bench: rsync failed: $out" >&2; exit 1; }
  t=$(( $(now) - t0 ))
  wire=$(( $(sed -n 's/^Total bytes sent: \([0-9,]*\).*/\1/p' <<<"$out" | tr -d ,) + $(sed -n 's/^Total bytes received: \([0-9,]*\).*/\1/p' <<<"$out" | tr -d ,) ))
}
# row LABEL SETUP: SETUP runs before each timed pair (resetting the state the row starts from)
# Best of the runs (the tool undisturbed) and the median (what a run usually takes) are both printed, and every run's
# time below the table: on a VM that hands free memory back to its host, a tool that writes into fresh memory runs at
# either of two speeds, by whether the pages it is given were handed back yet, and a best of five then says how often
# one got lucky more than which is faster.
runs_of=()
in_seconds() { awk '{ for (i = 1; i <= NF; i++) printf " %.3f", $i / 1e9 }' <<<"$*"; }
row() {
  local label=$1 setup=$2 wo wt i
  local -a to=() tt=() tf=()
  timed_ours() { ours; wo=$wire; to+=("$t"); }
  timed_theirs() { theirs; wt=$wire; tt+=("$t"); }
  for i in $(seq 1 "$RUNS"); do
    $setup; theirs --fsync; tf+=("$t")
    # The two take turns at going first: the second finds in memory what the first just freed (on a VM that hands free
    # memory back to its host, fresh memory costs a 100 MB write more than the write itself), and the first does not.
    $setup
    if (( i % 2 )); then timed_ours; timed_theirs; else timed_theirs; timed_ours; fi
  done
  diff -r --no-dereference "$work/ours" "$work/theirs" >/dev/null || { echo "resync-bench: $label: the two copies differ" >&2; exit 1; }
  local bt mt bf mf bo mo
  read -r bt mt < <(best_and_median "${tt[@]}")
  read -r bf mf < <(best_and_median "${tf[@]}")
  read -r bo mo < <(best_and_median "${to[@]}")
  awk -v l="$label" -v bt="$bt" -v mt="$mt" -v bf="$bf" -v mf="$mf" -v bo="$bo" -v mo="$mo" -v wo="$wo" -v wt="$wt" 'BEGIN {
    printf "%-34s %9.3f s %9.3f s %9.3f s %7.2fx %7.2fx %7.2fx %7.2fx %13d %13d %7.2fx\n", l, bt / 1e9, bf / 1e9, bo / 1e9,
      bt / bo, bf / bo, mt / mo, mf / mo, wt, wo, (wo > 0 ? wt / wo : 0) }'
  runs_of+=("$label: rsync$(in_seconds "${tt[@]}") | rsync --fsync$(in_seconds "${tf[@]}") | hasync$(in_seconds "${to[@]}")")
}

printf '%-34s %11s %11s %11s %8s %8s %8s %8s %13s %13s %8s\n' "row (best of $RUNS)" "rsync" "rsync-fsync" "hasync" "speed" "durable" "speed50" "durab50" "rsync wire B" "hasync wire B" "bytes"
# The copies of the cold row are moved aside, not deleted: for a minute or more after many inodes were deleted, ext4 makes
# creating new ones slow (its allocator steps over each recently deleted inode), which a first copy to a fresh passive
# never meets, and which would land on whichever tool ran next. They go with $work at the end.
cold() {
  mkdir -p "$work/aside"
  mv "$work/ours" "$work/theirs" "$(mktemp -d "$work/aside/XXXXXX")/" 2>/dev/null || true
  mkdir -p "$work/ours" "$work/theirs"
}
nothing() { :; }
row "cold copy of /etc ($entries entries)" cold
row "no-change resync of /etc" nothing

head -c $((BIG_MB * 1000 * 1000)) /dev/urandom >"$work/big.orig"
base() { cp "$work/big.orig" "$work/src/big"; touch -d @1700000000 "$work/src/big"; ours; theirs; }
edits() {   # 1 % of the bytes, in 1000 scattered places
  base
  local size=$((BIG_MB * 1000 * 1000)) n=1000 len=$((BIG_MB * 10)) i
  for i in $(seq 1 $n); do
    head -c "$len" /dev/urandom | dd of="$work/src/big" bs="$len" seek=$(( (i * 7919 * 104729 % (size / len)) )) conv=notrunc status=none
  done
}
row "${BIG_MB} MB file, 1 % scattered edits" edits
floor=0
for _ in $(seq 1 "$RUNS"); do
  t0=$(now); $ssh_cmd "$user@127.0.0.1" true; t=$(( $(now) - t0 ))
  (( floor == 0 || t < floor )) && floor=$t || true
done
awk -v f="$floor" 'BEGIN { printf "every row holds one ssh session, the same for both: ssh HOST true takes %.3f s here (best of the runs)\n", f / 1e9 }'
echo "speed = rsync time / hasync time, durable = rsync --fsync time / hasync time (>1: hasync faster), of the best runs; speed50, durab50: the same of the medians; bytes = rsync wire / hasync wire (>1: hasync sends less)"
echo "every run, in seconds, in the order run:"
printf '  %s\n' "${runs_of[@]}"
