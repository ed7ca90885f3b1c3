"""The one conftest of the lab's checks (tests/lab/test_*.py; never collected by `pytest tests/`). The lab
sequence runs those marked before_converge first, then all the others once the lab is provisioned:

    pytest tests/lab -m "not before_converge" --hosts=ansible://all --ansible-inventory=inventory/lab/hosts.yml
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import testinfra

from whisperlab_testkit.inventory_facts import server_facts
from whisperlab_testkit.lab import ansible_playbook

REPO = Path(__file__).resolve().parents[2]
# The lab's CA (the whisper_server role makes it): the checks' HTTPS requests to the servers trust it,
# and only it, as the clients do.
LAB_CA = REPO / "inventory" / "lab" / ".secrets" / "tls" / "ca.crt"


def pytest_configure(config):
    config.addinivalue_line("markers", "before_converge: runs on the fresh lab, before the first converge")


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
        result = ansible_playbook(playbook, inventory=inventory, extra_vars=extra_vars, timeout=300)
        assert (result.returncode != 0) == expect_failure, f"{role}: exit {result.returncode}"
        return result.stdout

    return run


@pytest.fixture(scope="module")
def servers(host, request):
    """The lab's first two servers (wsl, wsl2), each as the one server-facts dict of the checks."""
    inventory = request.config.option.ansible_inventory
    names = host.ansible.get_variables()["groups"]["whisper_servers"]
    assert len(names) >= 2, "the lab has two servers"
    hosts = [testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory) for name in names[:2]]
    return [server_facts(server, inventory) for server in hosts]


@pytest.fixture(scope="module")
def last_server(host, request):
    """The lab's last server host, for tests that change one box and leave the first one serving."""
    inventory = request.config.option.ansible_inventory
    name = host.ansible.get_variables()["groups"]["whisper_servers"][-1]
    return server_facts(testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory), inventory)


@pytest.fixture(scope="session")
def server_play():
    """Run playbooks/whisper_server.yml on one box, from this repository or another copy of it."""

    def run(box: dict, *args: str, repo: Path = REPO) -> subprocess.CompletedProcess:
        playbook = repo / "playbooks" / "whisper_server.yml"
        return ansible_playbook(playbook, "-l", box["name"], *args, inventory=box["inventory"], cwd=repo)

    return run
