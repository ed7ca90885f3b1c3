#!/usr/bin/env bash
# Boots the lab from an empty state N times in a row (lab.sh down, then up) and counts the boots in
# which all three hosts took SSH logins. Not part of make test (about 40 s a cycle); run it after a
# change to how the lab boots:  tests/lab/boot_cycles.sh 10
set -uo pipefail
LAB="$(dirname "$0")/lab.sh"
cycles=${1:-10}
ok=0
for i in $(seq 1 "$cycles"); do
  "$LAB" down >/dev/null 2>&1
  started=$SECONDS
  if "$LAB" up >"/tmp/whisperlab-boot-$i.log" 2>&1 && "$LAB" ssh wsl true && "$LAB" ssh wsl2 true && "$LAB" ssh mac true; then
    ok=$((ok + 1))
    echo "boot $i: all hosts up in $((SECONDS - started)) s"
  else
    echo "boot $i: FAILED after $((SECONDS - started)) s: $(grep 'error:' "/tmp/whisperlab-boot-$i.log" | tail -n 1)"
  fi
done
"$LAB" down >/dev/null 2>&1
echo "$ok of $cycles boots brought all hosts up"
[ "$ok" = "$cycles" ]
