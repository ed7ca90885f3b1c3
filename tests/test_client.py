"""The Mac (clients group) after site.yml: the alias, the SSH trust, and the skill transcribing end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import testinfra

import support

GROUP = "clients"


@pytest.fixture(scope="module")
def setup(host, request):
    variables = host.ansible.get_variables()
    inventory = request.config.option.ansible_inventory
    server_name = variables["groups"]["whisper_servers"][0]
    server = testinfra.get_host(f"ansible://{server_name}", ansible_inventory=inventory)
    server_vars = server.ansible.get_variables()
    user = variables.get("whisper_skill_user") or variables["ansible_user"]
    workspace = variables.get("whisper_skill_workspace", "~/.openclaw/workspace")
    home = host.user(user).home
    return {
        "server": server,
        "address": server_vars.get("ansible_host", server_name),
        "alias": variables.get("whisperlab_server_alias", "wsl.home"),
        "short": variables.get("ssh_trust_short_name", "wsl"),
        "user": user,
        "home": home,
        "skill": workspace.replace("~", home, 1) + "/skills/openai-whisper-api",
    }


def as_user(setup, command: str) -> str:
    return f"sudo -u {setup['user']} -H sh -c 'cd && {command}'"


def test_alias_resolves_to_the_server(host, setup):
    assert host.addr(setup["alias"]).ip_addresses == [setup["address"]]
    lines = [line for line in host.file("/etc/hosts").content_string.splitlines() if setup["alias"] in line.split()]
    assert len(lines) == 1


def test_client_key(host, setup):
    key = host.file(f"{setup['home']}/.ssh/id_ed25519_whisperlab")
    assert key.exists and key.mode == 0o600 and key.user == setup["user"]
    assert host.file(key.path + ".pub").content_string.startswith("ssh-ed25519 ")


def test_known_hosts_pins_the_real_host_key(host, setup):
    real = setup["server"].file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
    known_hosts = f"{setup['home']}/.ssh/known_hosts"
    for name in (setup["alias"], setup["address"]):
        found = host.run(f"ssh-keygen -F {name} -f {known_hosts}")
        assert found.rc == 0, f"{name} is not in known_hosts"
        assert real in found.stdout


def test_batch_ssh_to_the_server(host, setup):
    result = host.run(as_user(setup, f"ssh -o BatchMode=yes {setup['short']} hostname"))
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == setup["server"].check_output("hostname")


def test_skill_installed(host, setup):
    script = host.file(f"{setup['skill']}/scripts/transcribe.sh")
    assert script.exists and script.mode == 0o755
    assert host.file(f"{setup['skill']}/SKILL.md").contains("local")
    config = host.file(f"{setup['home']}/.config/whisperlab/client.env")
    assert config.mode == 0o600 and config.user == setup["user"]
    assert config.contains(f"^WHISPER_API_URL=http://{setup['alias']}:")


def test_skill_transcribes_end_to_end(host, setup, tmp_path):
    local = tmp_path / "note.ogg"
    local.write_bytes(support.speech("weather", "ogg"))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    folder = host.check_output(as_user(setup, "mktemp -d"))
    remote = f"{folder}/voice note.ogg"
    host.ansible("copy", f"src={local} dest='{remote}' mode=0644 owner={setup['user']}", become=True, check=False)
    try:
        out = host.check_output(as_user(setup, f'{setup["skill"]}/scripts/transcribe.sh "{remote}"'))
        assert out == f"{folder}/voice note.txt"
        text = host.file(out).content_string
        assert support.wer(support.SENTENCES["weather"], text) <= 0.3
        assert host.check_output(f'sha256sum "{remote}"').split()[0] == digest
    finally:
        host.run(f"rm -rf {folder}")


@pytest.fixture(scope="module")
def openclaw(host, setup):
    """The user's openclaw command (login PATH), or a skip naming why: the openclaw role skips too."""
    found = host.run(f"sudo -u {setup['user']} -H sh -lc 'command -v openclaw'")
    if found.rc != 0:
        pytest.skip(f"OpenClaw is not installed for {setup['user']}; the openclaw role skipped it as well")
    return lambda command: host.run(as_user(setup, f"openclaw {command}"))


def test_openclaw_voice_notes_go_to_the_server(setup, openclaw):
    assert openclaw("config validate").rc == 0
    models = json.loads(openclaw("config get tools.media.models --json").stdout)
    ours = [m for m in models if m.get("profile") == "openai:whisperlab"]
    assert len(ours) == 1
    assert ours[0]["baseUrl"].startswith(f"http://{setup['alias']}:") and ours[0]["capabilities"] == ["audio"]
    assert json.loads(openclaw("config get tools.media.audio.enabled --json").stdout) is True
    profiles = json.loads(openclaw("models auth list --json --provider openai").stdout)["profiles"]
    assert "openai:whisperlab" in [p["id"] for p in profiles]


def test_openclaw_config_backup_is_private(host, setup, openclaw):
    config = openclaw("config file").stdout.strip().splitlines()[-1].replace("~", setup["home"], 1)
    backup = host.file(config + ".whisperlab-backup")
    if backup.exists:  # there is none when OpenClaw had no config before the role's first change
        assert backup.mode == 0o600 and backup.user == setup["user"]
    fingerprint = host.file(f"{setup['home']}/.config/whisperlab/openclaw-profile.sha256")
    assert fingerprint.mode == 0o600


def test_openclaw_config_holds_no_key(host, setup, openclaw, request):
    inventory_dir = Path(request.config.option.ansible_inventory).resolve().parent
    key_file = host.ansible.get_variables().get(
        "whisperlab_api_key_file", "{{ inventory_dir }}/.secrets/whisper_api_key"
    )
    key = Path(key_file.replace("{{ inventory_dir }}", str(inventory_dir))).read_text().strip()
    assert key.startswith("sk-"), "OpenClaw stores only sk- keys in an openai profile"
    config = openclaw("config file").stdout.strip().splitlines()[-1].replace("~", setup["home"], 1)
    assert key not in host.file(config).content_string
