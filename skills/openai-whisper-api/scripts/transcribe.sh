#!/bin/sh
# whisperlab's drop-in for OpenClaw's bundled openai-whisper-api script (2026.9.6): the same command
# line, default model, default output path, stdout and usage exit codes, sent to your own whisper
# server instead of OpenAI's cloud.
#
# Where it differs, on purpose:
#   - An HTTP error is a failure (exit 1, one line on stderr, no transcript file), never written out
#     as if it were the transcript.
#   - The installed whisperlab config wins over an OPENAI_BASE_URL in the environment, and says so.
#     Without a config it fails (exit 1, saying where it looked), never quietly using OPENAI_BASE_URL
#     and OPENAI_API_KEY instead: the skill run with another HOME would send the audio to the cloud.
#   - Several servers may be listed (one per GPU box): no connection, 429 or 503 moves on to the next.
#   - A server that cannot be connected to is down, not busy: when none accepts a connection, it
#     gives up after a short grace (WHISPER_CONNECT_GRACE), not after the whole WHISPER_TIMEOUT.
#   - Audio goes to OpenAI's cloud only if you opted in AND no local server could be reached at
#     all: never because one was slow, busy or answered with an error. The one other way: with the
#     cloud opted in, `whisperlab canary --apply` may put it first (WHISPER_ORDER=local_last), the
#     local servers then taking over whenever it fails.
#   - An extensionless input in a dotted folder gets a sibling output, not "<folder>/.txt".
#
# POSIX sh (macOS ships bash 3.2 and no jq): curl and POSIX utilities only. The audio file is only
# ever read. Every temporary file lives in one private folder (mode 0700) beside the output, removed
# on exit; the transcript is made there with your umask and renamed into place, so a failed run leaves
# no partial file.
set -eu

usage() {
  cat >&2 <<'EOF'
Usage:
  transcribe.sh <audio-file> [--model gpt-4o-transcribe] [--out /path/to/out.txt] [--language en] [--prompt "hint"] [--json]

Servers: $WHISPER_API_URL (one URL, or several separated by spaces or commas, tried in order), else
the installed whisperlab config (${WHISPER_SKILL_CONFIG:-~/.config/whisperlab/client.env}); without
one it fails. OpenAI's cloud only with WHISPER_FALLBACK_OPENAI=1, when no server can be reached.
EOF
  exit 2
}

say() { printf 'transcribe.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

case "${1:-}" in
  "" | -h | --help) usage ;;
esac

in=$1
shift
model=gpt-4o-transcribe
out=""
language=""
prompt=""
json_output=0

while [ $# -gt 0 ]; do
  case "$1" in
    --model | --out | --language | --prompt)
      # The bundled script exits 1 here (its `shift 2` fails under set -e); so does this one.
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --model) model=$2 ;;
        --out) out=$2 ;;
        --language) language=$2 ;;
        --prompt) prompt=$2 ;;
      esac
      shift 2
      ;;
    --json)
      json_output=1
      shift
      ;;
    *)
      printf 'Unknown arg: %s\n' "$1" >&2
      usage
      ;;
  esac
done

[ -f "$in" ] || die "File not found: $in"
[ -r "$in" ] || die "File not readable: $in"

# What to ask for, as the bundled script does: text for whisper-1, JSON for the gpt-4o family (whose
# text it keeps), diarized JSON for the diarize model.
response_format=text
text_of_json=0
chunking=""
[ "$json_output" = 1 ] && response_format=json
case "$model" in
  gpt-4o-transcribe | gpt-4o-mini-transcribe | gpt-4o-mini-transcribe-*)
    [ "$json_output" = 1 ] || text_of_json=1
    ;;
  gpt-4o-transcribe-diarize)
    response_format=diarized_json
    chunking=auto
    if [ -n "$prompt" ]; then
      printf '%s\n' "--prompt is not supported with gpt-4o-transcribe-diarize" >&2
      exit 2
    fi
    ;;
esac

