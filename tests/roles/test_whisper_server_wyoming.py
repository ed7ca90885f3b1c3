"""The whisper_server role's Home Assistant and idle-unload settings, on this machine with the real
ansible-playbook: the Wyoming check (no port without addresses to admit, nor on the server's own port),
and the env file the unit reads, rendered from the role's own template and variables. (The lab turns
both on for real: tests/lab/test_wyoming.py and tests/test_whisper_server.py.)"""

from __future__ import annotations

import json
import os
import pwd
import sys

import pytest
from ansible_run import NO_SERVER, REPO, ansible_playbook

ME = pwd.getpwuid(os.getuid())
ROLE = REPO / "roles" / "whisper_server"

PLAY = """
- name: The Wyoming check and the env file, without a server
  hosts: box
  gather_facts: false
  tasks:
    - name: The check
      ansible.builtin.include_role:
        name: whisper_server
        tasks_from: wyoming.yml
        public: true
    - name: The env file
      ansible.builtin.template:
        src: %(role)s/templates/home/.config/whisper-server/whisper-server.env.j2
        dest: "{{ out }}/whisper-server.env"
        mode: "0600"
"""


@pytest.fixture
def render(tmp_path):
    box = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False}
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"children": {"whisper_servers": {"hosts": {"box": box}}}}}))
    (tmp_path / "play.yml").write_text(PLAY % {"role": ROLE})

    def run(expect_failure: bool = False, **extra: object):
        extra_vars = {
            "out": str(tmp_path),
            "whisperlab_servers": [{**NO_SERVER, "url": "http://wsl.home:8000/v1", "port": 8000}],
            "whisper_server_home": str(tmp_path / "home"),
            "whisper_server_model_path": "/models/small",
            "ansible_user": ME.pw_name,
            **extra,
        }
        result = ansible_playbook(tmp_path / "hosts.yml", tmp_path / "play.yml", extra_vars)
        assert (result.returncode != 0) == expect_failure, result.stdout + result.stderr
        if expect_failure:
            return result.stdout
        text = (tmp_path / "whisper-server.env").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))

    return run


def test_off_by_default(render):
    env = render()
    assert env["WHISPER_WYOMING_PORT"] == "0" and "WHISPER_WYOMING_ALLOWED_CLIENTS" not in env
    assert env["WHISPER_IDLE_UNLOAD_SECONDS"] == "0"


def test_on_with_the_home_assistant_host(render):
    env = render(
        whisper_server_wyoming=True,
        whisperlab_home_assistant_addresses=["192.168.1.20", "fd00::/64"],
        whisper_server_idle_unload_seconds=600,
    )
    assert env["WHISPER_WYOMING_PORT"] == "10300" and env["WHISPER_WYOMING_HOST"] == "0.0.0.0"
    assert env["WHISPER_WYOMING_ALLOWED_CLIENTS"] == "127.0.0.1,::1,192.168.1.20,fd00::/64"
    assert env["WHISPER_WYOMING_ZEROCONF"] == ""
    assert env["WHISPER_IDLE_UNLOAD_SECONDS"] == "600"


@pytest.mark.parametrize(
    "settings",
    [
        {},  # nobody to admit: Wyoming has no key
        {"whisperlab_home_assistant_addresses": ["192.168.1.20"], "whisper_server_wyoming_port": 8000},
        {"whisperlab_home_assistant_addresses": ["192.168.1.20"], "whisper_server_wyoming_port": 18000},
        # What the server's allowlist cannot read (it would not start): a name, a keyword, a range.
        {"whisperlab_home_assistant_addresses": ["homeassistant.local"]},
        {"whisperlab_home_assistant_addresses": ["Any"]},
        {"whisperlab_home_assistant_addresses": ["192.168.1.10-192.168.1.20"]},
    ],
)
def test_refused_without_addresses_or_on_the_servers_own_port(render, settings):
    out = render(expect_failure=True, whisper_server_wyoming=True, **settings)
    assert "Wyoming has no key" in out
