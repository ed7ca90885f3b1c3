"""The whisperlab role's one home lookup (roles/whisperlab/tasks/home.yml), run by the real
ansible-playbook against this machine: every client role's user gets its home, including a role user
set apart from whisperlab_client_user, and nothing is looked up on a host outside the clients' group."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest
from ansible_run import value_after_role

ME = pwd.getpwuid(os.getuid())


def homes(tmp: Path, group: str, extra: dict) -> dict | None:
    """whisperlab alone on this machine as a member of `group`; the whisperlab_homes it leaves."""
    shown = value_after_role(
        tmp, "whisperlab", "whisperlab_homes | default('none') | to_json", group, {"ansible_user": ME.pw_name}, extra
    )
    return None if json.loads(shown) == "none" else json.loads(shown)


def test_the_client_users_home(tmp_path):
    assert homes(tmp_path, "clients", {}) == {ME.pw_name: ME.pw_dir}


@pytest.mark.parametrize("variable", ["ssh_trust_user", "whisper_skill_user", "openclaw_user", "status_user"])
def test_a_role_user_of_its_own_gets_its_home_too(tmp_path, variable):
    other = pwd.getpwnam("nobody")
    assert homes(tmp_path, "clients", {variable: "nobody"}) == {ME.pw_name: ME.pw_dir, "nobody": other.pw_dir}


def test_nothing_is_looked_up_outside_the_clients_group(tmp_path):
    assert homes(tmp_path, "whisper_servers", {}) is None
