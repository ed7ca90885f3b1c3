"""The status role asks each server as the user ssh_trust set the key up for: ssh_trust_user where the
inventory sets it, else the client user (the real ansible-playbook against this machine, no servers)."""

from __future__ import annotations

import json
import os
import pwd
import sys
from pathlib import Path

import pytest
from ansible_run import run_playbook

ME = pwd.getpwuid(os.getuid()).pw_name


def status_user(tmp: Path, host_vars: dict) -> str:
    box = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_user": ME}
    inventory = {"all": {"children": {"clients": {"hosts": {"box": {**box, **host_vars}}}}}}
    (tmp / "hosts.yml").write_text(json.dumps(inventory))
    (tmp / "play.yml").write_text(
        "- name: Only status\n  hosts: box\n  gather_facts: false\n  roles: [status]\n  post_tasks:\n"
        "    - name: Keep the user\n      ansible.builtin.copy:\n"
        '        content: "{{ status_user }}"\n'
        f"        dest: {tmp / 'user'}\n        mode: '0600'\n"
    )
    server = {"name": "gpu", "alias": "wsl.home", "address": "192.0.2.10", "ssh_port": 22, "ssh_user": "whisper"}
    extra = {"whisperlab_servers": [server], "status_servers": [], "whisperlab_api_key_file": str(tmp / "key")}
    run_playbook(tmp / "hosts.yml", tmp / "play.yml", extra, env={"ANSIBLE_LOCAL_TEMP": str(tmp / "ansible")})
    return (tmp / "user").read_text()


@pytest.mark.parametrize(("host_vars", "expected"), [({}, ME), ({"ssh_trust_user": "nobody"}, "nobody")])
def test_status_asks_as_the_user_ssh_trust_set_up(tmp_path, host_vars, expected):
    assert status_user(tmp_path, host_vars) == expected
