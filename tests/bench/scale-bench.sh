#!/usr/bin/env bash
# Scale benchmark, in the same run against the peers over the same loopback sshd:
#  - a watched set of BENCH_DIRS (10,000) directories holding BENCH_FILES (100,000) files: the daemon's start-up on an
#    empty passive until it watches and until the replica is whole (time, resident memory), against one cold rsync of
#    the same tree and lsyncd's start-up (delay = 0) until its first rsync finished;
#  - BENCH_TARGETS (16) targets, one agent each behind the same sshd: change-to-replica p50/p99 until every replica
#    holds the edit, against the same daemon with one target, and the CPU each process kind spent per edit: here the 16
#    passives' agents and sshd share this machine's cores with the active, so the active's own cost per added target
#    (daemon + ssh clients) is printed apart.
# Each replica is checked against the source with a listing (path, type, mode, size, mtime) and diff -r, not by hasync.
#   BENCH_DIRS=10000 BENCH_FILES=100000 BENCH_TARGETS=16 BENCH_EDITS=50 tests/bench/scale-bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

DIRS=${BENCH_DIRS:-10000}
FILES=${BENCH_FILES:-100000}
TARGETS=${BENCH_TARGETS:-16}
EDITS=${BENCH_EDITS:-50}
source tests/bench/sshd.sh
bench_workdir scale-bench rsync lsyncd python3 ssh ssh-keygen /usr/sbin/sshd
bench_fresh_fs 16 $(( FILES * 5 + DIRS * 5 + 100000 ))
watches=$(cat /proc/sys/fs/inotify/max_user_watches)
[ "$watches" -gt $((DIRS + 1000)) ] || { echo "scale-bench: fs.inotify.max_user_watches = $watches, below the $DIRS directories watched" >&2; exit 1; }

dotnet publish src/HaSync -c Release -o "$work/bin" >/dev/null || { echo "scale-bench: build failed" >&2; exit 1; }
hasync="$work/bin/hasync"
probe="python3 tests/bench/latency-probe.py"
start_sshd

# The tree: sqrt(DIRS) directories of sqrt(DIRS) directories, FILES spread over the leaves, config-sized (100 B–4 KB).
python3 - "$work/src/tree" "$DIRS" "$FILES" <<'PY'
import math, os, random, sys
root, dirs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(13)
side = max(1, math.isqrt(dirs))
leaves = [os.path.join(root, f"d{a:03d}", f"e{b:03d}") for a in range(side) for b in range(dirs // side)]
for leaf in leaves:
    os.makedirs(leaf)
for i in range(files):
    with open(os.path.join(leaves[i % len(leaves)], f"f{i:06d}.conf"), "wb") as f:
        f.write(rng.randbytes(rng.randint(100, 4096)))
PY
mkdir -p "$work/src/bench"
for i in $(seq 0 9); do echo "initial $i" >"$work/src/bench/edit-$i.conf"; done
dir_count=$(find "$work/src/tree" -type d | wc -l); file_count=$(find "$work/src/tree" -type f | wc -l)
sync

now_ns() { date +%s%N; }
seconds_since() { awk -v ns=$(( $(now_ns) - $1 )) 'BEGIN { printf "%.2f", ns / 1e9 }'; }
# The replica holds the source: same entries with the same type, mode, size and mtime, and the same contents.
listing() { (cd "$1" && find . -printf '%p %y %m %s %T@\n' | sort); }
# The listing without directory mtimes: the peers' own races leave some unrestored now and then (rsync 3.5 did, once in
# two CI runs, on every directory of a cold copy); that is theirs to fix and costs them no time, so it is named, not fatal.
listing_but_dir_times() { listing "$1" | awk '$2 == "d" { $5 = "-" } { print }'; }
same_tree() { # SRC DST WHO [peer]
  if [ "${4:-}" = peer ] && ! cmp -s <(listing "$1") <(listing "$2") && cmp -s <(listing_but_dir_times "$1") <(listing_but_dir_times "$2") \
     && diff -rq --no-dereference "$1" "$2" >/dev/null; then
    echo "scale-bench: note: $3 left $(diff <(listing "$1") <(listing "$2") | grep -c '^>') directory mtimes unrestored (its own race; contents and file times are whole)" >&2
    return
  fi
  if ! cmp -s <(listing "$1") <(listing "$2") || ! diff -rq --no-dereference "$1" "$2" >/dev/null; then
    echo "scale-bench: $3's replica differs from the source (< source, > replica):" >&2
    diff <(listing "$1") <(listing "$2") | head -n 20 >&2; diff -rq --no-dereference "$1" "$2" | head -n 5 >&2; exit 1
  fi
}
wait_log() { # FILE PATTERN WHO: until FILE holds PATTERN (2 min at most), woken by inotify (polling took CPU from the tool timed)
  $probe log "$1" "$2" || { echo "scale-bench: $3 never logged \"$2\": $(tail -n 5 "$1")" >&2; exit 1; }
}
rss_mb() { awk -v f="$2" '$1 == f ":" { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# The resident memory of a process and its children (the daemon's ssh clients), in MB.
tree_rss_mb() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1"); do total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"))); done
  echo $((total / 1024))
}
config() { # NAME PATHS TARGET-YAML...
  local name=$1 paths=$2; shift 2
  printf 'source_root: %s\npaths: [%s]\nstate_dir: %s\nrole: always\ntargets:\n%s\n' "$work/src" "$paths" "$work/$name.state" "$*" >"$work/$name.yaml"
}
stop_daemon() { kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""; }
# CPU ticks (user + system) used so far by role, one "role ticks" line each: the active's daemon and its ssh clients,
# the passives' sshd sessions and agents (those serving under AGENT-ROOT). On one machine all of them share its cores;
# on real passives only the active's part would.
cpu_ticks() { # AGENT-ROOT
  local root=$1 d line rest role
  for d in /proc/[0-9]*; do
    read -r line 2>/dev/null <"$d/stat" || continue
    rest=${line##*) }; set -- $rest
    case "${line#*(}" in
      ssh\)*) [ "$2" = "$daemon_pid" ] && role=ssh || continue ;;
      sshd*) [ "${d#/proc/}" = "$sshd_pid" ] && continue; role=sshd ;;
      *) if [ "${d#/proc/}" = "$daemon_pid" ]; then role=daemon
         elif tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -qF -- " serve --root $root/"; then role=agent
         else continue; fi ;;
    esac
    echo "$role $(( ${12} + ${13} ))"
  done | awk '{ t[$1] += $2 } END { for (r in t) print r, t[r] }'
}

