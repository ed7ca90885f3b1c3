"""The Mac (clients group) after site.yml: the alias, the SSH trust, and the skill transcribing end to end."""

from __future__ import annotations

import hashlib

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
