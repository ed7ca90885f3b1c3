#!/usr/bin/env bash
# The proof that the lab works: a spoken voice note (OGG/Opus, as chat channels deliver them),
# generated here, transcribed on the mac host by the real OpenClaw, through the server on the wsl host:
#   1. OpenClaw's own voice-note path (`openclaw infer audio transcribe`, the config the openclaw role wrote)
#   2. the installed skill override (what the agent runs for "transcribe this file")
# Fails if the words do not come back.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=tests/lab/lab.sh
# Relative to the lab user's home, where SSH commands start.
SKILL=.openclaw/workspace/skills/openai-whisper-api/scripts/transcribe.sh
NOTE=/tmp/whisperlab-demo.ogg
sample=$(mktemp --suffix=.ogg)
trap 'rm -f "$sample"' EXIT

said=$(python3 - "$sample" <<'PY'
import sys
from whisperlab_testkit import support
with open(sys.argv[1], "wb") as out:
    out.write(support.speech("report", "ogg"))
print(support.SENTENCES["report"])
PY
)
"$LAB" ssh mac "cat > $NOTE" <"$sample"

score() {  # said heard: prints the word error rate; fails above 0.3
  python3 - "$1" "$2" <<'PY'
import sys
from whisperlab_testkit import support
error = support.wer(sys.argv[1], sys.argv[2])
print(f"  word error rate: {error:.2f}")
sys.exit(0 if error <= 0.3 else 1)
PY
}

printf '\n  said (espeak-ng, on the controller): %s\n' "$said"

reply=$("$LAB" ssh mac "openclaw infer audio transcribe --file $NOTE --json")
heard=$(printf '%s' "$reply" | python3 -c 'import json, sys; print(json.load(sys.stdin)["outputs"][0]["text"])')
printf '\n  heard by OpenClaw %s (mac -> tools.media.models -> wsl.home:8000): %s\n' \
  "$("$LAB" ssh mac 'openclaw --version' | head -n 1)" "$heard"
score "$said" "$heard"

out=$("$LAB" ssh mac "$SKILL $NOTE")
heard=$("$LAB" ssh mac "cat '$out'")
printf '\n  heard by the skill override (mac -> transcribe.sh -> wsl.home:8000): %s\n  written to mac:%s\n' "$heard" "$out"
score "$said" "$heard"
echo
