"""The whisperlab role's one home lookup (roles/whisperlab/tasks/home.yml), run by the real
ansible-playbook against this machine: every client role's user gets its home, including a role user
set apart from whisperlab_client_user, and nothing is looked up on a host outside the clients' group."""

from __future__ import annotations

import json
import os
import pwd
import sys
from pathlib import Path

import pytest
from ansible_run import run_playbook

SERVER = {"name": "gpu", "alias": "wsl.home", "address": "192.0.2.10", "ssh_port": 22, "ssh_user": "whisper"}
ME = pwd.getpwuid(os.getuid())


def homes(tmp: Path, group: str, extra: dict) -> dict | None:
    """whisperlab alone on this machine as a member of `group`; the whisperlab_homes it leaves."""
    inventory = {
        "all": {
            "children": {
                group: {
                    "hosts": {
                        "box": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "ansible_user": ME.pw_name,
                        }
                    }
                }
            }
        }
    }
    (tmp / "hosts.yml").write_text(json.dumps(inventory))
    (tmp / "play.yml").write_text(
        "- name: Only whisperlab\n  hosts: box\n  gather_facts: false\n  roles: [whisperlab]\n  tasks:\n"
        "    - name: Keep the homes\n      ansible.builtin.copy:\n"
        "        content: \"{{ whisperlab_homes | default('none') | to_json }}\"\n"
        f"        dest: {tmp / 'homes.json'}\n        mode: '0600'\n"
    )
    extra = {"whisperlab_servers": [SERVER], "whisperlab_api_key_file": str(tmp / "key"), **extra}
    run_playbook(tmp / "hosts.yml", tmp / "play.yml", extra, env={"ANSIBLE_LOCAL_TEMP": str(tmp / "ansible")})
    shown = json.loads((tmp / "homes.json").read_text())
    return None if shown == "none" else shown


def test_the_client_users_home(tmp_path):
    assert homes(tmp_path, "clients", {}) == {ME.pw_name: ME.pw_dir}


@pytest.mark.parametrize("variable", ["ssh_trust_user", "whisper_skill_user", "openclaw_user", "status_user"])
def test_a_role_user_of_its_own_gets_its_home_too(tmp_path, variable):
    other = pwd.getpwnam("nobody")
    assert homes(tmp_path, "clients", {variable: "nobody"}) == {ME.pw_name: ME.pw_dir, "nobody": other.pw_dir}


def test_nothing_is_looked_up_outside_the_clients_group(tmp_path):
    assert homes(tmp_path, "whisper_servers", {}) is None
