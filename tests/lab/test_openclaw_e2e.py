"""Lab-only: the real OpenClaw on the mac host, with the config the openclaw role wrote (no temporary
config), against the server on the wsl host. Every command runs over SSH as the lab user, with the
PATH a login gives it, as the assistant would."""

from __future__ import annotations

import functools
import json
import shlex
import subprocess
from pathlib import Path

import pytest

from whisperlab_testkit import lab, support

REPO = Path(__file__).resolve().parents[2]

WORK = "/home/lab/whisperlab-openclaw"  # the lab user's home
BUNDLED = "/opt/openclaw/lib/node_modules/openclaw/skills/openai-whisper-api/scripts/transcribe.sh"
OVERRIDE = "~/.openclaw/workspace/skills/openai-whisper-api/scripts/transcribe.sh"
MAX_WER = 0.3


# Every command here must succeed unless a test says otherwise.
mac = functools.partial(lab.mac, check=True)


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
    ours = [m for m in models if m.get("provider") == "senseaudio"]
    # One entry per server, in inventory order, and together (the user's entry is not between them).
    assert [m["baseUrl"] for m in ours] == ["https://wsl.home:8000/v1", "https://wsl2.home:8000/v1"]
    assert all(m["capabilities"] == ["audio"] for m in ours)
    assert models[models.index(ours[0]) + 1] == ours[1]
    assert {"provider": "ollama", "model": "gemma4:26b", "capabilities": ["image"]} in models
    backup = mac("cat ~/.openclaw/openclaw.json.whisperlab-backup").stdout.decode()
    assert backup.startswith("// The lab user's own OpenClaw config"), "the backup is not the user's original"


def test_nothing_of_whisperlabs_is_in_the_openai_provider():
    # The lab user stored an OpenAI key of their own (openai:personal) before whisperlab came. A key of
    # ours stored for `openai` would be rotated with theirs on a 429 (failover.py proves the 429 case).
    profiles = json.loads(mac("openclaw models auth list --json --provider openai").stdout)["profiles"]
    assert [p["id"] for p in profiles] == ["openai:personal"]
    # Read as written (OpenClaw rewrote it as plain JSON): `config get` would fill in defaults.
    config = json.loads(mac("cat ~/.openclaw/openclaw.json").stdout)
    assert "openai" not in config.get("auth", {}).get("order", {})
    openai = config.get("models", {}).get("providers", {}).get("openai", {})
    assert "allowPrivateNetwork" not in openai.get("request", {})
    block = json.loads(mac("openclaw config get models.providers.senseaudio --json").stdout)
    assert block["apiKey"]["source"] == "file" and block["apiKey"]["provider"] == "whisperlab"
    # Private addresses, and the whisperlab CA (a file reference, its id redacted), for this provider only.
    assert block["request"] == {
        "allowPrivateNetwork": True,
        "tls": {"ca": {"source": "file", "provider": "whisperlab-ca", "id": "__OPENCLAW_REDACTED__"}},
    }
    key = mac("stat -c '%a %U' ~/.config/whisperlab/openclaw-key").stdout.decode().split()
    assert key == ["600", "lab"]


def test_voice_note_through_openclaws_own_path(note):
    result = mac(f"openclaw infer audio transcribe --file {note} --json")
    reply = json.loads(result.stdout)
    assert reply["ok"] is True and reply["provider"] == "senseaudio"
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
        f"bash {BUNDLED}",
        "bundled",
        args,
        note,
        # Its curl trusts the lab's CA the way curl lets any script do (CURL_CA_BUNDLE).
        f'OPENAI_BASE_URL={server_url} OPENAI_API_KEY="{key}" CURL_CA_BUNDLE="$HOME/.config/whisperlab/ca.pem"',
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


def test_an_older_openclaw_stops_the_role_and_changes_nothing(run_role):
    # The role asks such an OpenClaw only its version (tests/roles/test_openclaw_reads.py shows that no
    # other openclaw command runs): the config file and whisperlab's own files stay as they were.
    state = "md5sum ~/.openclaw/openclaw.json ~/.config/whisperlab/*"
    before = mac(state).stdout.decode()
    out = run_role("clients", "openclaw", expect_failure=True, openclaw_min_version="2099.1.1")
    assert "whisperlab configures 2099.1.1 or newer" in out and "Nothing was changed" in out
    assert mac(state).stdout.decode() == before


