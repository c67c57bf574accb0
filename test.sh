#!/usr/bin/env bash
# Runs every HaSync test against the real parts (rdiff as the delta oracle; sshd for the transport tests).
# Installs what is missing with apt-get when run as root, and fails loudly when a part cannot be had:
# a test that skipped because its peer was absent would prove nothing.
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "test.sh: $*" >&2; exit 1; }

command -v dotnet >/dev/null || die "the .NET 10 SDK is required (dotnet is not on PATH): https://dot.net"

missing=()
command -v rdiff >/dev/null || missing+=(rdiff)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
[ -x /usr/bin/time ] || missing+=(time)
command -v ip >/dev/null || missing+=(iproute2)   # the VIP failover test moves an address in a network namespace of its own
# Peers of the benchmarks, which run here on small sizes so they keep working:
command -v rsync >/dev/null || missing+=(rsync)
command -v lsyncd >/dev/null || missing+=(lsyncd)
command -v python3 >/dev/null || missing+=(python3)
[ -x /usr/bin/python3 ] || missing+=(python3)      # the agent race test runs its racer as an unprivileged user: Debian's python3, not one under /root
command -v setpriv >/dev/null || missing+=(util-linux)
command -v useradd >/dev/null || missing+=(passwd)  # the race test creates its unprivileged user
command -v clang >/dev/null || command -v gcc >/dev/null || missing+=(gcc)  # Native AOT links the hasync the tests run
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)  # and the hasync launcher is linked statically
if ((${#missing[@]})); then
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: run as root, or: sudo apt-get install -y ${missing[*]}"
  echo "test.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi
for tool in rdiff rsync lsyncd python3 ip; do command -v "$tool" >/dev/null || die "$tool is still missing after the install"; done
command -v clang >/dev/null || command -v gcc >/dev/null || die "no C linker (clang or gcc) after the install: Native AOT needs one"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test HaSync.sln -c Release --logger "console;verbosity=normal" --blame-hang-timeout 5m 2>&1 | tee "$log" || status=$?

# The benchmark scripts must keep working: run them on a small size (figures at this size mean nothing).
bench() { # SCRIPT ENV...
  local script=$1; shift
  env "$@" "$script" >"$log.bench" 2>&1 || { cat "$log.bench"; echo "test.sh: $script failed" >&2; status=1; }
  rm -f "$log.bench"
}
if [ "$status" -eq 0 ]; then
  bench tests/bench/delta-bench.sh BENCH_MB=8 BENCH_RUNS=1
  bench tests/bench/resync-bench.sh BENCH_RUNS=1 BENCH_BIG_MB=2
  bench tests/bench/latency-bench.sh BENCH_EDITS=3 BENCH_DEFAULT_EDITS=1 BENCH_BURST=200
  bench tests/bench/scale-bench.sh BENCH_DIRS=4 BENCH_FILES=40 BENCH_TARGETS=2 BENCH_EDITS=3
fi

# One plain closing line: "N passed, N failed" (summed over the test projects).
counts=$(awk '/^Total tests: /{t+=$3} /^ +Passed: /{p+=$2} /^ +Failed: /{f+=$2} /^ +Skipped: /{s+=$2}
  END {print t+0, p+0, f+0, s+0}' "$log")
read -r total passed failed skipped <<<"$counts"
[ "$total" -gt 0 ] || { echo "test.sh: no tests ran (build failure?)" >&2; exit 1; }
[ "$skipped" -eq 0 ] || { echo "test.sh: $skipped tests skipped: every test must run here" >&2; status=1; }
echo "${passed} passed, ${failed} failed"
exit "$status"