# --- where to send it ----------------------------------------------------------------------------
# Where the whisper_skill role writes it (not under XDG_CONFIG_HOME: the role does not read that).
config=${WHISPER_SKILL_CONFIG:-${HOME:-}/.config/whisperlab/client.env}
case "$config" in /*) ;; *) config=$PWD/$config ;; esac  # the shadow job reads it from another folder
config_ok=0
if [ -f "$config" ] && [ -r "$config" ]; then config_ok=1; fi

config_value() {  # KEY: the value of KEY=value in the config file, if any (the file is never sourced)
  [ "$config_ok" = 1 ] || return 0
  sed -n "s/^$1=//p" "$config" | tail -n 1
}

valid_url() {  # scheme, host (name, IPv4 or [IPv6]), optional port, optional path; nothing else
  printf '%s' "$1" | grep -Eq '^https?://([A-Za-z0-9._~%-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[^[:space:]"\\]*)?$'
}

# The servers, in the order they are tried: WHISPER_API_URL and the config may list several,
# separated by spaces or commas (whisperlab writes one per GPU box).
urls=""
add_url() {  # URL [v1]: checked, and with /v1 added when the second argument says so
  u=${1%/}
  valid_url "$u" || die "malformed server URL '$1': expected http(s)://host[:port][/v1]"
  if [ "${2:-}" = v1 ]; then
    case "$u" in */v1) ;; *) u="$u/v1" ;; esac
  fi
  urls="$urls${urls:+ }$u"
}
add_urls() {  # LIST [v1]
  set -f
  for u in $(printf '%s' "$1" | tr ',' ' '); do add_url "$u" "${2:-}"; done
  set +f
}

installed_url=$(config_value WHISPER_API_URL)
fallback=${WHISPER_FALLBACK_OPENAI:-$(config_value WHISPER_FALLBACK_OPENAI)}
key=""
no_server=""  # why there is no local server to try, when there is none
if [ -n "${WHISPER_API_URL:-}" ]; then
  add_urls "$WHISPER_API_URL" v1
  key=${WHISPER_API_KEY:-$(config_value WHISPER_API_KEY)}
elif [ -n "$installed_url" ]; then
  add_urls "$installed_url"
  key=$(config_value WHISPER_API_KEY)
  # OpenClaw and shells often carry an OPENAI_BASE_URL meant for the cloud; it must not quietly
  # send this audio there, nor hand this key to it.
  base_url=${OPENAI_BASE_URL:-}
  case " $urls " in
    *" ${base_url%/} "*) ;;
    *)
      [ -z "$base_url" ] \
        || say "using the whisperlab server $urls from $config, not OPENAI_BASE_URL ($OPENAI_BASE_URL); set WHISPER_API_URL to choose another"
      ;;
  esac
else
  # No local server: an error, not OPENAI_BASE_URL and OPENAI_API_KEY (often the cloud's, set for
  # OpenClaw), unless the user opted in to OpenAI's cloud.
  if [ ! -e "$config" ]; then
    no_server="no whisperlab config at $config"
  elif [ "$config_ok" = 0 ]; then
    no_server="the whisperlab config $config is not a file $(id -un 2>/dev/null || echo 'this user') can read"
  else
    no_server="the whisperlab config $config names no server (WHISPER_API_URL)"
  fi
  [ "$fallback" = 1 ] \
    || die "$no_server: run the whisperlab playbook (playbooks/client.yml) again to install it, or set WHISPER_SKILL_CONFIG to its path; nothing was sent${OPENAI_BASE_URL:+ (OPENAI_BASE_URL is not used)}"
fi
[ -n "$urls" ] || [ -n "$no_server" ] || die "No server configured: WHISPER_API_URL lists no URL"
# whisperlab's TLS: the CA that signed the servers' certificates, the one curl trusts for them (not for
# OpenAI's cloud, which is checked against the system's CAs).
ca=${WHISPER_CA_FILE:-$(config_value WHISPER_CA_FILE)}
if [ -n "$ca" ] && [ -z "$no_server" ]; then
  { [ -f "$ca" ] && [ -r "$ca" ]; } \
    || die "the servers' CA certificate $ca (WHISPER_CA_FILE) is not a file $(id -un 2>/dev/null || echo 'this user') can read: run the whisperlab playbook (playbooks/client.yml) again; nothing was sent"
fi

