"""What the roles' controller-side tests share: the real ansible-playbook, run against this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ansible_playbook(
    inventory: Path, playbook: Path, extra_vars: dict | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """ansible-playbook from this venv with the repository's ansible.cfg; the finished run, whatever
    its exit status."""
    extra = ["-e", json.dumps(extra_vars)] if extra_vars is not None else []
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(playbook), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **(env or {})},
    )


def run_playbook(inventory: Path, playbook: Path, extra_vars: dict, env: dict | None = None) -> str:
    """The run's output; a run that fails fails the test, showing the output."""
    result = ansible_playbook(inventory, playbook, extra_vars, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
