#!/usr/bin/env bash
# Churn soak: the churn test (tests/HaSync.Tests/Daemon/ChurnTests.cs) for a long run on one transport, then its
# verdict: seed, operations done, time to converge after the last one, pass or fail (with the test's own report of
# the differences, the last operations and the daemon's log on a failure).
#   SOAK_SECONDS=600 SOAK_OPS=50000 SOAK_TRANSPORT=ssh SOAK_SEED=42 tests/bench/churn-soak.sh
# SOAK_TRANSPORT is local or ssh (default local); without SOAK_SEED a fresh seed is drawn (and printed, to replay).
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_=${SOAK_SECONDS:-600}
OPS=${SOAK_OPS:-50000}
TRANSPORT=${SOAK_TRANSPORT:-local}
SEED=${SOAK_SEED:-$(( (RANDOM << 15) | RANDOM ))}
case "$TRANSPORT" in local|ssh) ;; *) echo "churn-soak: SOAK_TRANSPORT must be local or ssh, not '$TRANSPORT'" >&2; exit 2 ;; esac

dotnet build tests/HaSync.Tests -c Release >/dev/null || { echo "churn-soak: build failed (run: dotnet build tests/HaSync.Tests -c Release)" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "churn-soak: transport $TRANSPORT, seed $SEED, up to ${SECONDS_} s or $OPS ops"
status=0
# One row of the theory: the first for this transport ("defaultSeed: 1)" does not match "defaultSeed: 11)"); the
# env var overrides that row's seed. (No comma in the filter: MSBuild, which carries it, rejects commas.)
row=$([ "$TRANSPORT" = ssh ] && echo 11 || echo 1)
HASYNC_CHURN_SEED=$SEED HASYNC_CHURN_SECONDS=$SECONDS_ HASYNC_CHURN_OPS=$OPS \
  dotnet test tests/HaSync.Tests -c Release --no-build --logger "console;verbosity=detailed" \
  --filter "FullyQualifiedName~ChurnTests&DisplayName~defaultSeed: $row\)" \
  >"$log" 2>&1 || status=$?

ops=$(grep -oE 'churn: [0-9]+ ops done in [0-9.]+ s' "$log" | head -1 || true)
converge=$(grep -oE 'converged [0-9.]+ s after the last op' "$log" | head -1 || true)
health=$(grep -oE 'churn: drift repaired .*' "$log" | head -1 || true)
echo "seed:     $SEED"
echo "ops:      ${ops#churn: }"
echo "converge: ${converge:-did not converge}"
echo "daemon:   ${health#churn: }"
if [ "$status" -eq 0 ] && grep -q 'churn: PASS' "$log"; then
  echo "result:   PASS"
else
  echo "result:   FAIL (replay: SOAK_SEED=$SEED SOAK_TRANSPORT=$TRANSPORT SOAK_SECONDS=$SECONDS_ SOAK_OPS=$OPS $0)"
  sed -n '/Error Message:/,/Stack Trace:/p' "$log" | head -250
  [ "$status" -ne 0 ] || status=1
  grep -q 'Total tests' "$log" || tail -40 "$log"
fi
exit "$status"