seconds() {  # NAME DEFAULT: sets value to NAME from the environment, else the config, else DEFAULT
  eval "value=\${$1:-}"
  value=${value:-$(config_value "$1")}
  value=${value:-$2}
  case "$value" in *[!0-9]*) die "$1 must be a whole number of seconds, not '$value'" ;; esac
  # Shell arithmetic reads a leading 0 as octal, and "08" as an error.
  value=${value#"${value%%[!0]*}"}
  value=${value:-0}
}
# How long a busy (429), starting (503) or slow server is waited for.
seconds WHISPER_TIMEOUT 300
timeout=$value
# How long no server accepting a connection is waited for: about a WSL restart (10 s), with room.
seconds WHISPER_CONNECT_GRACE 15
grace=$value
fallback_url=${WHISPER_FALLBACK_URL:-https://api.openai.com/v1}
fallback_key=${WHISPER_FALLBACK_API_KEY:-${OPENAI_API_KEY:-}}
# Which comes first when the cloud is opted in: the local servers (local_first, the default), or the
# cloud with the local servers as its fallback (local_last). whisperlab canary --apply sets it.
order=${WHISPER_ORDER:-$(config_value WHISPER_ORDER)}
case "$order" in
  "" | local_first | local_last) ;;
  *) die "WHISPER_ORDER must be local_first or local_last, not '$order'; nothing was sent" ;;
esac
if [ "$fallback" = 1 ]; then
  valid_url "$fallback_url" || die "malformed WHISPER_FALLBACK_URL '$fallback_url'"
  [ -z "$no_server" ] || [ -n "$fallback_key" ] \
    || die "$no_server, and the OpenAI fallback has no key (OPENAI_API_KEY)"
fi

# --- output --------------------------------------------------------------------------------------
if [ -z "$out" ]; then
  if [ "$json_output" = 1 ]; then suffix=json; else suffix=txt; fi
  # Replace the file name's extension, if it has one. A dot in a folder name (~/.openclaw/...) or a
  # leading dot (.note) is not an extension.
  name=${in##*/}
  case "$name" in
    ?*.*) out="${in%.*}.$suffix" ;;
    *) out="$in.$suffix" ;;
  esac
fi
[ ! -d "$out" ] || die "--out names a folder ($out); give a file path"
outdir=$(dirname "$out")
mkdir -p "$outdir"  # with the user's umask, as the bundled script's
# Everything temporary goes in one folder only this user can enter, made fresh under a umask of 077
# (a shared /tmp has no protection against a name planted in advance), beside the output so that the
# transcript is renamed into place on the same file system. Only that folder is ever removed.
user_umask=$(umask)
umask 077
tmp=""
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
tmp=$(mktemp -d "$outdir/.transcribe.XXXXXX") || die "cannot make a temporary folder in $outdir"
body=$tmp/body
headers=$tmp/headers
curl_err=$tmp/curl.err

# curl's -F reads ';' and ',' in a file name as options: quote the name, escaping '\' and '"'.
quoted_in=$(printf '%s' "$in" | sed 's/[\\"]/\\&/g')
# The gpt-4o family is asked for text here rather than JSON: the same transcript, and no JSON parser.
wire_format=$response_format
[ "$text_of_json" = 0 ] || wire_format=text

# One request. Sets status (the HTTP code, or 000 when nothing answered), connects (how many
# connections were made: 0 means the server could not be reached at all) and took (its seconds).
# The key goes to curl on
# stdin (-K -), so it never shows in `ps`; so does the CA file (send_ca), when there is one.
request() {  # base-url key max-seconds
  result=$(
    {
      if [ -n "$2" ]; then
        printf 'header = "Authorization: Bearer %s"\n' "$(printf '%s' "$2" | sed 's/[\\"]/\\&/g')"
      fi
      if [ -n "$send_ca" ]; then
        printf 'cacert = "%s"\n' "$(printf '%s' "$send_ca" | sed 's/[\\"]/\\&/g')"
      fi
    } | curl -sS -K - --connect-timeout 5 --max-time "$3" -o "$body" -D "$headers" \
      -w '%{http_code} %{num_connects} %{exitcode} %{time_total}' \
      -H "Accept: application/json" \
      -F "file=@\"$quoted_in\"" \
      --form-string "model=$model" \
      --form-string "response_format=$wire_format" \
      ${language:+--form-string "language=$language"} \
      ${prompt:+--form-string "prompt=$prompt"} \
      ${chunking:+--form-string "chunking_strategy=$chunking"} \
      "$1/audio/transcriptions" 2>"$curl_err"
  ) || true
  status=${result%% *}
  rest=${result#* }
  connects=${rest%% *}
  rest=${rest#* }
  exitcode=${rest%% *}
  took=${rest#* }  # seconds, with a fraction: what a shadow record gives as this server's latency
  case "$status" in "" | *[!0-9]*) status=000 ;; esac
  case "$connects" in "" | *[!0-9]*) connects=0 ;; esac
  case "$exitcode" in "" | *[!0-9]*) exitcode=0 ;; esac
}

