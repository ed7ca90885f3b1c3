"""The Mac (clients group) after site.yml: the alias, the SSH trust, and the skill transcribing end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import testinfra

from whisperlab_testkit import support
from whisperlab_testkit.inventory_facts import addresses_of, home_of, server_user, sha256_of

GROUP = "clients"


def default_alias(first: str, index: int) -> str:
    """The whisperlab role's default alias for the index-th server (from 1): wsl.home, wsl2.home, ..."""
    label, dot, rest = first.partition(".")
    return first if index == 1 else f"{label}{index}{dot}{rest}"


@pytest.fixture(scope="module")
def setup(host, request):
    variables = host.ansible.get_variables()
    inventory = request.config.option.ansible_inventory
    first_alias = variables.get("whisperlab_server_alias", "wsl.home")
    short = variables.get("whisperlab_server_short_name", variables.get("ssh_trust_short_name", "wsl"))
    servers = []
    for index, name in enumerate(variables["groups"]["whisper_servers"], start=1):
        server = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
        server_vars = server.ansible.get_variables()
        servers.append(
            {
                "host": server,
                "address": server_vars.get("ansible_host", name),
                "alias": server_vars.get("whisperlab_host_alias", default_alias(first_alias, index)),
                "port": int(server_vars.get("whisper_server_port", variables.get("whisperlab_server_port", 8000))),
                "short": server_vars.get("whisperlab_host_short_name", short if index == 1 else f"{short}{index}"),
            }
        )
    user = variables.get("whisper_skill_user") or variables["ansible_user"]
    workspace = variables.get("whisper_skill_workspace", "~/.openclaw/workspace")
    home = home_of(host, user)
    tls = bool(variables.get("whisperlab_tls", True))
    inventory_dir = Path(inventory).resolve().parent
    ca_dir = variables.get("whisperlab_tls_ca_dir", "{{ inventory_dir }}/.secrets/tls")
    return {
        "servers": servers,
        "scheme": "https" if tls else "http",
        "ca": Path(ca_dir.replace("{{ inventory_dir }}", str(inventory_dir))) / "ca.crt" if tls else None,
        "alias": servers[0]["alias"],
        "user": user,
        "home": home,
        "skill": workspace.replace("~", home, 1) + "/skills/openai-whisper-api",
    }


def as_user(setup, command: str) -> str:
    return f"sudo -u {setup['user']} -H sh -c 'cd && {command}'"


def test_each_alias_resolves_to_its_server(host, setup):
    hosts_file = host.file("/etc/hosts").content_string.splitlines()
    for server in setup["servers"]:
        assert addresses_of(host, server["alias"]) == [server["address"]]
        assert len([line for line in hosts_file if server["alias"] in line.split()]) == 1


def test_client_key(host, setup):
    key = host.file(f"{setup['home']}/.ssh/id_ed25519_whisperlab")
    assert key.exists and key.mode == 0o600 and key.user == setup["user"]
    assert host.file(key.path + ".pub").content_string.startswith("ssh-ed25519 ")


def test_known_hosts_pins_each_real_host_key(host, setup):
    known_hosts = f"{setup['home']}/.ssh/known_hosts"
    for server in setup["servers"]:
        real = server["host"].file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
        for name in (server["alias"], server["address"]):
            found = host.run(f"ssh-keygen -F {name} -f {known_hosts}")
            assert found.rc == 0, f"{name} is not in known_hosts"
            assert real in found.stdout


def test_batch_ssh_to_each_server_shows_its_status(host, setup):
    for server in setup["servers"]:
        result = host.run(as_user(setup, f"ssh -o BatchMode=yes {server['short']} status"))
        assert result.rc == 0, result.stderr
        lines = result.stdout.splitlines()
        assert f"host: {server['host'].check_output('hostname')}" in lines
        health = next(line for line in lines if line.startswith("health: "))
        # unloaded: the lab's second server steps aside when idle (whisper_server_idle_unload_seconds).
        assert json.loads(health.removeprefix("health: "))["status"] in ("ready", "unloaded")
        assert any(line.startswith("unit: whisper.service active (running)") for line in lines), lines
        assert any(line.startswith("gpu: ") for line in lines)


