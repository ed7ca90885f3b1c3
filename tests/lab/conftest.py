"""Fixtures for the lab-only checks (run by tests/lab/sequence.sh, never by `pytest tests/`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import testinfra

from whisperlab_testkit.inventory_facts import server_base, server_user

REPO = Path(__file__).resolve().parents[2]
# The lab's CA (the whisper_server role makes it): the checks' HTTPS requests to the servers trust it,
# and only it, as the clients do.
LAB_CA = REPO / "inventory" / "lab" / ".secrets" / "tls" / "ca.crt"


@pytest.fixture(scope="session", autouse=True)
def trust_the_lab_ca():
    if LAB_CA.exists():
        os.environ["REQUESTS_CA_BUNDLE"] = str(LAB_CA)
    yield


@pytest.fixture
def run_role(request, tmp_path):
    """Apply one role to one inventory group, with extra variables, as a real ansible-playbook run."""
    inventory = request.config.option.ansible_inventory

    def run(group: str, role: str, expect_failure: bool = False, **extra_vars: object) -> str:
        """Returns the run's output; a run that fails (or, with expect_failure, succeeds) fails the test."""
        playbook = tmp_path / f"{role}.yml"
        playbook.write_text(f"- name: Only {role}\n  hosts: {group}\n  roles: [{role}]\n")
        extra = ["-e", json.dumps(extra_vars)] if extra_vars else []
        result = subprocess.run(
            ["ansible-playbook", "-i", inventory, str(playbook), *extra], capture_output=True, text=True, timeout=300
        )
        print(result.stdout, result.stderr)
        assert (result.returncode != 0) == expect_failure, f"{role}: exit {result.returncode}"
        return result.stdout

    return run


@pytest.fixture(scope="module")
def last_server(host, request):
    """The lab's last server host, for tests that change one box and leave the first one serving."""
    inventory = str(Path(request.config.option.ansible_inventory).resolve())
    name = host.ansible.get_variables()["groups"]["whisper_servers"][-1]
    server = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
    variables = server.ansible.get_variables()
    user = server_user(variables)
    uid = server.user(user).uid
    return {
        "name": name,
        "host": server,
        "inventory": inventory,
        "address": variables["ansible_host"],
        "home": server.user(user).home,
        "url": server_base(variables),
        "systemctl": f"sudo -u {user} XDG_RUNTIME_DIR=/run/user/{uid} systemctl --user",
    }


@pytest.fixture
def server_play():
    """Run playbooks/whisper_server.yml on one box, from this repository or another copy of it."""

    def run(box: dict, *args: str, repo: Path = REPO) -> subprocess.CompletedProcess:
        playbook = str(repo / "playbooks" / "whisper_server.yml")
        result = subprocess.run(
            ["ansible-playbook", "-i", box["inventory"], playbook, "-l", box["name"], *args],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=repo,
        )
        print(result.stdout[-20000:], result.stderr[-5000:])
        return result

    return run