# The error's message from OpenAI's envelope, else the start of the body: one line.
error_line() {
  message=$(tr '\n' ' ' <"$body" | sed -n -E 's/.*"message" *: *"(([^"\\]|\\.)*)".*/\1/p' | sed -E 's/\\(.)/\1/g')
  [ -n "$message" ] || message=$(tr '\n' ' ' <"$body" | cut -c 1-200)
  printf '%s' "$message"
}

retry_after() {
  tr -d '\r' <"$headers" | sed -n 's/^[Rr][Ee][Tt][Rr][Yy]-[Aa][Ff][Tt][Ee][Rr]: *\([0-9][0-9]*\)$/\1/p' | tail -n 1
}

now() { date +%s; }

# Sends to the servers, in order, until one answers for good or the time is up. No connection, 429
# or 503 moves on to the next server at once; only when every one has refused does it wait (the
# shortest Retry-After, else a doubling delay) and go round again.
#
# Two clocks. A server that accepted the connection (busy, starting, slow) has until WHISPER_TIMEOUT.
# A round in which no server accepted one is a box or WSL that is down, and waiting minutes for it
# only delays the failure: that gets WHISPER_CONNECT_GRACE, counted from the last connection any
# server accepted in this run (else from the start). So one refusing server beside a busy one keeps
# the whole timeout, and a server that answered and then went away (restarting, or stopped) gets the
# grace again from its last answer, which a restart fits in.
#
# Returns 0 on 200, 3 when no server could be reached at all (no connection on any attempt), 1 on
# any other failure (the message is already printed). With send_once=1, one round and no waiting (the
# cloud asked first: the local servers take over at once). Sets spent: the seconds it took, waits
# included, with a fraction (what a shadow record gives as the local latency).
send_once=0
send() {  # key url...
  send_key=$1
  shift
  spent=0
  last_contact=$(now)
  deadline=$((last_contact + timeout))
  delay=1
  reached=0
  while :; do
    wait=""
    left=$#
    contact=0
    unconnected=""
    for base in "$@"; do
      left=$((left - 1))
      remaining=$((deadline - $(now)))
      [ "$remaining" -gt 0 ] || remaining=1
      request "$base" "$send_key" "$remaining"
      spent=$(awk -v a="$spent" -v b="$took" 'BEGIN { printf "%.3f", a + b }' 2>/dev/null || echo "$spent")
      if [ "$connects" != 0 ]; then
        reached=1
        contact=1
        last_contact=$(now)
      fi
      case "$status" in
        200) return 0 ;;
        429 | 503) this=$(retry_after); this=${this:-$delay}; why="HTTP $status ($(error_line))" ;;
        000)
          this=$delay
          curl_said=$(tr '\n' ' ' <"$curl_err" | sed 's/^curl: ([0-9]*) //; s/ *$//')
          # TLS that fails (35: handshake, 51/60: a certificate the CA did not sign for this name, 58/77:
          # the CA file, 83/90/91: the certificate's checks) will not mend by waiting: stop here, before
          # any request (and the key) was sent, and never fall back to the cloud for it.
          case "$exitcode" in
            35 | 51 | 58 | 60 | 77 | 83 | 90 | 91)
              say "$base failed its TLS check, so nothing was sent ($curl_said): its certificate must be one the whisperlab CA${send_ca:+ ($send_ca)} signed for that name; re-run the whisperlab playbook (site.yml) for the server and this client"
              return 1
              ;;
          esac
          if [ "$connects" = 0 ]; then
            why="cannot reach $base ($curl_said)"
            unconnected="$unconnected${unconnected:+, }$base ($curl_said)"
          else
            why="no answer from $base ($curl_said)"
          fi
          ;;
        *) say "$base answered HTTP $status: $(error_line)"; return 1 ;;
      esac
      [ "$#" = 1 ] || case "$why" in "cannot reach"* | "no answer"*) ;; *) why="$base: $why" ;; esac
      if [ -z "$wait" ] || [ "$this" -lt "$wait" ]; then wait=$this; fi
      [ "$left" = 0 ] || say "$why; trying the next server"
    done
    if [ "$send_once" = 1 ]; then
      say "$why"
      [ "$reached" = 0 ] && return 3
      return 1
    fi
    if [ "$contact" = 0 ]; then
      grace_left=$((last_contact + grace - $(now)))
      if [ "$grace_left" -le 0 ]; then
        if [ "$reached" = 0 ]; then
          say "could not connect to any server within ${grace}s (WHISPER_CONNECT_GRACE): $unconnected; is the box (or WSL) up?"
          return 3
        fi
        say "could not connect to any server for ${grace}s since one last answered (WHISPER_CONNECT_GRACE): $unconnected"
        return 1
      fi
      # Look again every second: a refused connection costs nothing, and the note should go as soon
      # as the server is back, not at the end of a backoff.
      wait=1
    fi
    if [ $(($(now) + wait)) -ge "$deadline" ]; then
      say "giving up after ${timeout}s: $why"
      [ "$reached" = 0 ] && return 3
      return 1
    fi
    say "$why; retrying in ${wait}s"
    sleep "$wait"
    spent=$(awk -v a="$spent" -v b="$wait" 'BEGIN { printf "%.3f", a + b }' 2>/dev/null || echo "$spent")
    [ "$delay" -ge 16 ] || delay=$((delay * 2))
  done
}

