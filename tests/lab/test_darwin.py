"""Lab-only, a macOS STAND-IN: the client play runs against the lab's mac host, which is Debian, with
its facts forced to macOS's (os_family Darwin) by a stand-in facts module, and macOS's paths and
commands stood in: /private/etc/hosts, the wheel group, and dscacheutil and killall, which only log
their calls. It proves the roles' Darwin branches decide right (the hosts file, its group, the DNS
cache flush, homes looked up rather than assumed to be /Users/<name>); it is not macOS."""

from __future__ import annotations

from pathlib import Path

import pytest

from whisperlab_testkit.lab import ansible_playbook
from whisperlab_testkit.support import REPO

GROUP = "clients"
LOG = "/var/log/whisperlab-darwin-standin.log"
STANDINS = ("dscacheutil", "killall")


@pytest.fixture
def darwin(host):
    for command in STANDINS:
        script = f'#!/bin/sh\\n# whisperlab lab stand-in for macOS\\047s {command}\\necho "{command} $*" >> {LOG}\\n'
        assert host.run(f"printf '{script}' | sudo tee /usr/local/sbin/{command} >/dev/null").rc == 0
        assert host.run(f"sudo chmod 0755 /usr/local/sbin/{command}").rc == 0
    setup = "sudo mkdir -p /private/etc && printf '127.0.0.1 localhost\\n' | sudo tee /private/etc/hosts >/dev/null"
    assert host.run(f"{setup} && sudo groupadd -f wheel && sudo rm -f {LOG}").rc == 0
    yield
    host.run(f"sudo rm -rf /private /usr/local/sbin/dscacheutil /usr/local/sbin/killall {LOG}; sudo groupdel wheel")


def test_the_client_play_takes_its_darwin_branches(host, darwin, request, tmp_path):
    inventory = str(Path(request.config.option.ansible_inventory).resolve())
    playbook = tmp_path / "client-as-darwin.yml"
    playbook.write_text(
        "- name: Clients, with macOS's facts stood in\n"
        "  hosts: clients\n"
        "  pre_tasks:\n"
        "    - name: Stand in macOS's facts\n"
        "      whisperlab_darwin_facts:\n"
        "  vars:\n"
        f"    whisper_skill_source: {REPO / 'skills' / 'openai-whisper-api'}\n"
        "  roles: [hosts_alias, ssh_trust, whisper_skill, openclaw, lan_check]\n"
    )
    library = str(Path(__file__).with_name("darwin_library"))
    env = {"ANSIBLE_LIBRARY": library, "ANSIBLE_ROLES_PATH": str(REPO / "roles")}
    result = ansible_playbook(playbook, inventory=inventory, env=env)
    assert result.returncode == 0
    # The hosts file is macOS's, root:wheel, and the DNS cache was flushed the macOS way.
    hosts = host.file("/private/etc/hosts")
    assert hosts.group == "wheel"
    assert "10.77.0.10 wsl.home # managed by whisperlab" in hosts.content_string
    assert "RUNNING HANDLER [hosts_alias : Flush the macOS DNS cache]" in result.stdout
    assert host.file(LOG).content_string.splitlines() == ["dscacheutil -flushcache", "killall -HUP mDNSResponder"]
    # Homes were looked up, not assumed to be /Users/<name>.
    assert not host.file("/Users").exists
    assert "/Users/" not in result.stdout