# --- start-up on an empty passive: one cold rsync, lsyncd, hasync (each into a directory never used before) ---
t0=$(now_ns)
rsync -a -e "$ssh_cmd" "$work/src/tree/" "$user@127.0.0.1:$work/rsync-tree/"
rsync_s=$(seconds_since "$t0")
same_tree "$work/src/tree" "$work/rsync-tree" rsync peer

mkdir -p "$work/lsyncd-tree"
cat >"$work/lsyncd.lua" <<CFG
settings { nodaemon = true, logfile = "$work/lsyncd.log", insist = true }
sync { default.rsync, source = "$work/src/tree/", target = "$user@127.0.0.1:$work/lsyncd-tree/", delay = 0,
       rsync = { archive = true, rsh = "$ssh_cmd" } }
CFG
t0=$(now_ns)
lsyncd "$work/lsyncd.lua" >/dev/null 2>&1 &
daemon_pid=$!
wait_log "$work/lsyncd.log" 'Startup of .* finished' lsyncd
lsyncd_s=$(seconds_since "$t0")
sleep 1; lsyncd_rss=$(rss_mb "$daemon_pid" VmRSS)
stop_daemon
same_tree "$work/src/tree" "$work/lsyncd-tree" lsyncd peer

mkdir -p "$work/ours-tree"
config ours /tree "$(hasync_target_yaml "$hasync" "$work/ours-tree")"
t0=$(now_ns)
"$hasync" daemon -c "$work/ours.yaml" 2>"$work/ours.log" &
daemon_pid=$!
wait_log "$work/ours.log" 'watching .* directories' hasync
watching_s=$(seconds_since "$t0")
wait_log "$work/ours.log" 'connected; start-up resync' hasync
ours_s=$(seconds_since "$t0")
sleep 1; ours_rss=$(rss_mb "$daemon_pid" VmRSS); ours_hwm=$(rss_mb "$daemon_pid" VmHWM)
stop_daemon
# The agent's copy of the tree is under /tree of its root.
same_tree "$work/src/tree" "$work/ours-tree/tree" hasync