rc=3  # no local server reached (none to try counts as none reached)
local_tried=0
cloud_tried=0
if [ "$order" = local_last ] && [ "$fallback" = 1 ] && [ -n "$fallback_key" ]; then
  cloud_tried=1
  send_ca=""
  send_once=1
  if send "$fallback_key" "$fallback_url"; then
    rc=0
  else
    [ -n "$no_server" ] || say "OpenAI's cloud, first as whisperlab canary set it (WHISPER_ORDER=local_last), failed: trying the local servers"
  fi
  send_once=0
fi
if [ "$rc" != 0 ] && [ -z "$no_server" ]; then
  local_tried=1
  rc=0
  set -f
  send_ca=$ca
  # shellcheck disable=SC2086  # the list of URLs is meant to split (set -f: no globbing)
  send "$key" $urls || rc=$?
  set +f
  local_base=$base  # the server that answered, for a shadow record
  local_status=$status
  local_spent=$spent
  local_rc=$rc
fi
if [ "$rc" = 3 ] && [ "$fallback" = 1 ] && [ "$cloud_tried" = 0 ]; then
  [ -n "$fallback_key" ] || die "no local server could be reached, and the OpenAI fallback has no key (OPENAI_API_KEY)"
  say "${no_server:-no local server could be reached}: falling back to OpenAI's cloud ($fallback_url); this audio leaves your network"
  cloud_tried=1
  rc=0
  send_ca=""
  send "$fallback_key" "$fallback_url" || rc=$?
fi

