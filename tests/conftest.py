"""Testinfra checks for a whisperlab, simulated or real:

    pytest tests/ --hosts='ansible://all' --ansible-inventory=inventory/<yours>/hosts.yml

Each module names the inventory group it checks; hosts outside that group are skipped.
tests/lab/ holds the simulated lab's own harness and fault checks (they reboot hosts), and is never
collected here.
"""

import pytest

collect_ignore = ["lab"]


def in_group(host, group: str) -> bool:
    return group in host.ansible.get_variables().get("group_names", [])


@pytest.fixture
def group_vars(host):
    return host.ansible.get_variables()
