"""Lab-only: two GPU boxes. With the server on the first one stopped, the mac host's real OpenClaw
(its own voice-note path, tools.media.models[]) and the skill override both still transcribe, and the
second box's /metrics shows it was the one that did. With both stopped, the skill fails within its
connect grace, not its whole timeout."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests

from whisperlab_testkit import support
from whisperlab_testkit.lab import api_key, mac, wait_ready

REPO = Path(__file__).resolve().parents[2]

GROUP = "clients"
WORK = "whisperlab-failover"  # in the lab user's home, where SSH commands start
NOTE = f"{WORK}/voice.ogg"
SKILL = ".openclaw/workspace/skills/openai-whisper-api/scripts/transcribe.sh"
MAX_WER = 0.3


def transcriptions_served(server) -> float:
    key = api_key()
    text = requests.get(server["url"] + "/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=5).text
    pattern = r'^whisper_requests_total\{endpoint="/v1/audio/transcriptions",status="200"\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def test_the_first_server_stopped_openclaw_and_the_skill_use_the_second(servers):
    first, second = servers
    mac(f"rm -rf {WORK} && mkdir {WORK} && cat > {NOTE}", stdin=support.speech("report", "ogg"))
    before = transcriptions_served(second)
    assert first["host"].run(f"{first['systemctl']} stop whisper.service").rc == 0
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(first["url"] + "/health", timeout=5)

        reply = mac(f"openclaw infer audio transcribe --file {NOTE} --json")
        assert reply.returncode == 0, reply.stderr.decode()
        heard = json.loads(reply.stdout)["outputs"][0]["text"]
        assert support.wer(support.SENTENCES["report"], heard) <= MAX_WER, heard
        after_openclaw = transcriptions_served(second)
        assert after_openclaw >= before + 1, "OpenClaw's note did not reach the second server"

        skill = mac(f"{SKILL} {NOTE} --out {WORK}/voice.txt")
        assert skill.returncode == 0, skill.stderr.decode()
        assert "trying the next server" in skill.stderr.decode()
        heard = mac(f"cat {WORK}/voice.txt").stdout.decode()
        assert support.wer(support.SENTENCES["report"], heard) <= MAX_WER, heard
        assert transcriptions_served(second) >= after_openclaw + 1, "the skill's note did not reach the second server"
    finally:
        first["host"].run(f"{first['systemctl']} start whisper.service")
        wait_ready(first["url"], timeout=120)
        mac(f"rm -rf {WORK}")


def test_every_server_stopped_the_skill_fails_within_the_grace(servers):
    """A box that is down is not busy: the installed skill (the role's config: WHISPER_TIMEOUT 300,
    WHISPER_CONNECT_GRACE from whisper_skill_connect_grace) gives up after the grace, not 300 s."""
    grace = int(mac("sed -n 's/^WHISPER_CONNECT_GRACE=//p' ~/.config/whisperlab/client.env").stdout.decode().strip())
    timeout = int(mac("sed -n 's/^WHISPER_TIMEOUT=//p' ~/.config/whisperlab/client.env").stdout.decode().strip())
    assert grace < timeout
    urls = mac("sed -n 's/^WHISPER_API_URL=//p' ~/.config/whisperlab/client.env").stdout.decode().split()
    assert len(urls) >= 2
    mac(f"rm -rf {WORK} && mkdir {WORK} && cat > {NOTE}", stdin=support.speech("report", "ogg"))
    digest = mac(f"sha256sum {NOTE}").stdout.split()[0]
    for server in servers:
        assert server["host"].run(f"{server['systemctl']} stop whisper.service").rc == 0
    try:
        started = time.monotonic()
        skill = mac(f"{SKILL} {NOTE} --out {WORK}/voice.txt")
        elapsed = time.monotonic() - started
        stderr = skill.stderr.decode()
        print(stderr)
        assert skill.returncode == 1
        assert "could not connect to any server" in stderr
        for url in urls:
            assert url in stderr, f"the diagnosis does not name {url}"
        # The grace, plus one 5 s connect attempt per server and SSH's own start: far from the timeout.
        assert elapsed < grace + 30, f"took {elapsed:.0f} s with a grace of {grace} s"
        assert mac(f"test -e {WORK}/voice.txt").returncode != 0, "a transcript was written"
        assert mac(f"sha256sum {NOTE}").stdout.split()[0] == digest, "the audio was changed"
    finally:
        for server in servers:
            server["host"].run(f"{server['systemctl']} start whisper.service")
        for server in servers:
            wait_ready(server["url"], timeout=120)
        mac(f"rm -rf {WORK}")


# A busy server: every request gets a 429, and the Authorization header it carried is logged.
STANDIN = (Path(__file__).parent / "standin.py").read_text()
MARKERS = ("sk-MARKER-openai-api-key", "sk-MARKER-openai-api-keys", "sk-MARKER-openai-api-key-x")


def test_every_server_busy_the_users_openai_keys_never_reach_the_lan(servers):
    """With every LAN server answering 429, OpenClaw's voice-note path and the skill retry and fail over
    with whisperlab's key only: the user's OPENAI_API_KEY, OPENAI_API_KEYS and OPENAI_API_KEY_* never
    cross the LAN (an openai-provider profile of ours would have them rotated in)."""
    key = api_key()
    mac(f"rm -rf {WORK} && mkdir {WORK} && cat > {NOTE}", stdin=support.speech("report", "ogg"))
    for server in servers:
        assert server["host"].run(f"{server['systemctl']} stop whisper.service").rc == 0
        server["host"].run("rm -f /tmp/whisperlab-busy.log")
        assert server["host"].run("cat > /tmp/whisperlab-busy.py <<'PY'\n" + STANDIN + "\nPY").rc == 0
        # The stand-in takes the server's own port, behind the TLS front (stopped with the server: started
        # again on its own), so the clients meet it as they meet the server.
        port = server["backend_port"]
        if server["url"].startswith("https:"):
            assert server["host"].run(f"{server['systemctl']} start whisper-tls.service").rc == 0
        started = server["host"].run(
            f"setsid python3 /tmp/whisperlab-busy.py {port} 429 /tmp/whisperlab-busy.log </dev/null >/dev/null 2>&1 &"
        )
        assert started.rc == 0
    try:
        for server in servers:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if requests.post(server["url"] + "/v1/audio/transcriptions", timeout=2).status_code == 429:
                        break
                except requests.ConnectionError:
                    time.sleep(0.3)
            server["host"].run("rm -f /tmp/whisperlab-busy.log")
        markers = f"OPENAI_API_KEY={MARKERS[0]} OPENAI_API_KEYS={MARKERS[1]} OPENAI_API_KEY_X={MARKERS[2]}"
        openclaw = mac(f"{markers} openclaw infer audio transcribe --file {NOTE} --json")
        assert openclaw.returncode != 0, "every server answered 429, yet OpenClaw reports a transcript"
        # The skill waits out busy servers for WHISPER_TIMEOUT (300 s from the role): 20 s is enough here.
        skill = mac(f"{markers} WHISPER_TIMEOUT=20 {SKILL} {NOTE} --out {WORK}/voice.txt")
        assert skill.returncode != 0
        assert mac(f"test -e {WORK}/voice.txt").returncode != 0, "a transcript was written"
        for server in servers:
            seen = server["host"].run("cat /tmp/whisperlab-busy.log").stdout.split("\n")
            seen = [line for line in seen if line]
            # Counted, never printed: the lines hold whisperlab's key.
            ours = sum(line.split(" ", 2)[2] == f"Bearer {key}" for line in seen)
            leaked = [marker for marker in MARKERS if any(marker in line for line in seen)]
            print(f"{server['url']}: {len(seen)} requests, {ours} with whisperlab's key, markers seen: {leaked}")
            assert seen, f"{server['url']} got no request"
            assert not leaked, f"{server['url']} got the user's OpenAI keys {leaked}"
            assert ours == len(seen), f"{server['url']} got {len(seen) - ours} requests without whisperlab's key"
    finally:
        for server in servers:
            # Alone, and with a bracket: pkill -f must not match the shell that runs it.
            server["host"].run("pkill -f 'whisperlab-busy[.]py'")
            server["host"].run("rm -f /tmp/whisperlab-busy.py /tmp/whisperlab-busy.log")
            server["host"].run(f"{server['systemctl']} start whisper.service")
        for server in servers:
            wait_ready(server["url"], timeout=120)
        mac(f"rm -rf {WORK}")
