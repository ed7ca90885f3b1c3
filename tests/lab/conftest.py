"""Fixtures for the lab-only checks (run by tests/lab/sequence.sh, never by `pytest tests/`)."""

from __future__ import annotations

import json
import subprocess

import pytest


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
