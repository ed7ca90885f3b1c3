"""What the roles' controller-side tests share: the real ansible-playbook, run against this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ansible_playbook(
    inventory: Path, playbook: Path, extra_vars: dict | None = None, env: dict | None = None, args: list[str] = ()
) -> subprocess.CompletedProcess:
    """ansible-playbook from this venv with the repository's ansible.cfg (and any further arguments);
    the finished run, whatever its exit status."""
    extra = ["-e", json.dumps(extra_vars)] if extra_vars is not None else []
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(playbook), *extra, *args],
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


# One server for the whisperlab role's own checks, for plays that reach no server.
NO_SERVER = {"name": "gpu", "alias": "wsl.home", "address": "192.0.2.10", "ssh_port": 22, "ssh_user": "whisper"}


def local_play(tmp: Path, role: str, group: str, host_vars: dict, rest: str = "") -> None:
    """tmp/hosts.yml: this machine (connection local, as whoever runs the tests) as the host `box`, a
    member of `group`; tmp/play.yml: `role` alone on it, without facts, then `rest` (more play keys)."""
    box = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **host_vars}
    (tmp / "hosts.yml").write_text(json.dumps({"all": {"children": {group: {"hosts": {"box": box}}}}}))
    play = f"- name: Only {role}\n  hosts: box\n  gather_facts: false\n  roles: [{role}]\n"
    (tmp / "play.yml").write_text(play + rest)


def value_after_role(tmp: Path, role: str, expression: str, group: str, host_vars: dict, extra_vars: dict) -> str:
    """`role` alone on this machine (connection local, as whoever runs the tests), the host a member of
    `group`; what the Jinja `expression` gives after it, as text. A failed run fails the test."""
    local_play(
        tmp,
        role,
        group,
        host_vars,
        "  post_tasks:\n    - name: Keep the value\n      ansible.builtin.copy:\n"
        f"        content: {json.dumps('{{ ' + expression + ' }}')}\n"
        f"        dest: {tmp / 'value'}\n        mode: '0600'\n",
    )
    extra = {"whisperlab_servers": [NO_SERVER], "whisperlab_api_key_file": str(tmp / "key"), **extra_vars}
    run_playbook(tmp / "hosts.yml", tmp / "play.yml", extra, env={"ANSIBLE_LOCAL_TEMP": str(tmp / "ansible")})
    return (tmp / "value").read_text()
