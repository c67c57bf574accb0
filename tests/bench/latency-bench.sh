#!/usr/bin/env bash
# Daemon latency benchmark: hasync daemon against lsyncd (default.rsync over the same sshd), in the same run.
# Rows: change-to-replica time (p50/p99/max over BENCH_EDITS edits) for in-place and rename saves, with lsyncd
# at delay = 0 and at its default delay (BENCH_DEFAULT_EDITS edits: each waits out that delay); a burst of
# BENCH_BURST files written at once (time until the replica holds them all) against one rsync of the same set;
# in-place edits again while dd writes BENCH_LOAD_MB (2048) MB on the passive's file system; and the daemon's resident
# memory while it watches a copy of /etc. The replicas (and rsync's copy) are on a file system of their own, as a real
# pair's passive is (see bench_passive_fs).
#   BENCH_EDITS=50 BENCH_DEFAULT_EDITS=5 BENCH_BURST=10000 tests/bench/latency-bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

EDITS=${BENCH_EDITS:-50}
DEFAULT_EDITS=${BENCH_DEFAULT_EDITS:-5}
BURST=${BENCH_BURST:-10000}
source tests/bench/sshd.sh
bench_workdir latency-bench rsync lsyncd python3 ssh ssh-keygen /usr/sbin/sshd
bench_fresh_fs 2 200000
bench_passive_fs $(( ${BENCH_LOAD_MB:-2048} / 1024 + 3 )) 400000

dotnet publish src/HaSync -c Release -o "$work/bin" >/dev/null || { echo "latency-bench: build failed" >&2; exit 1; }
hasync="$work/bin/hasync"
probe="python3 tests/bench/latency-probe.py"
start_sshd

# The watched set: a copy of /etc (the memory row), the edited files, the burst directory.
mkdir -p "$work/src/bench" "$work/src/burst"
cp -a /etc "$work/src/etc"
for i in $(seq 0 9); do echo "initial $i" >"$work/src/bench/edit-$i.conf"; done