def test_the_key_runs_the_monitor_and_nothing_else(host, setup):
    key = host.file(f"{setup['home']}/.ssh/id_ed25519_whisperlab.pub").content_string.split()[1]
    for server in setup["servers"]:
        shell = host.run(as_user(setup, f"ssh -o BatchMode=yes {server['short']} id"))
        assert shell.rc == 1 and "is not allowed with this key" in shell.stderr
        assert "uid=" not in shell.stdout
        # No port forwarding either (restrict): the box refuses the remote forward, so ssh gives up.
        forward = "-o ExitOnForwardFailure=yes -R 18999:127.0.0.1:22"
        # (ssh's own exit status is read in the shell: testinfra takes 255 for a failure of its own)
        tunnel = host.check_output(as_user(setup, f"ssh -o BatchMode=yes {forward} {server['short']} true; echo rc=$?"))
        assert tunnel.splitlines()[-1] != "rc=0"
        # On the box: the key sits only in the service account's authorized_keys, with its options.
        box = server["host"]
        user = server_user(box.ansible.get_variables())
        line = next(
            entry
            for entry in box.check_output(f"sudo cat {home_of(box, user)}/.ssh/authorized_keys").splitlines()
            if key in entry
        )
        assert line.startswith("restrict,") and 'command="/usr/local/bin/whisperlab-monitor"' in line
        assert 'from="' in line
        login = box.ansible.get_variables().get("ansible_user")
        if login and login != user:
            admin_keys = box.run(f"sudo cat {home_of(box, login)}/.ssh/authorized_keys").stdout
            assert key not in admin_keys


def test_skill_installed(host, setup):
    script = host.file(f"{setup['skill']}/scripts/transcribe.sh")
    assert script.exists and script.mode == 0o755
    assert host.file(f"{setup['skill']}/SKILL.md").contains("local")
    config = host.file(f"{setup['home']}/.config/whisperlab/client.env")
    assert config.mode == 0o600 and config.user == setup["user"]
    urls = " ".join(f"{setup['scheme']}://{server['alias']}:{server['port']}/v1" for server in setup["servers"])
    assert config.contains(f"^WHISPER_API_URL={urls}$")
    if setup["ca"]:
        # The CA the servers' certificates are signed by, which the script hands to curl for them alone.
        ca = host.file(f"{setup['home']}/.config/whisperlab/ca.pem")
        assert ca.content_string == setup["ca"].read_text() and ca.user == setup["user"]
        assert config.contains(f"^WHISPER_CA_FILE={ca.path}$")
    # A down box fails fast (the connect grace), a busy one is waited for (the timeout).
    # grep reads a basic regular expression: no "+".
    assert config.contains("^WHISPER_CONNECT_GRACE=[0-9][0-9]*$") and config.contains("^WHISPER_TIMEOUT=[0-9][0-9]*$")


def test_shadowing_is_off_unless_the_inventory_turns_it_on(host, setup):
    """Shadowing sends the user's audio to a second endpoint: off by default, and its key only where on."""
    on = str(host.ansible.get_variables().get("whisper_skill_shadow", False)).lower() in ("true", "yes", "1")
    config = host.file(f"{setup['home']}/.config/whisperlab/client.env")
    assert config.contains(f"^WHISPER_SHADOW={'1' if on else '0'}$")
    assert config.contains("^WHISPER_SHADOW_URL=") == on
    key = host.file(f"{setup['home']}/.config/whisperlab/shadow-key")
    if on:
        assert key.mode == 0o600 and key.user == setup["user"]
    else:
        assert not key.exists


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
        assert sha256_of(host, remote) == digest
    finally:
        host.run(f"rm -rf {folder}")


