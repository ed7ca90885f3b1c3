"""Lab-only: shadowing on the mac host. The whisper_skill role turns it on (the whisperlab command in its
own venv, the second endpoint's key, the config), the installed skill still answers from the first
server (tiny.en), and a background job asks the second endpoint (here the lab's second server, base) and
logs both answers; `whisperlab compare --from-shadow-log` reports on the log. Turned off again, the
key is gone and nothing more is shadowed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from whisperlab_testkit import support
from whisperlab_testkit.lab import KEY_FILE, mac

REPO = Path(__file__).resolve().parents[2]
GROUP = "clients"  # once, from the controller: not once per host
WORK = "whisperlab-shadow"
NOTE = f"{WORK}/voice.ogg"
SKILL = ".openclaw/workspace/skills/openai-whisper-api/scripts/transcribe.sh"
LOG = ".local/state/whisperlab/shadow/shadow.jsonl"
MAX_WER = 0.3


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "server/tools/dist.py"), "--project", "whisperlab", "--out", str(REPO / "dist")],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)["wheel"]


def _records() -> list:
    text = mac(f"cat {LOG} 2>/dev/null").stdout.decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_shadowing_on_then_off(run_role, servers, package, tmp_path):
    first, second = servers
    tomorrow = time.strftime("%Y-%m-%d", time.localtime(time.time() + 86400))
    on = {
        "whisper_skill_source": str(REPO / "skills/openai-whisper-api"),
        "whisper_skill_shadow": True,
        "whisper_skill_shadow_until": tomorrow,
        "whisper_skill_shadow_url": f"https://{second['alias']}:{second['port']}/v1",
        "whisper_skill_shadow_key_file": str(KEY_FILE),
        "whisper_skill_shadow_package": package,
    }
    mac(f"rm -rf {WORK} {LOG} && mkdir {WORK} && cat > {NOTE}", stdin=support.speech("report", "ogg"))
    try:
        run_role("clients", "whisper_skill", **on)
        again = run_role("clients", "whisper_skill", **on)
        assert "changed=0" in again.split("PLAY RECAP")[-1], again[-3000:]
        assert mac("stat -c %a .config/whisperlab/shadow-key").stdout.decode().strip() == "600"

        skill = mac(f"{SKILL} {NOTE}")
        assert skill.returncode == 0, skill.stderr.decode()
        assert skill.stdout.decode().strip().endswith(f"{WORK}/voice.txt")
        deadline = time.monotonic() + 120
        while not _records():
            assert time.monotonic() < deadline, "nothing shadowed in 120 s"
            time.sleep(0.5)
        [record] = _records()
        assert record["local"]["url"] == f"https://{first['alias']}:{first['port']}/v1"
        assert record["shadow"]["ok"], record["shadow"]
        for side in ("local", "shadow"):
            assert support.wer(support.SENTENCES["report"], record[side]["text"]) <= MAX_WER, record[side]
        assert mac(f"stat -c %a {LOG}").stdout.decode().strip() == "600"
        assert mac(f"grep -c OggS {LOG}").stdout.decode().strip() == "0"  # texts and times, never the audio
        # The copy goes once it is sent (the record is written just before).
        deadline = time.monotonic() + 30
        while mac("ls .local/state/whisperlab/shadow/spool").stdout.decode().strip():
            assert time.monotonic() < deadline, "the copy of the note was not removed"
            time.sleep(0.5)
        # The second server's own log has the shadow's request, answered once.
        log = second["host"].check_output(f"sudo cat {second['home']}/.local/state/whisper-server/whisper-server.log")
        assert log.count(f"request_id={record['shadow']['request_id']} ") == 1

        local_log = tmp_path / "shadow.jsonl"
        local_log.write_text(mac(f"cat {LOG}").stdout.decode())
        command = [sys.executable, "-m", "whisperlab", "compare", "--from-shadow-log", str(local_log)]
        report = subprocess.run([*command, "--out", str(tmp_path)], capture_output=True, text=True)
        assert report.returncode == 0, report.stderr
        assert json.loads((tmp_path / "report.json").read_text())["compared"] == 1
    finally:
        run_role("clients", "whisper_skill", whisper_skill_source=on["whisper_skill_source"])
    assert mac("test -e .config/whisperlab/shadow-key").returncode == 1
    assert mac("grep -c '^WHISPER_SHADOW=0$' .config/whisperlab/client.env").stdout.decode().strip() == "1"
    assert mac("test -e .local/state/whisperlab/shadow/spool").returncode == 1  # removed with the key
    assert mac(f"{SKILL} {NOTE}").returncode == 0
    # The skill copies a note before it returns: no spool now means nothing was handed on.
    assert mac("test -e .local/state/whisperlab/shadow/spool").returncode == 1, "shadowed while off"
    assert len(_records()) == 1
    mac(f"rm -rf {WORK} {LOG}")