# run_daemon NAME: start it on "$passive/$NAME" and wait for the start-up copy. stop_daemon: SIGTERM, wait.
run_hasync() {
  mkdir -p "$passive/$1"
  cat >"$work/$1.yaml" <<CFG
source_root: $work/src
paths: [/etc, /bench, /burst]
exclude: ["*.tmp"]
state_dir: $work/$1.state
role: always
targets:
$(hasync_target_yaml "$hasync" "$passive/$1")
CFG
  "$hasync" daemon -v -c "$work/$1.yaml" 2>"$work/$1.log" &   # -v: the self-check's cost is a debug line
  daemon_pid=$!
}
run_lsyncd() { # NAME DELAY-LINE
  mkdir -p "$passive/$1"
  cat >"$work/$1.lua" <<CFG
settings { nodaemon = true, logfile = "$work/$1.log", insist = true }
sync {
  default.rsync,
  source = "$work/src/",
  target = "$user@127.0.0.1:$passive/$1/",
  exclude = { "*.tmp" },
  $2
  rsync = { archive = true, rsh = "$ssh_cmd" },
}
CFG
  lsyncd "$work/$1.lua" >/dev/null 2>&1 &
  daemon_pid=$!
}
wait_copied() { # NAME: the start-up copy is complete
  for _ in $(seq 1 600); do
    diff -r --no-dereference "$work/src/bench" "$passive/$1/bench" >/dev/null 2>&1 && diff -rq --no-dereference "$work/src/etc" "$passive/$1/etc" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "latency-bench: $1 never made its start-up copy: $(tail -n 5 "$work/$1.log")" >&2; exit 1
}
stop_daemon() { kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$daemon_pid/status"; }

declare -A p50 p99 pmax burst_s burst_after
measure() { # NAME EDITS
  local mode
  for mode in inplace rename; do
    read -r p50[$1.$mode] p99[$1.$mode] pmax[$1.$mode] < <($probe edits $mode "$work/src/bench" "$passive/$1/bench" "$2")
  done
}

# --- hasync ---
run_hasync ours; wait_copied ours
sleep 1; rss=$(rss_kb)
measure ours "$EDITS"
# The same edits while another process writes 2 GB on the passive's file system (a backup, a log burst): an ack must
# not wait for that writer's data.
sync
dd if=/dev/zero of="$passive/load.bin" bs=1M count="${BENCH_LOAD_MB:-2048}" status=none &
load_pid=$!
read -r p50[ours.loaded] p99[ours.loaded] pmax[ours.loaded] < <($probe edits inplace "$work/src/bench" "$passive/ours/bench" "$EDITS")
wait "$load_pid"; rm -f "$passive/load.bin"
sync
read -r burst_s[ours] burst_after[ours] < <($probe burst "$work/src/burst" "$passive/ours/burst" "$BURST")
# The self-check that follows the burst (after daemon.self_check_ms without a push) covers the burst directory.
for _ in $(seq 1 300); do
  grep -oE 'self-check of [0-9]+ subtree\(s\), [0-9]+ entries' "$work/ours.log" | awk -v n="$BURST" '$5 >= n { found = 1 } END { exit !found }' && break
  sleep 0.1
done
self_checks=$(grep -oE 'self-check of [0-9]+ subtree\(s\), [0-9]+ entries: [0-9]+ drifted, [0-9]+ ms' "$work/ours.log" || true)
stop_daemon

# --- one cold rsync of the same burst set, at once: the file system is in the same state for both ---
# (ext4 makes creating files slow for a while after many were deleted; an earlier run's cleanup, say.)
sync
t0=$(date +%s%N)
rsync -a -e "$ssh_cmd" "$work/src/burst/" "$user@127.0.0.1:$passive/rsync-burst/"
burst_s[rsync]=$(awk -v ns=$(( $(date +%s%N) - t0 )) 'BEGIN { printf "%.3f", ns / 1e9 }')

# --- lsyncd, delay = 0 ---
rm -rf "$work/src/burst"/*
run_lsyncd theirs0 "delay = 0,"; wait_copied theirs0
sleep 1; lsyncd_rss=$(rss_kb)
LATENCY_PROBE_LOST_AFTER=20 measure theirs0 "$EDITS" # lsyncd has been seen to drop an in-place edit for good: said, not fatal
sync
read -r burst_s[theirs0] burst_after[theirs0] < <($probe burst "$work/src/burst" "$passive/theirs0/burst" "$BURST")
stop_daemon

# --- lsyncd, its default delay ---
run_lsyncd theirs15 ""; wait_copied theirs15
LATENCY_PROBE_LOST_AFTER=60 measure theirs15 "$DEFAULT_EDITS"
stop_daemon


printf '%-40s %10s %10s %10s\n' "change-to-replica (ms)" p50 p99 max
for mode in inplace rename; do
  printf '%-40s %10s %10s %10s\n' "hasync daemon, $mode ($EDITS edits)" "${p50[ours.$mode]}" "${p99[ours.$mode]}" "${pmax[ours.$mode]}"
  printf '%-40s %10s %10s %10s\n' "lsyncd delay=0, $mode ($EDITS edits)" "${p50[theirs0.$mode]}" "${p99[theirs0.$mode]}" "${pmax[theirs0.$mode]}"
  printf '%-40s %10s %10s %10s\n' "lsyncd default delay, $mode ($DEFAULT_EDITS)" "${p50[theirs15.$mode]}" "${p99[theirs15.$mode]}" "${pmax[theirs15.$mode]}"
  awk -v m="$mode" -v o="${p50[ours.$mode]}" -v t="${p50[theirs0.$mode]}" -v d="${p50[theirs15.$mode]}" 'BEGIN {
    printf "%-40s %9.1fx (vs delay=0) %9.1fx (vs default)\n", "  p50 speed-up, " m, t / o, d / o }'
done
printf '%-40s %10s %10s %10s\n' "hasync daemon, inplace, dd writing too" "${p50[ours.loaded]}" "${p99[ours.loaded]}" "${pmax[ours.loaded]}"
printf '%-40s %14s %16s\n' "burst of $BURST files written at once" "from 1st write" "from last write"
printf '%-40s %12s s %14s s\n' "  hasync daemon, until all on replica" "${burst_s[ours]}" "${burst_after[ours]}"
printf '%-40s %12s s %14s s\n' "  lsyncd delay=0, until all on replica" "${burst_s[theirs0]}" "${burst_after[theirs0]}"
printf '%-40s %12s %16s s\n' "  one cold rsync of the same files" "" "${burst_s[rsync]}"
awk -v o="${burst_after[ours]}" -v r="${burst_s[rsync]}" 'BEGIN { printf "%-40s %9.2fx (rsync time / hasync time after the last write)\n", "  burst", r / o }'
echo "self-checks of the hasync daemon (one after each quiet period, over what was pushed since the last):"
if [ -n "$self_checks" ]; then
  echo "$self_checks" | awk '{ n++; e = $5; ms = $9; drift += $7; if (e + 0 > maxe) { maxe = e; maxms = ms } total += ms }
    END { printf "  %d self-checks, %d ms in all, %d drifted paths; the largest: %d entries in %d ms\n", n, total, drift, maxe, maxms }'
else
  echo "  none seen in the log" >&2; exit 1
fi
echo "resident memory watching a copy of /etc ($(find "$work/src/etc" -type d | wc -l) directories): hasync daemon $((rss / 1024)) MB, lsyncd $((lsyncd_rss / 1024)) MB"
