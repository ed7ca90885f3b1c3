"""What the roles' controller-side tests share: the real ansible-playbook, run against this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_playbook(inventory: Path, playbook: Path, extra_vars: dict, env: dict | None = None) -> str:
    """ansible-playbook from this venv with the repository's ansible.cfg; returns its output, and fails
    the test, showing the output, when the run fails."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(inventory),
            str(playbook),
            "-e",
            json.dumps(extra_vars),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
