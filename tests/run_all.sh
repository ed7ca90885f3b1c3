#!/usr/bin/env bash
# make test, after lint: the lab sequence (tests/lab/sequence.sh), with the suites that need no lab
# (the server's, the whisperlab command's, the skill's and the roles') running beside its first steps.
# On this 2-core machine the lab waits on its hosts about half the time while it boots and converges, so
# the suites fit in that wait instead of running before it. Each suite's output goes to its own log,
# printed whole once the lab is done; any failure in either fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGS=${WHISPERLAB_LOGS:-/tmp/whisperlab-logs}
mkdir -p "$LOGS"
MAKE=${MAKE:-make}

suites() {
  local failed=0 suite
  for suite in test-server test-tool test-skill test-roles; do
    if "$MAKE" --no-print-directory "$suite" >"$LOGS/$suite.log" 2>&1; then
      echo "$suite: passed ($(tail -n 1 "$LOGS/$suite.log"))"
    else
      echo "$suite: FAILED (log: $LOGS/$suite.log)"
      failed=1
    fi
  done
  return "$failed"
}

suites >"$LOGS/suites.log" 2>&1 &
suites_pid=$!
trap 'kill "$suites_pid" 2>/dev/null || true' INT TERM

lab=0
tests/lab/sequence.sh || lab=$?

suites_status=0
wait "$suites_pid" || suites_status=$?
for suite in test-server test-tool test-skill test-roles; do
  printf '\n\033[1m=== %s\033[0m\n' "$suite"
  cat "$LOGS/$suite.log" 2>/dev/null || true
done
printf '\n\033[1m=== summary\033[0m\n'
cat "$LOGS/suites.log"
if [ "$lab" = 0 ]; then echo "lab sequence: passed"; else echo "lab sequence: FAILED (exit $lab)"; fi
[ "$lab" = 0 ] && [ "$suites_status" = 0 ]