def test_no_openclaw_skips_with_one_clear_line(run_role):
    out = run_role("clients", "openclaw", openclaw_executable="/nonexistent/openclaw")
    assert "OpenClaw is not installed for" in out and "skipping" in out
    assert "changed=0" in out


# --- An older whisperlab install, and a user whose OpenAI key is only in the environment. Each runs in a
# throwaway OpenClaw state of its own, so the lab user's real one stays as the roles left it.


def state_env(name: str) -> dict[str, str]:
    base = f"/home/lab/whisperlab-state-{name}"
    return {
        "OPENCLAW_NO_UPDATE_CHECK": "1",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "OPENCLAW_STATE_DIR": f"{base}/state",
        "OPENCLAW_CONFIG_PATH": f"{base}/openclaw.json",
    }


def in_state(env: dict[str, str], command: str) -> str:
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith("OPENCLAW"))
    return f"env {exports} {command}"


def run_old_role(env: dict[str, str], roles_dir: Path) -> str:
    """The openclaw role of an older checkout (roles_dir/roles), on the clients, with OpenClaw pointed at
    a throwaway state. This repository's own role runs through the run_role fixture."""
    playbook = roles_dir / "openclaw-only.yml"
    playbook.write_text("- name: Only openclaw\n  hosts: clients\n  roles: [openclaw]\n")
    result = lab.ansible_playbook(
        playbook,
        extra_vars={"openclaw_environment": env},
        env={"ANSIBLE_ROLES_PATH": str(roles_dir / "roles"), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )
    assert result.returncode == 0, f"openclaw role from {roles_dir}: exit {result.returncode}"
    return result.stdout


# main before the senseaudio move: its openclaw role kept the key in an openai:whisperlab profile.
OLD_MAIN = "06c49af"


def test_an_older_install_is_taken_apart(note, run_role, tmp_path):
    env = state_env("older")
    mac(f"rm -rf {env['OPENCLAW_CONFIG_PATH'].rsplit('/', 1)[0]}")
    mac(
        in_state(
            env,
            "sh -c 'printf %s sk-lab-users-own-openai-key | openclaw models auth paste-api-key "
            "--provider openai --profile-id openai:personal >/dev/null 2>&1'",
        )
    )
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "archive", OLD_MAIN, "roles"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    run_old_role(env, old)
    record = mac("test -s ~/.config/whisperlab/openclaw-profile.sha256", check=False)
    assert record.returncode == 0, "the old role did not store its profile"

    taken_apart = run_role("clients", "openclaw", openclaw_environment=env)
    # The old profile was there: the role found it in OpenClaw's list and logged it out.
    logout = taken_apart.split("TASK [openclaw : Remove the older whisperlab's auth profile")[1].split("TASK [")[0]
    assert "changed: [mac]" in logout, "the old role's profile was not there to remove"
    after = json.loads(mac(in_state(env, "openclaw models auth list --json --provider openai")).stdout)
    assert [p["id"] for p in after["profiles"]] == ["openai:personal"]
    config = json.loads(mac(f"cat {env['OPENCLAW_CONFIG_PATH']}").stdout)
    assert "order" not in config.get("auth", {}) or "openai" not in config["auth"]["order"]
    assert "allowPrivateNetwork" not in config.get("models", {}).get("providers", {}).get("openai", {}).get(
        "request", {}
    )
    models = config["tools"]["media"]["models"]
    assert [m["provider"] for m in models] == ["senseaudio", "senseaudio"]
    assert not any("profile" in m for m in models)
    assert mac("test -e ~/.config/whisperlab/openclaw-profile.sha256", check=False).returncode != 0
    assert "changed=0" in run_role("clients", "openclaw", openclaw_environment=env)
    reply = json.loads(mac(in_state(env, f"openclaw infer audio transcribe --file {note} --json")).stdout)
    assert reply["provider"] == "senseaudio"


STANDIN = (Path(__file__).parent / "standin.py").read_text()


def test_a_key_only_in_the_environment_still_signs_the_users_chat(note, run_role):
    env = state_env("envonly")
    base = env["OPENCLAW_CONFIG_PATH"].rsplit("/", 1)[0]
    mac(f"rm -rf {base} && mkdir -p {base}")
    # The user's own setting, before whisperlab: OpenAI chat through a proxy (here a stand-in that logs
    # the Authorization header it gets), and no auth profile at all.
    users_openai = {"baseUrl": "http://127.0.0.1:18099/v1", "models": [], "request": {"allowPrivateNetwork": True}}
    mac(
        in_state(
            env, f"openclaw config set models.providers.openai {shlex.quote(json.dumps(users_openai))} --strict-json"
        )
    )
    run_role("clients", "openclaw", openclaw_environment=env)
    assert json.loads(mac(in_state(env, "openclaw models auth list --json --provider openai")).stdout)["profiles"] == []
    assert (
        json.loads(mac(in_state(env, "openclaw config get models.providers.openai --json")).stdout)["baseUrl"]
        == (users_openai["baseUrl"])
    )
    mac(f"cat > {base}/chat.py", stdin=STANDIN.encode())
    mac(f"setsid python3 {base}/chat.py 18099 400 {base}/chat.log </dev/null >/dev/null 2>&1 & sleep 1")
    try:
        chat = mac(
            in_state(
                env,
                "OPENAI_API_KEY=sk-users-env-only-key openclaw infer model run --model openai/gpt-4o-mini"
                " --prompt hi --json",
            ),
            check=False,
        )
        print(chat.stdout.decode()[-2000:], chat.stderr.decode()[-2000:])
        log = mac(f"cat {base}/chat.log").stdout.decode()
        assert "Bearer sk-users-env-only-key" in log, log
        assert set(log.split()) <= {
            "POST",
            "/v1/chat/completions",
            "/v1/responses",
            "Bearer",
            "sk-users-env-only-key",
        }, log
    finally:
        mac("pkill -f 'whisperlab-state-envonly/chat[.]py'", check=False)
    # And its voice notes still go to the LAN server, with whisperlab's key.
    reply = json.loads(mac(in_state(env, f"openclaw infer audio transcribe --file {note} --json")).stdout)
    assert reply["provider"] == "senseaudio"
    assert support.wer(support.SENTENCES["report"], reply["outputs"][0]["text"]) <= MAX_WER


USERS_JSON5 = """// My OpenClaw config, with a comment the role's write will drop.
{
  tools: {
    media: {
      models: [{ provider: "ollama", model: "gemma4:26b", capabilities: ["image"] }],
    },
  },
}
"""


def test_the_readmes_undo_steps_undo_it(run_role):
    """Both ways the role's README gives: its `config unset` lines (run as written there) and the media
    list without ours leave the user's settings as they were; the backup is their file, byte for byte."""
    env = state_env("undo")
    path = env["OPENCLAW_CONFIG_PATH"]
    mac(
        f"rm -rf {path.rsplit('/', 1)[0]} && mkdir -p {path.rsplit('/', 1)[0]} && cat > {path}",
        stdin=USERS_JSON5.encode(),
    )
    run_role("clients", "openclaw", openclaw_environment=env)
    assert json.loads(mac(f"cat {path}").stdout)["models"]["providers"]["senseaudio"]

    readme = (REPO / "roles" / "openclaw" / "README.md").read_text()
    block = readme.split("remove only the role's settings:", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    unsets = [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("openclaw config unset")]
    assert len(unsets) == 4, block
    for command in unsets:
        mac(in_state(env, command))
    models = json.loads(mac(in_state(env, "openclaw config get tools.media.models --json")).stdout)
    rest = [m for m in models if m.get("provider") != "senseaudio"]
    mac(in_state(env, f"openclaw config set tools.media.models {shlex.quote(json.dumps(rest))} --strict-json"))
    mac(in_state(env, "openclaw config validate"))
    config = json.loads(mac(f"cat {path}").stdout)
    assert config["tools"]["media"]["models"] == [
        {"provider": "ollama", "model": "gemma4:26b", "capabilities": ["image"]}
    ]
    assert "enabled" not in config["tools"]["media"].get("audio", {})
    assert not config.get("models", {}).get("providers", {}).get("senseaudio")
    assert not config.get("secrets", {}).get("providers", {}).get("whisperlab")
    assert not config.get("secrets", {}).get("providers", {}).get("whisperlab-ca")

    mac(f"cp {path}.whisperlab-backup {path}")
    assert mac(f"cat {path}").stdout.decode() == USERS_JSON5