# --- one target against BENCH_TARGETS, the same edits ---
declare -A p50 p99 pmax rss cpu
tick_ms=$(( 1000 / $(getconf CLK_TCK) ))
for n in 1 "$TARGETS"; do
  targets="" replicas=""
  for i in $(seq -w 1 "$n"); do
    mkdir -p "$work/fan$n/t$i"
    targets+="$(hasync_target_yaml "$hasync" "$work/fan$n/t$i" "t$i")"$'\n'
    replicas+="${replicas:+:}$work/fan$n/t$i/bench"
  done
  config "fan$n" /bench "$targets"
  "$hasync" daemon -c "$work/fan$n.yaml" 2>"$work/fan$n.log" &
  daemon_pid=$!
  for _ in $(seq 1 600); do
    [ "$(grep -c 'connected; start-up resync' "$work/fan$n.log")" -ge "$n" ] && break; sleep 0.1
  done
  [ "$(grep -c 'connected; start-up resync' "$work/fan$n.log")" -ge "$n" ] || { echo "scale-bench: not all $n targets connected: $(tail -n 5 "$work/fan$n.log")" >&2; exit 1; }
  cpu_ticks "$work/fan$n" >"$work/cpu$n.before"
  read -r p50[$n] p99[$n] pmax[$n] < <($probe edits inplace "$work/src/bench" "$replicas" "$EDITS")
  cpu_ticks "$work/fan$n" >"$work/cpu$n.after"
  for role in daemon ssh sshd agent; do # ms per edit
    cpu[$n.$role]=$(awk -v r=$role -v ms=$tick_ms -v e="$EDITS" '$1 == r { t[FILENAME] = $2 } END { printf "%.2f", (t[ARGV[2]] - t[ARGV[1]]) * ms / e }' "$work/cpu$n.before" "$work/cpu$n.after")
  done
  rss[$n]=$(tree_rss_mb "$daemon_pid")
  stop_daemon
  for i in $(seq -w 1 "$n"); do same_tree "$work/src/bench" "$work/fan$n/t$i/bench" "hasync (t$i of $n)"; done
done

echo "watched set: $file_count files in $dir_count directories"
printf '%-52s %10s %12s\n' "start-up on an empty passive" seconds "RSS MB"
printf '%-52s %10s %12s\n' "  hasync daemon, until watching" "$watching_s" ""
printf '%-52s %10s %12s\n' "  hasync daemon, until the replica is whole" "$ours_s" "$ours_rss (peak $ours_hwm)"
printf '%-52s %10s %12s\n' "  lsyncd delay=0, until its start-up rsync finished" "$lsyncd_s" "$lsyncd_rss"
printf '%-52s %10s\n' "  one cold rsync of the same tree" "$rsync_s"
awk -v o="$ours_s" -v r="$rsync_s" -v l="$lsyncd_s" 'BEGIN { printf "%-52s %9.2fx (vs rsync) %6.2fx (vs lsyncd)\n", "  speed-up", r / o, l / o }'
printf '%-52s %10s %10s %10s %14s\n' "change-to-replica (ms), every replica holding it" p50 p99 max "RSS MB (+ssh)"
for n in 1 "$TARGETS"; do
  printf '%-52s %10s %10s %10s %14s\n' "  hasync daemon, $n target(s), inplace ($EDITS edits)" "${p50[$n]}" "${p99[$n]}" "${pmax[$n]}" "${rss[$n]}"
done
awk -v a="${p50[1]}" -v b="${p50[$TARGETS]}" -v n="$TARGETS" 'BEGIN { printf "%-52s %9.2fx\n", "  p50 with " n " targets / p50 with one", b / a }'
printf '%-52s %10s %10s %10s %10s\n' "CPU per edit (ms), all on this machine's $(nproc) cores" daemon "ssh" sshd agents
for n in 1 "$TARGETS"; do
  printf '%-52s %10s %10s %10s %10s\n' "  $n target(s)" "${cpu[$n.daemon]}" "${cpu[$n.ssh]}" "${cpu[$n.sshd]}" "${cpu[$n.agent]}"
done
awk -v n="$TARGETS" -v d1="${cpu[1.daemon]}" -v s1="${cpu[1.ssh]}" -v dn="${cpu[$TARGETS.daemon]}" -v sn="${cpu[$TARGETS.ssh]}" \
    -v h1="${cpu[1.sshd]}" -v a1="${cpu[1.agent]}" -v hn="${cpu[$TARGETS.sshd]}" -v an="${cpu[$TARGETS.agent]}" 'BEGIN {
  printf "%-52s %10.2f (active: daemon + ssh) %6.2f (passive: sshd + agent)\n", "  each target beyond the first", (dn + sn - d1 - s1) / (n - 1), (hn + an - h1 - a1) / (n - 1) }'
