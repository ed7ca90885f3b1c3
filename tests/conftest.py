"""Testinfra checks for a whisperlab, simulated or real:

    pytest tests/ --hosts='ansible://all' --ansible-inventory=inventory/<yours>/hosts.yml

A module that sets GROUP runs only on that inventory group's hosts; the others are deselected, not
skipped, so they neither pass nor hide anything. tests/lab/ holds the simulated lab's own harness and
fault checks (they reboot hosts) and is never collected here; neither is tests/roles/, the roles'
controller-side tests, which need no hosts (make test-roles).
"""

from __future__ import annotations

# The shared test kit (tests/kit, installed by `make setup`) gives these checks the server tests' helpers
# (speech synthesis, WER) and inventory_facts: `from whisperlab_testkit import support`.

collect_ignore = ["lab", "roles"]


def pytest_collection_modifyitems(config, items):
    groups: dict[str, frozenset[str]] = {}
    keep, drop = [], []
    for item in items:
        group = getattr(item.module, "GROUP", None)
        host = getattr(getattr(item, "callspec", None), "params", {}).get("_testinfra_host")
        if group and host is not None:
            name = host.backend.get_pytest_id()
            if name not in groups:
                groups[name] = frozenset(host.ansible.get_variables().get("group_names", []))
        if group and host is not None and group not in groups[name]:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
