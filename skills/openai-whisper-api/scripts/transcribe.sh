#!/bin/sh
# whisperlab's drop-in for OpenClaw's bundled openai-whisper-api script (2026.9.6): the same command
# line, default model, default output path, stdout and usage exit codes, sent to your own whisper
# server instead of OpenAI's cloud.
#
# Where it differs, on purpose:
#   - An HTTP error is a failure (exit 1, one line on stderr, no transcript file), never written out
#     as if it were the transcript.
#   - The installed whisperlab config wins over an OPENAI_BASE_URL in the environment, and says so.
#   - Audio goes to OpenAI's cloud only if you opted in AND the local server could not be reached at
#     all: never because it was slow, busy or answered with an error.
#   - An extensionless input in a dotted folder gets a sibling output, not "<folder>/.txt".
#
# POSIX sh (macOS ships bash 3.2 and no jq): curl and POSIX utilities only. The audio file is only
# ever read; the transcript is written to a temporary file beside the output and renamed into place.
set -eu

usage() {
  cat >&2 <<'EOF'
Usage:
  transcribe.sh <audio-file> [--model gpt-4o-transcribe] [--out /path/to/out.txt] [--language en] [--prompt "hint"] [--json]

Server: $WHISPER_API_URL, else the installed whisperlab config
(${WHISPER_SKILL_CONFIG:-~/.config/whisperlab/client.env}), else $OPENAI_BASE_URL (with /v1).
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
config=${WHISPER_SKILL_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/whisperlab/client.env}

config_value() {  # KEY: the value of KEY=value in the config file, if any (the file is never sourced)
  [ -r "$config" ] || return 0
  sed -n "s/^$1=//p" "$config" | tail -n 1
}

valid_url() {  # scheme, host (name, IPv4 or [IPv6]), optional port, optional path; nothing else
  printf '%s' "$1" | grep -Eq '^https?://([A-Za-z0-9._~%-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[^[:space:]"\\]*)?$'
}

installed_url=$(config_value WHISPER_API_URL)
if [ -n "${WHISPER_API_URL:-}" ]; then
  url=${WHISPER_API_URL%/}
  valid_url "$url" || die "malformed server URL '$WHISPER_API_URL': expected http(s)://host[:port][/v1]"
  case "$url" in */v1) ;; *) url="$url/v1" ;; esac
  key=${WHISPER_API_KEY:-$(config_value WHISPER_API_KEY)}
elif [ -n "$installed_url" ]; then
  url=${installed_url%/}
  key=$(config_value WHISPER_API_KEY)
  # OpenClaw and shells often carry an OPENAI_BASE_URL meant for the cloud; it must not quietly
  # send this audio there, nor hand this key to it.
  if [ -n "${OPENAI_BASE_URL:-}" ] && [ "${OPENAI_BASE_URL%/}" != "$url" ]; then
    say "using the whisperlab server $url from $config, not OPENAI_BASE_URL ($OPENAI_BASE_URL); set WHISPER_API_URL to choose another"
  fi
elif [ -n "${OPENAI_BASE_URL:-}" ]; then
  url=${OPENAI_BASE_URL%/}
  key=${OPENAI_API_KEY:-}
else
  die "No server configured: set WHISPER_API_URL or OPENAI_BASE_URL, or install $config"
fi
valid_url "$url" || die "malformed server URL '$url': expected http(s)://host[:port]/v1"
timeout=${WHISPER_TIMEOUT:-$(config_value WHISPER_TIMEOUT)}
timeout=${timeout:-300}
case "$timeout" in "" | *[!0-9]*) die "WHISPER_TIMEOUT must be a whole number of seconds, not '$timeout'" ;; esac
fallback=${WHISPER_FALLBACK_OPENAI:-$(config_value WHISPER_FALLBACK_OPENAI)}
fallback_url=${WHISPER_FALLBACK_URL:-https://api.openai.com/v1}
fallback_key=${WHISPER_FALLBACK_API_KEY:-${OPENAI_API_KEY:-}}
if [ "$fallback" = 1 ]; then
  valid_url "$fallback_url" || die "malformed WHISPER_FALLBACK_URL '$fallback_url'"
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
mkdir -p "$outdir"
body=$(mktemp "$outdir/.transcribe.XXXXXX")
headers=$(mktemp "${TMPDIR:-/tmp}/transcribe-headers.XXXXXX")
trap 'rm -f "$body" "$body.text" "$headers" "$headers.err"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# curl's -F reads ';' and ',' in a file name as options: quote the name, escaping '\' and '"'.
quoted_in=$(printf '%s' "$in" | sed 's/[\\"]/\\&/g')
# The gpt-4o family is asked for text here rather than JSON: the same transcript, and no JSON parser.
wire_format=$response_format
[ "$text_of_json" = 0 ] || wire_format=text

# One request. Sets status (the HTTP code, or 000 when nothing answered) and connects (how many
# connections were made: 0 means the server could not be reached at all). The key goes to curl on
# stdin (-K -), so it never shows in `ps`.
request() {  # base-url key max-seconds
  result=$(
    if [ -n "$2" ]; then
      printf 'header = "Authorization: Bearer %s"\n' "$(printf '%s' "$2" | sed 's/[\\"]/\\&/g')"
    fi | curl -sS -K - --connect-timeout 5 --max-time "$3" -o "$body" -D "$headers" \
      -w '%{http_code} %{num_connects}' \
      -H "Accept: application/json" \
      -F "file=@\"$quoted_in\"" \
      --form-string "model=$model" \
      --form-string "response_format=$wire_format" \
      ${language:+--form-string "language=$language"} \
      ${prompt:+--form-string "prompt=$prompt"} \
      ${chunking:+--form-string "chunking_strategy=$chunking"} \
      "$1/audio/transcriptions" 2>"$headers.err"
  ) || true
  status=${result% *}
  connects=${result#* }
  case "$status" in "" | *[!0-9]*) status=000 ;; esac
  case "$connects" in "" | *[!0-9]*) connects=0 ;; esac
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

# Sends to one server until it answers for good or the time is up. Returns 0 on 200, 3 when the
# server could not be reached at all (no connection on any attempt), 1 on any other failure (the
# message is already printed).
send() {  # base-url key
  deadline=$(($(now) + timeout))
  delay=1
  reached=0
  while :; do
    remaining=$((deadline - $(now)))
    [ "$remaining" -gt 0 ] || remaining=1
    request "$1" "$2" "$remaining"
    [ "$connects" = 0 ] || reached=1
    case "$status" in
      200) return 0 ;;
      429 | 503) wait=$(retry_after); wait=${wait:-$delay}; why="HTTP $status ($(error_line))" ;;
      000)
        wait=$delay
        why="cannot reach $1 ($(tr '\n' ' ' <"$headers.err" | sed 's/^curl: ([0-9]*) //'))"
        ;;
      *) say "$1 answered HTTP $status: $(error_line)"; return 1 ;;
    esac
    if [ $(($(now) + wait)) -ge "$deadline" ]; then
      say "giving up after ${timeout}s: $why"
      [ "$reached" = 0 ] && return 3
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
  rc=0
  send "$fallback_url" "$fallback_key" || rc=$?
fi
[ "$rc" = 0 ] || exit 1

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
  ' "$body" "$body.text" || die "the server's diarized_json reply could not be read"
  mv -f "$body.text" "$body"
elif [ "$text_of_json" = 1 ]; then
  # The bundled script keeps the JSON's text, without a final newline: the same here.
  transcript=$(cat "$body")
  printf '%s' "$transcript" >"$body"
fi

mv -f "$body" "$out"
printf '%s\n' "$out"
