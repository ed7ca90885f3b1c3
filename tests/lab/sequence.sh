#!/usr/bin/env bash
# The lab test sequence that `make test` runs: up, the lab's own boot, set-up on a fresh machine, check
# mode on fresh hosts, converge, idempotence with check mode and verify, faults, the end-to-end demo,
# destroy. Each step says what it proves; the first failure stops the sequence. Steps that cannot
# disturb each other run side by side, each into its own log.
# WHISPERLAB_KEEP=1 keeps the lab afterwards, for a look around.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=tests/lab/lab.sh
INVENTORY=inventory/lab/hosts.yml
LOGS=${WHISPERLAB_LOGS:-/tmp/whisperlab-logs}
mkdir -p "$LOGS"

# Each step's header gives the time so far and how busy the CPUs were during the step before it (from
# /proc/stat: on this 2-core machine a step near 100% can only be sped up by doing less).
cpu_ticks() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat; }
read -r busy_before idle_before < <(cpu_ticks)
step() {
  local busy idle
  read -r busy idle < <(cpu_ticks)
  printf '\n\033[1m=== [%dm%02ds] %s\033[0m (CPU busy during the step before: %d%%)\n' $((SECONDS / 60)) $((SECONDS % 60)) \
    "$*" $((100 * (busy - busy_before) / (busy - busy_before + idle - idle_before + 1)))
  busy_before=$busy idle_before=$idle
}

fresh_setup=
finish() {
  local status=$?
  [ -z "$fresh_setup" ] || kill "$fresh_setup" 2>/dev/null || true
  # Whatever still runs side by side when a step fails.
  jobs -p | xargs -r kill 2>/dev/null || true
  if [ "${WHISPERLAB_KEEP:-0}" = 1 ]; then
    step "keeping the lab (WHISPERLAB_KEEP=1); remove it with: make lab-down"
  else
    step "destroy, and check that nothing is left behind"
    "$LAB" down
    if ! "$LAB" leftovers; then
      echo "lab-down left the above behind" >&2
      [ "$status" != 0 ] || status=1
    fi
  fi
  exit "$status"
}
trap finish EXIT

# pid log [pid log ...]: waits for each job started side by side, then prints its log; fails if any failed.
wait_each() {
  local failed=0
  while [ "$#" -ge 2 ]; do
    wait "$1" || failed=1
    cat "$2"
    shift 2
  done
  return "$failed"
}

json_run() {  # label, then ansible-playbook arguments: machine-readable run, judged by changed.py
  local label=$1; shift
  ANSIBLE_STDOUT_CALLBACK=ansible.posix.json ansible-playbook -i "$INVENTORY" site.yml "$@" >"$LOGS/$label.json" \
    || { python3 tests/lab/changed.py "$label" "$LOGS/$label.json" || true; return 1; }
  python3 tests/lab/changed.py "$label" "$LOGS/$label.json"
}

step "lab up"
"$LAB" up

step "boot: each host in a cgroup of its own; a host that refuses logins is named at once"
python3 -m pytest -q -ra tests/lab/test_boot.py -p no:cacheprovider

# It needs none of the lab's hosts, only copies of its root filesystem: it runs beside the first runs.
step "set-up on a fresh machine (in the background): make system-deps in throwaway copies of the lab's rootfs (NodeSource's nodejs; no Node)"
python3 -m pytest -q -ra tests/lab/test_fresh_setup.py -p no:cacheprovider --durations=5 >"$LOGS/fresh-setup.log" 2>&1 &
fresh_setup=$!

step "check mode before the first run: --check --diff must not fail on fresh hosts"
ansible-playbook -i "$INVENTORY" site.yml --check --diff >"$LOGS/check-fresh.log" \
  || { tail -n 40 "$LOGS/check-fresh.log"; exit 1; }
grep -A3 '^PLAY RECAP' "$LOGS/check-fresh.log"

step "converge"
ansible-playbook -i "$INVENTORY" site.yml | tee "$LOGS/converge.log"

step "set-up on a fresh machine: its result"
if ! wait "$fresh_setup"; then fresh_setup=; cat "$LOGS/fresh-setup.log"; exit 1; fi
fresh_setup=
tail -n 8 "$LOGS/fresh-setup.log"

