"""Lab-only: `whisperlab canary --apply` on the mac host's real OpenClaw. The lab user keeps an audio entry
of their own (OpenAI's provider, pointed here at a stand-in "cloud" on the bridge); from the evidence,
the canary puts whisperlab's entries after it (the local server misses the bar: the cloud answers the
voice note) or before it (the local server meets it: the lab's server answers), through the client play."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from whisperlab_testkit import support
from whisperlab_testkit.endpoint import StandIn
from whisperlab_testkit.lab import INVENTORY, mac

GROUP = "clients"  # once, from the controller: not once per host
WORK = "whisperlab-canary"
NOTE = f"{WORK}/voice.ogg"
CLOUD_TEXT = "This came from the stand-in cloud."
MAX_WER = 0.3


def _log(path: Path, local_ok: bool) -> Path:
    """A shadow log: 20 notes the local server got right and quick, or 28 of which it failed one in four
    (21 both answered: enough evidence for a verdict)."""
    truth = support.SENTENCES["report"]
    lines = []
    for i in range(20 if local_ok else 28):
        ok = local_ok or i % 4
        local = {"url": "https://wsl.home:8000/v1", "model": "whisper-1", "text": truth if ok else "", "ok": bool(ok)}
        local.update(latency_s=1.0, error="" if ok else "HTTP 503: busy")
        shadow = {"url": "https://api.openai.com/v1", "model": "whisper-1", "text": truth, "ok": True, "latency_s": 2.0}
        lines.append(json.dumps({"time": f"2026-11-30T10:{i:02d}:00", "name": f"{i}.ogg", "seconds": 5.0,
                                 "local": local, "shadow": shadow}))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def _media_models() -> list:
    return json.loads(mac("openclaw config get tools.media.models --json").stdout)


def _canary(log: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "whisperlab", "canary", "--from-shadow-log", str(log), "--apply"]
    return subprocess.run([*command, "--inventory", str(INVENTORY)], capture_output=True, text=True, timeout=900)


def _transcribe() -> str:
    reply = mac(f"openclaw infer audio transcribe --file {NOTE} --json")
    assert reply.returncode == 0, reply.stderr.decode()
    return json.loads(reply.stdout)["outputs"][0]["text"]


@pytest.fixture
def users_own_entry():
    """The lab user's own audio entry (OpenAI's provider, at a stand-in on the bridge), after whisperlab's."""
    gateway = mac("ip route show default").stdout.decode().split()[2]
    cloud = StandIn(answer=lambda seen: (200, {"Content-Type": "application/json"}, json.dumps({"text": CLOUD_TEXT})),
                    host=gateway)  # fmt: skip
    before = _media_models()
    mine = {"provider": "openai", "model": "whisper-1", "baseUrl": cloud.url, "capabilities": ["audio"]}
    batch = [
        {"path": "tools.media.models", "value": [*before, mine]},
        {"path": "models.providers.openai.request.allowPrivateNetwork", "value": True},
    ]
    assert mac(f"openclaw config set --batch-json '{json.dumps(batch)}'").returncode == 0
    mac(f"rm -rf {WORK} && mkdir {WORK} && cat > {NOTE}", stdin=support.speech("report", "ogg"))
    try:
        yield cloud, mine
    finally:
        cloud.close()
        ours = [m for m in _media_models() if m.get("provider") != "openai"]
        batch = [{"path": "tools.media.models", "value": ours}]
        mac(f"openclaw config set --batch-json '{json.dumps(batch)}'")
        mac("openclaw config unset models.providers.openai.request.allowPrivateNetwork")
        # Whatever the test reached, the lab goes on with the local servers first (the roles keep an order).
        mac("sed -i 's/^WHISPER_ORDER=.*/WHISPER_ORDER=local_first/' .config/whisperlab/client.env")
        mac(f"rm -rf {WORK}")


def test_the_canary_moves_the_local_servers_last_and_back(users_own_entry, tmp_path):
    cloud, mine = users_own_entry
    missed = _canary(_log(tmp_path / "missed.jsonl", local_ok=False))
    assert missed.returncode == 1, missed.stdout[-3000:] + missed.stderr
    assert "FAIL error rate: 25.0% of 28 notes" in missed.stdout and "putting the local servers last" in missed.stdout
    models = _media_models()
    audio = [m for m in models if "audio" in m.get("capabilities", [])]
    assert audio[0]["baseUrl"] == mine["baseUrl"] and all(m["provider"] == "senseaudio" for m in audio[1:])
    assert _transcribe() == CLOUD_TEXT
    assert len(cloud.seen) == 1

    met = _canary(_log(tmp_path / "met.jsonl", local_ok=True))
    assert met.returncode == 0, met.stdout[-3000:] + met.stderr
    audio = [m for m in _media_models() if "audio" in m.get("capabilities", [])]
    assert audio[-1]["baseUrl"] == mine["baseUrl"] and all(m["provider"] == "senseaudio" for m in audio[:-1])
    heard = _transcribe()
    assert support.wer(support.SENTENCES["report"], heard) <= MAX_WER, heard
    assert len(cloud.seen) == 1  # the cloud was not asked again