@pytest.fixture(scope="module")
def openclaw(host, setup):
    """The user's openclaw command (login PATH), or a skip naming why: the openclaw role skips too."""
    found = host.run(f"sudo -u {setup['user']} -H sh -lc 'command -v openclaw'")
    if found.rc != 0:
        pytest.skip(f"OpenClaw is not installed for {setup['user']}; the openclaw role skipped it as well")
    return lambda command: host.run(as_user(setup, f"openclaw {command}"))


def test_openclaw_voice_notes_go_to_the_server(host, setup, openclaw):
    assert openclaw("config validate").rc == 0
    models = json.loads(openclaw("config get tools.media.models --json").stdout)
    ours = [m for m in models if m.get("provider") == "senseaudio"]
    # One entry per server, in inventory order: OpenClaw moves to the next when one cannot be reached.
    assert [m["baseUrl"] for m in ours] == [
        f"{setup['scheme']}://{s['alias']}:{s['port']}/v1" for s in setup["servers"]
    ]
    assert all(m["capabilities"] == ["audio"] for m in ours)
    assert json.loads(openclaw("config get tools.media.audio.enabled --json").stdout) is True
    block = json.loads(openclaw("config get models.providers.senseaudio --json").stdout)
    assert block["apiKey"]["source"] == "file" and block["apiKey"]["provider"] == "whisperlab"
    if setup["ca"]:
        # Our provider trusts the whisperlab CA for our entries (a reference to a 0600 copy; OpenClaw's other
        # requests keep the system's CAs). `config get` redacts the reference's id, as it does the key's.
        assert block["request"]["allowPrivateNetwork"] is True
        ref = block["request"]["tls"]["ca"]
        assert (ref["source"], ref["provider"]) == ("file", "whisperlab-ca")
        secret = json.loads(openclaw("config get secrets.providers.whisperlab-ca --json").stdout)
        assert secret["source"] in ("file", "__OPENCLAW_REDACTED__")
        copy = host.file(f"{setup['home']}/.config/whisperlab/openclaw-ca.pem")
        assert copy.mode == 0o600 and copy.user == setup["user"]
        assert copy.content_string == setup["ca"].read_text()
    else:
        assert block["request"] == {"allowPrivateNetwork": True}


def test_openclaw_keeps_whisperlab_out_of_the_openai_provider(setup, openclaw):
    """A key stored for `openai` is rotated with the user's own OpenAI keys on a 429; none of ours is there."""
    profiles = json.loads(openclaw("models auth list --json --provider openai").stdout)["profiles"]
    assert "openai:whisperlab" not in [p["id"] for p in profiles]


def test_openclaw_config_backup_and_key_are_private(host, setup, openclaw):
    config = openclaw("config file").stdout.strip().splitlines()[-1].replace("~", setup["home"], 1)
    backup = host.file(config + ".whisperlab-backup")
    if backup.exists:  # there is none when OpenClaw had no config before the role's first change
        assert backup.mode == 0o600 and backup.user == setup["user"]
    key = host.file(f"{setup['home']}/.config/whisperlab/openclaw-key")
    assert key.mode == 0o600 and key.user == setup["user"]
    assert not host.file(f"{setup['home']}/.config/whisperlab/openclaw-profile.sha256").exists


def test_openclaw_config_holds_no_key(host, setup, openclaw, request):
    inventory_dir = Path(request.config.option.ansible_inventory).resolve().parent
    key_file = host.ansible.get_variables().get(
        "whisperlab_api_key_file", "{{ inventory_dir }}/.secrets/whisper_api_key"
    )
    key = Path(key_file.replace("{{ inventory_dir }}", str(inventory_dir))).read_text().strip()
    config = openclaw("config file").stdout.strip().splitlines()[-1].replace("~", setup["home"], 1)
    assert key not in host.file(config).content_string