# None of these three changes anything (a run that would is what idempotence catches), so they run side
# by side; each has its own log, shown when it ends.
step "idempotence (a second run changes nothing), check mode (--check --diff changes nothing) and verify (testinfra), side by side"
json_run idempotence >"$LOGS/idempotence.txt" 2>&1 &
idempotence=$!
json_run check --check --diff >"$LOGS/check.txt" 2>&1 &
check=$!
python3 -m pytest -q -ra tests --hosts=ansible://all --ansible-inventory="$INVENTORY" -p no:cacheprovider --durations=15 \
  >"$LOGS/verify.log" 2>&1 &
verify=$!
wait_each "$idempotence" "$LOGS/idempotence.txt" "$check" "$LOGS/check.txt" "$verify" "$LOGS/verify.log" || exit 1

step "secrets: the API key and the CA's key are in none of the runs' output (converge, idempotence, check mode)"
key_file=inventory/lab/.secrets/whisper_api_key
ca_key=inventory/lab/.secrets/tls/ca.key
[ -s "$key_file" ] || { echo "no API key at $key_file" >&2; exit 1; }
[ "$(stat -c %a "$ca_key")" = 600 ] || { echo "the CA's key $ca_key is not mode 0600" >&2; exit 1; }
ca_public=$(openssl pkey -in "$ca_key" -pubout)
for log in "$LOGS"/converge.log "$LOGS"/idempotence.json "$LOGS"/check.json; do
  if grep -qF -- "$(cat "$key_file")" "$log"; then echo "the API key is printed in $log" >&2; exit 1; fi
  # Each base64 line of the CA's key that carries its private part: the key's last line is the tail of
  # the public key, which the crypto modules print (public_key) and is no secret.
  while read -r line; do
    case "$ca_public" in *"$line"*) continue ;; esac
    if grep -qF -- "$line" "$log"; then echo "the CA's key is printed in $log" >&2; exit 1; fi
  done < <(grep -v -- '-----' "$ca_key")
done
echo "ok"

LAB_PYTEST=(python3 -m pytest -q -ra --hosts=ansible://all --ansible-inventory="$INVENTORY" -p no:cacheprovider --durations=0)
# The checks of the real OpenClaw work in throwaway OpenClaw states on the mac host, through the first
# server. Beside them, one after another: the last server's upgrades (they change only that box), then
# checks that leave both servers serving and touch nothing OpenClaw uses (the client's SSH trust,
# wsl.conf, TLS seen from the bridge). So the two run side by side.
MAC_SIDE=(tests/lab/test_openclaw_e2e.py)
SERVER_SIDE=(tests/lab/test_gpu_standin.py tests/lab/test_serving.py tests/lab/test_pinning.py tests/lab/test_tls.py
  tests/lab/test_wslconf.py)
step "faults and changes, two at once: the real OpenClaw on the mac host; beside it, on the last server, an interrupted upgrade, a server bound to one address, a stand-in GPU, a TLS key rotated; then a Host * and pinned host keys on the client, a user's own wsl.conf, TLS: a client without the CA refused, nothing in clear text on the bridge"
"${LAB_PYTEST[@]}" "${MAC_SIDE[@]}" >"$LOGS/faults-mac.log" 2>&1 &
mac_side=$!
"${LAB_PYTEST[@]}" "${SERVER_SIDE[@]}" >"$LOGS/faults-server-side.log" 2>&1 &
server_side=$!
wait_each "$mac_side" "$LOGS/faults-mac.log" "$server_side" "$LOGS/faults-server-side.log" || exit 1

step "faults and changes: reboot, kill -9, a moved server address; a firewalled port and a wrong key seen from the client; the first server down, the second serving; make status; the client play with macOS stood in"
ignored=()
for path in "${MAC_SIDE[@]}" "${SERVER_SIDE[@]}"; do ignored+=("--ignore=$path"); done
"${LAB_PYTEST[@]}" tests/lab -m "not before_converge" "${ignored[@]}"

if [ -x tests/lab/demo.sh ]; then
  step "end to end: the mac host transcribes through the wsl host"
  tests/lab/demo.sh
fi
