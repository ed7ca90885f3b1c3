"""Lab-only: the real OpenClaw on the mac host, with the config the openclaw role wrote (no temporary
config), against the server on the wsl host. Every command runs over SSH as the lab user, with the
PATH a login gives it, as the assistant would."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "server" / "tests"))
import support  # noqa: E402

LAB = REPO / "tests" / "lab" / "lab.sh"
WORK = "/home/lab/whisperlab-openclaw"  # the lab user's home
BUNDLED = "/opt/openclaw/lib/node_modules/openclaw/skills/openai-whisper-api/scripts/transcribe.sh"
OVERRIDE = "~/.openclaw/workspace/skills/openai-whisper-api/scripts/transcribe.sh"
MAX_WER = 0.3


def mac(command: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(LAB), "ssh", "mac", command], input=stdin, capture_output=True, timeout=300, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"mac: {command} exited {result.returncode}\n{result.stderr.decode()}")
    return result


@pytest.fixture(scope="module")
def note() -> str:
    """An OGG/Opus voice note on the mac host, as a chat channel would deliver it."""
    mac(f"rm -rf {WORK} && mkdir -p {WORK}")
    mac(f"cat > {WORK}/voice.ogg", stdin=support.speech("report", "ogg"))
    return f"{WORK}/voice.ogg"


@pytest.fixture(scope="module")
def server_url() -> str:
    """The first server's URL as the whisper_skill role installed it on the mac host (one per server)."""
    urls = mac("sed -n 's/^WHISPER_API_URL=//p' ~/.config/whisperlab/client.env").stdout.decode().split()
    return urls[0]


def test_the_config_the_role_wrote_is_valid():
    out = mac("openclaw config validate").stdout.decode()
    assert "valid" in out.lower()


def test_the_users_own_entry_and_comments_backup_survive():
    models = json.loads(mac("openclaw config get tools.media.models --json").stdout)
    ours = [m for m in models if m.get("profile") == "openai:whisperlab"]
    # One entry per server, in inventory order, and together (the user's entry is not between them).
    assert [m["baseUrl"] for m in ours] == ["http://wsl.home:8000/v1", "http://wsl2.home:8000/v1"]
    assert all(m["capabilities"] == ["audio"] for m in ours)
    assert models[models.index(ours[0]) + 1] == ours[1]
    assert {"provider": "ollama", "model": "gemma4:26b", "capabilities": ["image"]} in models
    backup = mac("cat ~/.openclaw/openclaw.json.whisperlab-backup").stdout.decode()
    assert backup.startswith("// The lab user's own OpenClaw config"), "the backup is not the user's original"


def test_the_users_own_openai_profile_stays_theirs_for_chat():
    # The lab user stored an OpenAI key of their own (openai:personal) before whisperlab came. Without
    # a pinned order OpenClaw would pick either stored openai profile for chat, whisperlab's included.
    order = json.loads(mac("openclaw config get auth.order.openai --json").stdout)
    assert order == ["openai:personal"]
    profiles = json.loads(mac("openclaw models auth list --json --provider openai").stdout)["profiles"]
    assert {"openai:personal", "openai:whisperlab"} <= {p["id"] for p in profiles}


def test_voice_note_through_openclaws_own_path(note):
    result = mac(f"openclaw infer audio transcribe --file {note} --json")
    reply = json.loads(result.stdout)
    assert reply["ok"] is True and reply["provider"] == "openai"
    heard = reply["outputs"][0]["text"]
    assert support.wer(support.SENTENCES["report"], heard) <= MAX_WER, heard


def test_the_override_is_the_skill_openclaw_sees():
    info = json.loads(mac("openclaw skills info openai-whisper-api --json").stdout)
    assert info["source"] == "openclaw-workspace", info["source"]
    assert info["eligible"] is True
    assert all(not missing for missing in info["missing"].values()), info["missing"]


# Argument vectors run through both scripts. {note} is the voice note, copied fresh for each script.
VECTORS = [
    [],
    [""],
    ["-h"],
    ["--help"],
    ["{note}", "--bogus"],
    ["{note}", "-h"],
    ["{note}", "--model"],
    ["{note}", "--out"],
    ["{dir}/absent.ogg"],
    ["{note}", "--model", "gpt-4o-transcribe-diarize", "--prompt", "names"],
    ["{note}"],
    ["{note}", "--json"],
    ["{note}", "--model", "whisper-1"],
    ["{note}", "--model", "gpt-4o-mini-transcribe", "--language", "en", "--prompt", "Quarterly report."],
    ["{note}", "--out", "{dir}/deep/out.txt"],
]


def run_script(script: str, label: str, args: list[str], note: str, env: str) -> tuple[int, str, str]:
    folder = f"{WORK}/{label}"
    mac(f"rm -rf {folder} && mkdir -p {folder} && cp {note} {folder}/voice.ogg")
    argv = [a.replace("{note}", f"{folder}/voice.ogg").replace("{dir}", folder) for a in args]
    command = f"cd {folder} && {env} {script} {' '.join(shlex.quote(a) for a in argv)}"
    result = mac(command, check=False)
    stdout = result.stdout.decode().replace(folder, "<dir>")
    written = ""
    if result.returncode == 0 and stdout.strip():
        written = mac(f"cat {shlex.quote(result.stdout.decode().strip())}").stdout.decode()
    return result.returncode, stdout, written


@pytest.mark.parametrize("args", VECTORS, ids=lambda a: " ".join(a) or "(none)")
def test_bundled_and_override_agree(note, server_url, args):
    key = "$(sed -n 's/^WHISPER_API_KEY=//p' ~/.config/whisperlab/client.env)"
    # The bundled script, pointed at the lab server the way its SKILL.md documents.
    bundled = run_script(
        f"bash {BUNDLED}", "bundled", args, note, f'OPENAI_BASE_URL={server_url} OPENAI_API_KEY="{key}"'
    )
    # The override, with only what the role installed.
    override = run_script(f"env -u OPENAI_BASE_URL -u OPENAI_API_KEY {OVERRIDE}", "override", args, note, "")
    assert override[0] == bundled[0], f"exit codes differ: bundled {bundled[0]}, override {override[0]}"
    assert override[1] == bundled[1], "stdout differs"
    if bundled[0] == 0:
        if "--json" in args:
            bundled_text, override_text = json.loads(bundled[2])["text"], json.loads(override[2])["text"]
        else:
            bundled_text, override_text = bundled[2], override[2]
        assert support.wer(support.SENTENCES["report"], override_text) <= MAX_WER
        assert support.wer(bundled_text, override_text) <= 0.05, (bundled_text, override_text)
        # The gpt-4o family keeps the JSON's text with no final newline; whisper-1's text is as sent.
        assert override_text.endswith("\n") == bundled_text.endswith("\n")


def _state() -> str:
    """What the role may change: the config file and the stored profiles."""
    return mac("md5sum ~/.openclaw/openclaw.json; openclaw models auth list --json --provider openai").stdout.decode()


def test_an_older_openclaw_stops_the_role_and_changes_nothing(run_role):
    before = _state()
    out = run_role("clients", "openclaw", expect_failure=True, openclaw_min_version="2099.1.1")
    assert "whisperlab configures 2099.1.1 or newer" in out and "Nothing was changed" in out
    assert _state() == before


def test_no_openclaw_skips_with_one_clear_line(run_role):
    out = run_role("clients", "openclaw", openclaw_executable="/nonexistent/openclaw")
    assert "OpenClaw is not installed for" in out and "skipping" in out
    assert "changed=0" in out
