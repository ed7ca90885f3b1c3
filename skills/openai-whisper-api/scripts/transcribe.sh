#!/bin/sh
# whisperlab's drop-in for OpenClaw's bundled openai-whisper-api script: the same command line and
# outputs, sent to your own whisper server instead of OpenAI's cloud.
#
# POSIX sh (macOS ships bash 3.2 and no jq): curl and POSIX utilities only. The audio file is only
# ever read; the transcript is written to a temporary file beside the output and renamed into place,
# so an error never leaves a partial or bogus transcript behind.
set -eu

usage() {
  cat >&2 <<'EOF'
Usage:
  transcribe.sh <audio-file> [--model whisper-1] [--out /path/to/out.txt] [--language en] [--prompt "hint"] [--json]

Server: $WHISPER_API_URL, else $OPENAI_BASE_URL (with /v1), else the installed config
(${WHISPER_SKILL_CONFIG:-~/.config/whisperlab/client.env}).
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
model=whisper-1
out=""
language=""
prompt=""
response_format=text

while [ $# -gt 0 ]; do
  case "$1" in
    --model | --out | --language | --prompt)
      [ $# -ge 2 ] || { say "$1 needs a value"; usage; }
      case "$1" in
        --model) model=$2 ;;
        --out) out=$2 ;;
        --language) language=$2 ;;
        --prompt) prompt=$2 ;;
      esac
      shift 2
      ;;
    --json)
      response_format=json
      shift
      ;;
    *)
      say "Unknown arg: $1"
      usage
      ;;
  esac
done

[ -f "$in" ] || die "File not found: $in"
[ -r "$in" ] || die "File not readable: $in"

# --- where to send it ----------------------------------------------------------------------------
config=${WHISPER_SKILL_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/whisperlab/client.env}

config_value() {  # KEY: the value of KEY=value in the config file, if any (the file is never sourced)
  [ -r "$config" ] || return 0
  sed -n "s/^$1=//p" "$config" | tail -n 1
}

if [ -n "${WHISPER_API_URL:-}" ]; then
  url=${WHISPER_API_URL%/}
  case "$url" in */v1) ;; *) url="$url/v1" ;; esac
  key=${WHISPER_API_KEY:-$(config_value WHISPER_API_KEY)}
elif [ -n "${OPENAI_BASE_URL:-}" ]; then
  url=${OPENAI_BASE_URL%/}
  key=${OPENAI_API_KEY:-}
else
  url=$(config_value WHISPER_API_URL)
  key=$(config_value WHISPER_API_KEY)
  [ -n "$url" ] || die "No server configured: set WHISPER_API_URL or OPENAI_BASE_URL, or install $config"
fi
timeout=${WHISPER_TIMEOUT:-$(config_value WHISPER_TIMEOUT)}
timeout=${timeout:-300}
case "$timeout" in "" | *[!0-9]*) die "WHISPER_TIMEOUT must be a whole number of seconds, not '$timeout'" ;; esac
fallback=${WHISPER_FALLBACK_OPENAI:-$(config_value WHISPER_FALLBACK_OPENAI)}
fallback_url=${WHISPER_FALLBACK_URL:-https://api.openai.com/v1}
fallback_key=${WHISPER_FALLBACK_API_KEY:-${OPENAI_API_KEY:-}}

# --- output --------------------------------------------------------------------------------------
if [ -z "$out" ]; then
  if [ "$response_format" = json ]; then out="${in%.*}.json"; else out="${in%.*}.txt"; fi
fi
outdir=$(dirname "$out")
mkdir -p "$outdir"
body=$(mktemp "$outdir/.transcribe.XXXXXX")
headers=$(mktemp "${TMPDIR:-/tmp}/transcribe-headers.XXXXXX")
trap 'rm -f "$body" "$headers" "$headers.err"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# curl's -F reads ';' and ',' in a file name as options: quote the name, escaping '\' and '"'.
quoted_in=$(printf '%s' "$in" | sed 's/[\\"]/\\&/g')

# One request. Sets status (the HTTP code, or 000 when nothing answered). The key goes to curl on
# stdin (-K -), so it never shows in `ps`.
request() {  # base-url key max-seconds
  status=$(
    if [ -n "$2" ]; then
      printf 'header = "Authorization: Bearer %s"\n' "$(printf '%s' "$2" | sed 's/[\\"]/\\&/g')"
    fi | curl -sS -K - --connect-timeout 5 --max-time "$3" -o "$body" -D "$headers" -w '%{http_code}' \
      -H "Accept: application/json" \
      -F "file=@\"$quoted_in\"" \
      --form-string "model=$model" \
      --form-string "response_format=$response_format" \
      ${language:+--form-string "language=$language"} \
      ${prompt:+--form-string "prompt=$prompt"} \
      "$1/audio/transcriptions" 2>"$headers.err"
  ) || true
  status=${status:-000}
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
deadline=$(($(now) + timeout))
delay=1

# Sends to one server until it answers for good or the time is up. Returns 0 on 200, 3 when the
# server could not be reached at all, 1 on any other failure (the message is already printed).
send() {  # base-url key
  while :; do
    remaining=$((deadline - $(now)))
    [ "$remaining" -gt 0 ] || remaining=1
    request "$1" "$2" "$remaining"
    case "$status" in
      200) return 0 ;;
      429 | 503) wait=$(retry_after); wait=${wait:-$delay}; why="HTTP $status ($(error_line))" ;;
      000) wait=$delay; why="cannot reach $1 ($(tr '\n' ' ' <"$headers.err" | sed 's/^curl: ([0-9]*) //'))" ;;
      *) say "$1 answered HTTP $status: $(error_line)"; return 1 ;;
    esac
    if [ $(($(now) + wait)) -ge "$deadline" ]; then
      say "giving up after ${timeout}s: $why"
      [ "$status" = 000 ] && return 3
      return 1
    fi
    say "$why; retrying in ${wait}s"
    sleep "$wait"
    [ "$delay" -ge 16 ] || delay=$((delay * 2))
  done
}

rc=0
send "$url" "$key" || rc=$?
if [ "$rc" = 3 ] && [ "$fallback" = 1 ]; then
  [ -n "$fallback_key" ] || die "local server unreachable, and the OpenAI fallback has no key (OPENAI_API_KEY)"
  say "local server unreachable: falling back to OpenAI's cloud ($fallback_url); this audio leaves your network"
  deadline=$(($(now) + timeout))
  delay=1
  rc=0
  send "$fallback_url" "$fallback_key" || rc=$?
fi
[ "$rc" = 0 ] || exit 1

mv -f "$body" "$out"
echo "$out"