# --- shadowing: opt-in, off unless the config says WHISPER_SHADOW=1 (docs/whisperlab.md) ------------
# A sampled share of the notes sent to the local servers (answered or failed, never those the cloud
# answered) is also sent, in the background, to a second endpoint (usually OpenAI's cloud), and both
# answers are logged (texts, latencies and errors, never the audio) for `whisperlab compare
# --from-shadow-log` and `whisperlab canary`. That sends this audio to the second endpoint: it is why it
# is off unless asked for, and ends on a date. Nothing here changes this run's result (the transcript
# is already in place, or the run fails as it would have), and a problem is one line on stderr. The
# audio is copied, never moved.
shadow() {  # answered | failed
  [ "$(config_value WHISPER_SHADOW)" = 1 ] || return 0
  # Speaker-labelled text has no plain counterpart to compare with.
  [ "$response_format" != diarized_json ] || return 0
  until_day=$(config_value WHISPER_SHADOW_UNTIL | tr -d '-')
  case "$until_day" in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) ;;
    *) say "shadowing is on but WHISPER_SHADOW_UNTIL is not a date (YYYY-MM-DD): not shadowed"; return 0 ;;
  esac
  [ "$(date +%Y%m%d)" -le "$until_day" ] || return 0
  rate=$(config_value WHISPER_SHADOW_RATE)
  rate=${rate:-100}
  case "$rate" in
    "" | *[!0-9]*) say "shadowing is on but WHISPER_SHADOW_RATE is not a percentage: not shadowed"; return 0 ;;
  esac
  draw=$(od -An -N2 -tu2 /dev/urandom | tr -d ' \n')
  [ $((draw % 100)) -lt "$rate" ] || return 0
  shadow_command=$(config_value WHISPER_SHADOW_COMMAND)
  if [ -z "$shadow_command" ] || [ ! -x "$shadow_command" ]; then
    say "shadowing is on but its command (${shadow_command:-WHISPER_SHADOW_COMMAND}) is not installed: not shadowed"
    return 0
  fi
  size=$(wc -c <"$in" | tr -d ' ')
  if [ "${size:-0}" -gt 26214400 ]; then
    say "shadowing: the note is over 25 MiB, more than the API takes: not shadowed"
    return 0
  fi
  spool=$(config_value WHISPER_SHADOW_DIR)
  spool=${spool:-${HOME:-}/.local/state/whisperlab/shadow}/spool
  # The upload keeps the input's extension: some endpoints tell the format by it.
  name=${in##*/}
  extension=ogg
  case "$name" in ?*.*) extension=${name##*.} ;; esac
  case "$extension" in *[!A-Za-z0-9]* | ??????*) extension=ogg ;; esac
  job=$(umask 077 && mkdir -p "$spool" && mktemp -d "$spool/job.XXXXXX") \
    || { say "shadowing: cannot make a folder in $spool: not shadowed"; return 0; }
  if ! (
    umask 077
    cp "$in" "$job/audio.$extension" \
      && if [ "$1" = answered ]; then cp "$out" "$job/local"; else
        printf 'the local servers failed (%s)' "$(describe_failure)" >"$job/error"; fi \
      && printf '%s' "$local_base" >"$job/url" && printf '%s' "$local_spent" >"$job/seconds" \
      && printf '%s' "$model" >"$job/model" && printf '%s' "$language" >"$job/language" \
      && printf '%s' "$prompt" >"$job/prompt" && printf '%s' "$name" >"$job/name" \
      && printf '%s' "$wire_format" >"$job/format"
  ); then
    rm -rf "$job"
    say "shadowing: cannot copy the note into $job: not shadowed"
    return 0
  fi
  # Detached, every stream closed: the assistant waits for this script, not for the second endpoint.
  (cd / && nohup "$shadow_command" shadow send --config "$config" "$job" </dev/null >/dev/null 2>&1 &)
}
describe_failure() {
  case "$local_status" in
    000 | "") printf 'no answer' ;;
    *) printf 'HTTP %s' "$local_status" ;;
  esac
}
if [ "$rc" != 0 ]; then
  # A note the local servers failed is evidence too (their error rate), unless the cloud answered it.
  [ "$local_tried" = 0 ] || [ "$cloud_tried" = 1 ] || shadow failed || true
  exit 1
fi

if [ "$response_format" = diarized_json ] && [ "$json_output" = 0 ]; then
  # Speaker-labelled lines need a JSON parser; OpenClaw's bundled script uses node, and so does this.
  command -v node >/dev/null 2>&1 || die "turning diarized_json into text needs node; use --json instead"
  node -e '
    const fs = require("fs");
    const reply = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const lines = (reply.segments || [])
      .filter((s) => typeof s.text === "string" && s.text.trim())
      .map((s) => (s.speaker ? s.speaker + ": " : "") + s.text.trim());
    fs.writeFileSync(process.argv[2], lines.length ? lines.join("\n") : String(reply.text));
  ' "$body" "$tmp/text" || die "the server's diarized_json reply could not be read"
  mv -f "$tmp/text" "$body"
elif [ "$text_of_json" = 1 ]; then
  # The bundled script keeps the JSON's text, without a final newline: the same here.
  transcript=$(cat "$body")
  printf '%s' "$transcript" >"$body"
fi

# The transcript is the user's own file, not a temporary one: made with their umask, as the bundled
# script's curl -o makes it, then renamed into place.
(umask "$user_umask" && cat "$body" >"$tmp/transcript") || die "could not write the transcript in $outdir"
mv -f "$tmp/transcript" "$out"
printf '%s\n' "$out"
[ "$local_tried" = 0 ] || [ "$local_rc" != 0 ] || shadow answered || true
