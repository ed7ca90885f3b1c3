#!/usr/bin/env bash
# The proof that the lab works: a spoken sample, generated here, transcribed on the mac host by the
# installed skill, through the server on the wsl host. Fails if the words do not come back.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=tests/lab/lab.sh
# Relative to the lab user's home, where SSH commands start.
SKILL=.openclaw/workspace/skills/openai-whisper-api/scripts/transcribe.sh
sample=$(mktemp --suffix=.ogg)
trap 'rm -f "$sample"' EXIT

said=$(python3 - "$sample" <<'PY'
import sys
sys.path.insert(0, "server/tests")
import support
with open(sys.argv[1], "wb") as out:
    out.write(support.speech("report", "ogg"))
print(support.SENTENCES["report"])
PY
)
"$LAB" ssh mac 'cat > /tmp/whisperlab-demo.ogg' <"$sample"
out=$("$LAB" ssh mac "$SKILL /tmp/whisperlab-demo.ogg")
heard=$("$LAB" ssh mac "cat '$out'")
printf '\n  said (espeak-ng, on the controller): %s\n' "$said"
printf '  heard (mac -> skill -> wsl.home:8000): %s\n  written to mac:%s\n\n' "$heard" "$out"
python3 - "$said" "$heard" <<'PY'
import sys
sys.path.insert(0, "server/tests")
import support
error = support.wer(sys.argv[1], sys.argv[2])
print(f"  word error rate: {error:.2f}")
sys.exit(0 if error <= 0.3 else 1)
PY
