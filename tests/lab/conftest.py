"""Fixtures for the lab-only checks (run by tests/lab/sequence.sh, never by `pytest tests/`)."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def run_role(request, tmp_path):
    """Apply one role to one inventory group, with extra variables, as a real ansible-playbook run."""
    inventory = request.config.option.ansible_inventory

    def run(group: str, role: str, **extra_vars: str) -> None:
        playbook = tmp_path / f"{role}.yml"
        playbook.write_text(f"- name: Only {role}\n  hosts: {group}\n  roles: [{role}]\n")
        extra = [arg for name, value in extra_vars.items() for arg in ("-e", f"{name}={value}")]
        subprocess.run(["ansible-playbook", "-i", inventory, str(playbook), *extra], check=True, timeout=120)

    return run
